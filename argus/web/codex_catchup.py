"""The streaming message a codex client missed, given back when it (re)loads a thread.

Why: a codex TUI that reconnects (a gateway restart, a network drop) or opens a thread that
is mid-turn rebuilds its transcript from ``thread/turns/list`` and ``thread/items/list``,
which hold only completed items. Without help, a message that is still streaming shows only
the text that arrives after that point until it completes. Argus has the earlier deltas in
the session's replay log, so right after a ``/`` client's ``thread/items/list`` answer it
sends that client, and only it, the open agent messages of the thread's running turn as
they stand: the original ``item/started`` and one delta with the text so far. The deltas
that follow are the live ones, so the client ends with the whole message, once.

Exactness: the answer is sent by the client's sender once its cursor reached the point
where the runtime answered; the catch-up covers the log up to that cursor, and everything
after it reaches the client live. Items the answer already lists are left out.
Bounds: at most ``MAX_TRACKED`` unanswered ``thread/items/list`` requests are remembered per
connection (older ones are forgotten: no catch-up for them); the scan walks the replay log
back only to the running turn's ``turn/started`` and never past the log's bounded start.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..protocol import messages as m

if TYPE_CHECKING:
    from ..sessions.replay import ReplayBuffer
    from ..sessions.session import Session
    from ..sessions.subscriber import Subscriber

MAX_TRACKED = 64
ITEMS_LIST = "thread/items/list"
DELTA = "item/agentMessage/delta"


def _id_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class ThreadCatchUp:
    """One ``/`` connection's view: which item lists it asked for, what to add to answers."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.sub: Subscriber | None = None
        self.wanted: OrderedDict[str, str] = OrderedDict()  # request id -> thread id

    def attached(self, sub: Subscriber) -> None:
        """The connection's subscriber (its cursor says what the client was sent)."""
        self.sub = sub

    def on_client_text(self, text: str) -> None:
        """Remember a ``thread/items/list`` request (a cheap test first: most frames are not)."""
        if ITEMS_LIST not in text:
            return
        try:
            obj = json.loads(text)
        except ValueError:
            return
        if not isinstance(obj, dict) or obj.get("method") != ITEMS_LIST or "id" not in obj:
            return
        params = obj.get("params")
        thread_id = params.get("threadId") if isinstance(params, dict) else None
        if not isinstance(thread_id, str):
            return
        self.wanted[_id_key(obj["id"])] = thread_id
        while len(self.wanted) > MAX_TRACKED:
            self.wanted.popitem(last=False)

    def frames_after(self, text: str) -> list[str]:
        """What to send right after this frame: the catch-up if it answers an item list."""
        if not self.wanted or self.sub is None or not text.startswith('{"id":'):
            return []
        try:
            obj = json.loads(text)
        except ValueError:
            return []
        thread_id = self.wanted.pop(_id_key(obj.get("id")), None)
        result = obj.get("result")
        if thread_id is None or not isinstance(result, dict):
            return []
        listed = set()
        for entry in result.get("data") or []:
            item = entry.get("item") if isinstance(entry, dict) else None
            if isinstance(item, dict):
                listed.add(item.get("id"))
        return open_messages(self.session.replay, self.sub.cursor, thread_id, listed)


def open_messages(replay: ReplayBuffer, cursor: int, thread_id: str, listed: set[Any]) -> list[str]:
    """``item/started`` + text so far of each agent message open in the thread's running turn."""
    completed: set[Any] = set()
    started: list[tuple[Any, str, dict[str, Any]]] = []  # newest first
    deltas: dict[Any, list[str]] = {}
    for seq in range(cursor, replay.first_seq - 1, -1):
        entry = replay.get(seq)
        if entry is None or entry.directed or thread_id not in entry.text:
            continue
        if entry.delta is not None:
            key = entry.key
            if key is not None and key[0] == DELTA and key[1] == thread_id:
                deltas.setdefault(key[3], []).append(entry.delta)
            continue
        try:
            obj = json.loads(entry.text)
        except ValueError:
            continue
        params = obj.get("params") if isinstance(obj, dict) else None
        if not isinstance(params, dict) or params.get("threadId") != thread_id:
            continue
        method = obj.get("method")
        if method == "turn/completed":
            return []  # the thread's latest turn is over: nothing is open
        if method == "turn/started":
            break
        item = params.get("item")
        if not isinstance(item, dict):
            continue
        if method == "item/completed":
            completed.add(item.get("id"))
        elif method == "item/started" and item.get("type") == "agentMessage":
            started.append((item.get("id"), entry.text, params))
    frames: list[str] = []
    for item_id, text, params in reversed(started):
        if item_id in completed or item_id in listed:
            continue
        frames.append(text)
        so_far = "".join(reversed(deltas.get(item_id, [])))
        if so_far:
            delta = {
                "threadId": thread_id,
                "turnId": params.get("turnId"),
                "itemId": item_id,
                "delta": so_far,
            }
            frames.append(m.notification(DELTA, delta))
    return frames

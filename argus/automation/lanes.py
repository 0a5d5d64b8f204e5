"""Lanes: the busy state of each (session, thread), driven by what the runtime says.

A lane is busy from the moment a turn is started (by the daemon, or by a client's direct
``turn/start``) until ``turn/completed`` arrives for it; at most one daemon-started turn
runs per lane, and queued inputs wait for the lane to be free. This module is sans-IO: it
turns notifications into state changes and tells its caller which lanes to wake.

While the daemon's own ``turn/start`` is in flight (``starting``), the lane's turn is the
one that request's response names, nothing else: a ``turn/started`` or ``turn/completed``
of another turn (a bridge replaying an old gateway's output, a turn already running when
the runtime was re-adopted) neither claims nor frees the lane. Completions are counted, so
the engine can tell whether a turn ended while its start was being refused.

Memory bounds: a lane's accumulated reply text is capped (``TEXT_CAP``); the set of
recently completed turn ids per lane is a short deque; idle lanes with no worker are
dropped by ``LaneTable.prune``; the table itself is capped at ``MAX_LANES`` (beyond it the
oldest idle lanes are dropped first, never a busy one).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

import trio

TEXT_CAP = 64 * 1024
MAX_LANES = 100_000
RECENT_TURNS = 8


@dataclass(eq=False)
class Lane:
    """One (session, thread): busy state, the active turn and the reply being written."""

    session_id: str
    thread_id: str
    busy: bool = False
    starting: bool = False  # the daemon's turn/start is in flight: its response decides
    completions: int = 0  # turn/completed seen on this lane (ever)
    last_completed: dict[str, Any] | None = None  # params of the latest turn/completed
    active_turn_id: str | None = None
    kind: str | None = None  # user | followup | heartbeat | cron | client
    source: tuple[str | None, str | None] = (None, None)
    last_output: float = 0.0  # trio clock: the watchdog's reference
    heartbeat_requested: bool = False
    worker: bool = False
    changed: trio.Event = field(default_factory=trio.Event)
    text_parts: list[str] = field(default_factory=list)
    text_size: int = 0
    final_text: str | None = None
    recent_completed: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=RECENT_TURNS)
    )

    def notify(self) -> None:
        """Wake whoever waits for this lane to change."""
        self.changed.set()
        self.changed = trio.Event()

    def start(self, kind: str, source: tuple[str | None, str | None] = (None, None)) -> None:
        """Mark the lane busy for a turn being started now."""
        self.busy = True
        self.starting = False
        self.kind = kind
        self.source = source
        self.active_turn_id = None
        self.last_output = trio.current_time()
        self.text_parts.clear()
        self.text_size = 0
        self.final_text = None

    def release(self) -> None:
        """The lane is free again."""
        self.busy = False
        self.starting = False
        self.active_turn_id = None
        self.notify()

    def add_text(self, delta: str) -> None:
        """Accumulate streamed agent text, up to ``TEXT_CAP`` characters."""
        room = TEXT_CAP - self.text_size
        if room > 0:
            piece = delta[:room]
            self.text_parts.append(piece)
            self.text_size += len(piece)

    def reply_text(self) -> str:
        """The turn's final agent message, else what was streamed."""
        if self.final_text is not None:
            return self.final_text
        return "".join(self.text_parts)


def turn_id_of(params: dict[str, Any]) -> str | None:
    """``params.turnId``, else ``params.turn.id`` (both spellings occur)."""
    turn_id = params.get("turnId")
    if isinstance(turn_id, str) and turn_id:
        return turn_id
    turn = params.get("turn")
    if isinstance(turn, dict) and isinstance(turn.get("id"), str):
        return turn["id"]
    return None


class LaneTable:
    """Every lane of the daemon, keyed by (session, thread)."""

    def __init__(self) -> None:
        self.lanes: dict[tuple[str, str], Lane] = {}

    def get(self, session_id: str, thread_id: str) -> Lane:
        """The lane, created on first use."""
        key = (session_id, thread_id)
        lane = self.lanes.get(key)
        if lane is None:
            if len(self.lanes) >= MAX_LANES:
                self.prune(limit=len(self.lanes) - MAX_LANES + 1)
            lane = self.lanes[key] = Lane(session_id, thread_id)
        return lane

    def find(self, session_id: str, thread_id: str) -> Lane | None:
        """The lane if it exists."""
        return self.lanes.get((session_id, thread_id))

    def of_session(self, session_id: str) -> list[Lane]:
        """All lanes of a session."""
        return [lane for (sid, _), lane in self.lanes.items() if sid == session_id]

    def prune(self, limit: int | None = None) -> int:
        """Drop idle lanes that have no worker (oldest first); how many were dropped."""
        dropped = 0
        for key, lane in list(self.lanes.items()):
            if limit is not None and dropped >= limit:
                break
            if not lane.busy and not lane.worker and not lane.heartbeat_requested:
                del self.lanes[key]
                dropped += 1
        return dropped

    def on_notification(self, session_id: str, method: str, params: dict[str, Any]) -> Lane | None:
        """Apply one runtime notification; returns the lane whose turn just completed."""
        thread_id = params.get("threadId")
        if type(thread_id) is not str:
            return None
        if method == "turn/started":
            lane = self.get(session_id, thread_id)
            if not lane.busy:
                lane.start("client")
            if not lane.starting:
                lane.active_turn_id = turn_id_of(params) or lane.active_turn_id
            lane.last_output = trio.current_time()
            return None
        lane = self.lanes.get((session_id, thread_id))
        if lane is None:
            return None
        lane.last_output = trio.current_time()
        if method == "turn/completed":
            return self._on_completed(lane, params)
        turn_id = params.get("turnId")
        if (
            lane.active_turn_id is not None
            and type(turn_id) is str
            and turn_id != lane.active_turn_id
        ):
            return None  # another turn's output (an old turn replayed): not this reply
        if method == "item/agentMessage/delta":
            delta = params.get("delta")
            if type(delta) is str:
                lane.add_text(delta)
        elif method == "item/completed":
            item = params.get("item")
            if isinstance(item, dict) and item.get("type") == "agentMessage":
                text = item.get("text")
                if isinstance(text, str) and text.strip() and item.get("phase") != "commentary":
                    lane.final_text = text[:TEXT_CAP]
        return None

    @staticmethod
    def _on_completed(lane: Lane, params: dict[str, Any]) -> Lane | None:
        turn_id = turn_id_of(params)
        lane.completions += 1
        lane.last_completed = params
        if turn_id is not None:
            lane.recent_completed.append(turn_id)
        if (
            lane.busy
            and not lane.starting
            and (lane.active_turn_id is None or turn_id is None or turn_id == lane.active_turn_id)
        ):
            return lane
        return None

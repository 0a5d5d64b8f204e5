"""``run_turn``: start a turn and follow it to its end, across reconnects.

Why here and not in every caller: a turn's outcome is spread over many notifications
(``item/agentMessage/delta`` while it streams, ``item/completed`` with each message's final
text, ``turn/completed`` with the status), possibly interleaved with other threads' and other
clients' traffic, and possibly cut by a disconnect. The session's subscription already
guarantees every message once and in order, so following a turn is just filtering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from .connection import ArgusClientError

if TYPE_CHECKING:
    from .session import ArgusSession

Message = dict[str, Any]


@dataclass
class TurnResult:
    """How a turn ended: ``status`` (completed, interrupted, failed), the final agent text."""

    thread_id: str
    turn_id: str | None
    status: str
    text: str
    messages: list[str] = field(default_factory=list)  # every agent message, in order
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the turn completed."""
        return self.status == "completed"


def _turn_id_of(params: dict[str, Any]) -> Any:
    turn = params.get("turn")
    if isinstance(turn, dict):
        return turn.get("id")
    return params.get("turnId")


class _TurnFollower:
    """Builds a TurnResult from the messages of one thread."""

    def __init__(self, thread_id: str, on_delta: Callable[[str], None] | None) -> None:
        self.thread_id = thread_id
        self.on_delta = on_delta
        self.turn_id: Any = None
        self.early: list[Message] = []  # this thread's messages before the turn id is known
        self.order: list[str] = []  # agent message item ids, in order of appearance
        self.texts: dict[str, str] = {}
        self.result: TurnResult | None = None

    def feed(self, message: Message) -> None:
        """Take one message of the session (any thread); others' traffic is ignored."""
        method = message.get("method")
        params = message.get("params")
        if not isinstance(params, dict):
            return
        if method == "argus/runtime/exited":
            self.finish("failed", "the runtime exited during the turn")
            return
        if params.get("threadId") != self.thread_id:
            return
        if self.turn_id is None:
            self.early.append(message)
            return
        if _turn_id_of(params) not in (self.turn_id, None):
            return
        if method == "item/agentMessage/delta":
            item_id = str(params.get("itemId"))
            delta = str(params.get("delta", ""))
            if item_id not in self.texts:
                self.order.append(item_id)
                self.texts[item_id] = ""
            self.texts[item_id] += delta
            if self.on_delta is not None:
                self.on_delta(delta)
        elif method == "item/completed":
            item = params.get("item")
            if isinstance(item, dict) and item.get("type") == "agentMessage":
                item_id = str(item.get("id"))
                if item_id not in self.texts:
                    self.order.append(item_id)
                    if self.on_delta is not None and item.get("text"):
                        self.on_delta(str(item.get("text")))  # it never streamed
                self.texts[item_id] = str(item.get("text", self.texts.get(item_id, "")))
        elif method == "turn/completed":
            turn = params.get("turn") if isinstance(params.get("turn"), dict) else {}
            error = turn.get("error")
            message_text = error.get("message") if isinstance(error, dict) else None
            self.finish(str(turn.get("status", "completed")), message_text)

    def started(self, turn_id: Any) -> None:
        """``turn/start`` answered: replay what arrived before the turn's id was known."""
        self.turn_id = turn_id
        early, self.early = self.early, []
        for message in early:
            self.feed(message)

    def finish(self, status: str, error: str | None) -> None:
        """Record the outcome once (the first end seen wins)."""
        if self.result is not None:
            return
        messages = [self.texts[i] for i in self.order]
        self.result = TurnResult(
            self.thread_id,
            self.turn_id,
            status,
            messages[-1] if messages else "",
            messages,
            error,
        )


async def run_turn(
    session: ArgusSession,
    thread_id: str,
    text: str,
    *,
    on_delta: Callable[[str], None] | None = None,
) -> TurnResult:
    """Start a turn with ``text`` on ``thread_id``; return when it ended.

    ``on_delta`` sees the agent's text as it streams. A reconnect in the middle changes
    nothing: the subscription resumes where it stopped. A ``turn/start`` the runtime refuses
    raises ``RpcError``.
    """
    follower = _TurnFollower(thread_id, on_delta)
    params = {
        "threadId": thread_id,
        "input": [{"type": "text", "text": text, "text_elements": []}],
    }
    refused: list[BaseException] = []
    async with session.notifications() as stream, trio.open_nursery() as nursery:

        async def start() -> None:
            try:
                result = await session.request("turn/start", params)
            except ArgusClientError as exc:
                refused.append(exc)
                nursery.cancel_scope.cancel()
                return
            follower.started(result["turn"]["id"])

        nursery.start_soon(start)
        async for message in stream:
            follower.feed(message)
            if follower.result is not None:
                break
        nursery.cancel_scope.cancel()
    if refused:
        raise refused[0]
    if follower.result is None:  # the stream ended without an error: the session closed
        follower.finish("failed", "the session was closed")
    assert follower.result is not None
    return follower.result

"""Routing runtime responses to whoever waits: part of ``Session``, kept apart for size.

Every request the gateway forwarded is in the connection's ``RequestMap``. A response is
looked up there once: it goes to the client that asked (its own id restored) or resolves
the daemon's internal call; the answer to the in-flight ``initialize`` also settles every
waiter of the handshake. A response nobody waits for (a client that left, an id of an
earlier gateway's connection) is handed to ``hooks.on_unmatched_response`` (the automation
resolves an earlier gateway's ``turn/start`` with it) and otherwise dropped.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..protocol import codes
from ..protocol import messages as m
from .connection import HandshakeWaiter, InternalCall, RuntimeConnection, Waiter
from .hooks import SessionHooks
from .subscriber import Subscriber

if TYPE_CHECKING:
    from .replay import ReplayBuffer

log = logging.getLogger("argus.sessions.session")


class AnswerRouting:
    """The response half of ``Session`` (it provides the attributes used here)."""

    id: str
    hooks: SessionHooks
    replay: ReplayBuffer
    subscribers: dict[int, Subscriber]

    def _answer(
        self,
        waiter: Waiter | None,
        original_id: Any,
        after: int,
        text: str | None = None,
        upstream_id: int = 0,
        *,
        result: Any = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        """Hand an answer to whoever waits for it: an internal call, or a client with its
        own id restored (the runtime's ``text`` spliced when there is one). Nobody: dropped."""
        if isinstance(waiter, InternalCall):
            waiter.resolve(result, error)
        elif waiter is not None and (sub := self.subscribers.get(waiter)) is not None:
            if text is not None:
                sub.push(m.restore_id(text, upstream_id, original_id), after)
            elif error is not None:
                code = error.get("code", codes.INTERNAL_ERROR)
                sub.push(m.error_response(original_id, code, str(error.get("message"))), after)
            else:
                sub.push(m.result_response(original_id, result), after)

    def _on_response(self, conn: RuntimeConnection, obj: dict, text: str) -> None:
        upstream_id = obj["id"]
        pending, is_initialize = conn.requests.answer(upstream_id)
        if pending is None:
            # An id of an earlier epoch: the answer to a previous gateway's request, which a
            # bridge replays or forwards after a restart. Never anyone's answer here.
            earlier = conn.requests.from_earlier_connection(upstream_id)
            why = "from an earlier connection" if earlier else "with unknown id"
            log.debug("unmatched response %s session=%s id=%r", why, self.id, upstream_id)
            self.hooks.on_unmatched_response(self, upstream_id, obj)  # type: ignore[arg-type]
            return
        if is_initialize:
            self._on_initialize_response(conn, obj)
        elif pending.thread_id is not None and "error" in obj:
            self.hooks.on_client_turn_refused(self, pending.thread_id)
        after = self.replay.last_seq
        result, error = obj.get("result"), obj.get("error")
        self._answer(
            pending.waiter,
            pending.original_id,
            after,
            text,
            upstream_id,
            result=result,
            error=error,
        )
        if is_initialize:
            self._released(conn, pending.waiter)

    def _on_initialize_response(self, conn: RuntimeConnection, obj: dict) -> None:
        """The in-flight ``initialize`` was answered: settle the handshake's waiters."""
        result = obj.get("result")
        after = self.replay.last_seq
        if isinstance(result, dict):
            for waiter in conn.handshake.on_result(result):
                self._answer(waiter.waiter, waiter.original_id, after, result=result)
                self._released(conn, waiter.waiter)
        else:
            error = obj.get("error")
            if not isinstance(error, dict):
                error = {"code": codes.INTERNAL_ERROR, "message": "initialize failed"}
            self._fail_waiters(conn.handshake.on_error(), error)

    def _released(self, conn: RuntimeConnection, waiter: Waiter | None) -> None:
        """A client's initialize was answered: the server requests held for it go out."""
        if isinstance(waiter, int):
            self._release_requests(conn, self.subscribers.get(waiter))  # type: ignore[attr-defined]

    def _fail_waiters(self, waiters: list[HandshakeWaiter], error: dict[str, Any]) -> None:
        after = self.replay.last_seq
        for waiter in waiters:
            self._answer(waiter.waiter, waiter.original_id, after, error=error)

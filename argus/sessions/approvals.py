"""Routing runtime requests (approvals) to clients: part of ``Session``, kept apart for size.

A server request is sequenced (a directed replay entry, so ``since`` keeps its place) and
kept pending until a client answers it or the runtime resolves it. It goes to the turn's
owner, else the session's request handler, else any client; a client that attaches while
it is pending gets it too. Requests are never auto-declined.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..protocol import messages as m
from .connection import PendingServerRequest, RuntimeConnection
from .subscriber import Subscriber

if TYPE_CHECKING:
    from .replay import ReplayBuffer

log = logging.getLogger("argus.sessions.session")

MAX_PENDING_SERVER_REQUESTS = 1024


class ApprovalRouting:
    """The approval half of ``Session`` (it provides the attributes used here)."""

    id: str
    replay: ReplayBuffer
    subscribers: dict[int, Subscriber]
    request_handler: int | None

    def _on_server_request(self, conn: RuntimeConnection, obj: dict, text: str) -> None:
        """A request from the runtime: sequence it, keep it pending, deliver it."""
        key = m.id_key(obj["id"])
        if key in conn.pending_server:
            log.warning("duplicate server request id session=%s id=%s", self.id, key)
            return
        if len(conn.pending_server) >= MAX_PENDING_SERVER_REQUESTS:
            log.warning("too many pending server requests, dropping session=%s", self.id)
            return
        params = obj.get("params") if isinstance(obj.get("params"), dict) else {}
        thread_id = params.get("threadId")
        turn_id = params.get("turnId")
        entry = self.replay.append(text, directed=True)
        pending = PendingServerRequest(
            entry.seq,
            text,
            thread_id if isinstance(thread_id, str) else None,
            turn_id if isinstance(turn_id, str) else None,
        )
        conn.pending_server[key] = pending
        self._route_server_request(conn, pending)
        self.hooks.on_server_request(self, obj["id"], obj["method"], params)  # type: ignore[attr-defined]

    async def answer_server_request(self, request_id: Any, result: Any) -> bool:
        """Answer a pending runtime request as the gateway (a chat's button): first wins.

        False when it is not pending any more (another client answered, or it resolved).
        """
        conn: RuntimeConnection | None = self._conn  # type: ignore[attr-defined]
        if conn is None or conn.pending_server.pop(m.id_key(request_id), None) is None:
            return False
        await self._send_line(conn, m.dumps({"id": request_id, "result": result}))  # type: ignore[attr-defined]
        return True

    def _route_server_request(self, conn: RuntimeConnection, pending: PendingServerRequest) -> None:
        target: int | None = None
        owner = conn.turn_owners.get(pending.thread_id) if pending.thread_id else None
        if owner in self.subscribers:
            target = owner
        elif self.request_handler in self.subscribers:
            target = self.request_handler
        elif self.subscribers:
            target = next(iter(self.subscribers))
        if target is None:
            return  # stays pending; delivered to the next client that attaches
        self.request_handler = target
        self._deliver_pending(self.subscribers[target], pending)

    def _deliver_pending(self, sub: Subscriber, pending: PendingServerRequest) -> None:
        pending.delivered_to.add(sub.key)
        text = m.splice_seq(pending.text, pending.seq) if sub.with_seq else pending.text
        sub.push(text, pending.seq - 1)

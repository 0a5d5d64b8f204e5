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
    # Clients that get server requests only once their initialize was answered (codex
    # remote clients: one not set up yet may refuse a request, codex answers what it
    # cannot handle with -32601, and the first answer wins).
    awaiting_initialize: set[int]

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
        waiting = self.awaiting_initialize  # they get it once their initialize is answered
        if owner in self.subscribers and owner not in waiting:
            target = owner
        elif self.request_handler in self.subscribers and self.request_handler not in waiting:
            target = self.request_handler
        else:
            target = next((k for k in self.subscribers if k not in waiting), None)
        if target is None:
            return  # stays pending; delivered to the next client that attaches (or initializes)
        self.request_handler = target
        self._deliver_pending(self.subscribers[target], pending)

    def _deliver_pending(self, sub: Subscriber, pending: PendingServerRequest) -> None:
        if sub.key in self.awaiting_initialize:
            return  # delivered by ``_release_requests`` after its initialize
        pending.delivered_to.add(sub.key)
        text = m.splice_seq(pending.text, pending.seq) if sub.with_seq else pending.text
        sub.push(text, pending.seq - 1)

    def _release_requests(self, conn: RuntimeConnection | None, sub: Subscriber | None) -> None:
        """A held-back client was answered its initialize: give it what is pending."""
        if sub is None or sub.key not in self.awaiting_initialize:
            return
        self.awaiting_initialize.discard(sub.key)
        if conn is None:
            return
        for pending in list(conn.pending_server.values()):
            if sub.key not in pending.delivered_to:
                self._deliver_pending(sub, pending)

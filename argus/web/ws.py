"""``/ws``: the client WebSocket, as a raw ASGI handler.

Why raw ASGI rather than a Quart route: this is the hot path (every streamed delta of
every client goes through it), and the raw handler avoids Quart's per-connection request
context, second task and message queue, which cost both frames per second and memory per
idle client (see bench/). The HTTP API stays on Quart.

The handler owns only its connection: it authenticates, attaches a subscriber to a
session, feeds the client's frames into the session, and returns. Everything sent to the
client is sent by the subscriber's sender task, which runs in the session's nursery; the
handler sends only the ``argus/session`` frame (before that task starts, so no runtime
message can overtake it) and the final close frame (after it ended).
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from .. import auth, metrics
from ..config import Settings
from ..protocol import codes
from ..protocol import messages as m
from ..provision.base import ProvisionError
from ..sessions.manager import (
    DEFAULT_SESSION_ID,
    SessionManager,
    TooManySessions,
    valid_session_id,
)
from ..sessions.session import Session, SessionGone
from ..sessions.subscriber import Subscriber
from . import authlimit
from .accept import accept, close_reason

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0


class WsEndpoint:
    """The ``/ws`` ASGI handler."""

    def __init__(self, settings: Settings, manager: SessionManager) -> None:
        self.settings = settings
        self.manager = manager

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve one WebSocket connection."""
        accepted = await accept(
            scope, receive, send, self.settings.allowed_origins, self.settings.admin_token
        )
        if accepted is None:
            return
        query, token = accepted.query, accepted.token

        async def close(code: int, reason: str) -> None:
            with trio.move_on_after(CLOSE_TIMEOUT_S):
                await send(
                    {"type": "websocket.close", "code": code, "reason": close_reason(reason)}
                )

        address = authlimit.client_address(scope)
        if authlimit.LIMITER.limited(address, "ws"):
            await close(authlimit.CLOSE_RATE_LIMITED, authlimit.REASON)
            return
        if not auth.token_matches(self.settings.admin_token, token):
            authlimit.LIMITER.failed(address, "ws")
            await close(codes.CLOSE_POLICY_VIOLATION, "Unauthorized")
            return
        opts, problem = parse_options(query)
        if problem:
            await close(codes.CLOSE_POLICY_VIOLATION, problem)
            return
        session, created, problem_code, problem = await self._open_session(opts["session"])
        if session is None:
            await close(problem_code, problem)
            return
        await self._serve_client(session, created, opts, receive, send, close)

    async def _open_session(self, wanted: str | None) -> tuple[Session | None, bool, int, str]:
        created = False
        if wanted == DEFAULT_SESSION_ID:
            try:
                session, created = await self.manager.default_session()
            except TooManySessions as exc:
                return None, False, 1013, str(exc)
        elif wanted is not None:
            session = self.manager.get(wanted) if valid_session_id(wanted) else None
            if session is None:
                return None, False, codes.CLOSE_POLICY_VIOLATION, "Unknown session"
        else:
            try:
                session = await self.manager.create()
            except TooManySessions as exc:
                return None, False, codes.CLOSE_TRY_AGAIN_LATER, str(exc)
            created = True
        try:
            await session.ensure_running()
        except ProvisionError as exc:
            log.warning("provisioning failed session=%s: %s", session.id, exc)
            if created:
                await self.manager.delete(session.id)
            return None, False, codes.CLOSE_INTERNAL_ERROR, f"Provisioning failed: {exc}"
        except SessionGone:
            return None, False, codes.CLOSE_POLICY_VIOLATION, "Unknown session"
        return session, created, 0, ""

    async def _serve_client(
        self,
        session: Session,
        created: bool,
        opts: dict[str, Any],
        receive: Any,
        send: Any,
        close: Any,
    ) -> None:
        async def send_text(text: str) -> None:
            await send({"type": "websocket.send", "text": text})

        try:
            sub, seq = session.attach(
                send_text,
                since=opts["since"],
                with_seq=opts["seq"],
                coalesce=opts["coalesce"],
                live=opts.get("live", False),
                requests_after_initialize=opts.get("live", False),
            )
        except SessionGone:
            await close(codes.CLOSE_POLICY_VIOLATION, "Unknown session")
            return
        if (on_attach := opts.get("on_attach")) is not None:
            on_attach(sub)
        client_gone = False
        try:
            frame = {
                "id": session.id,
                "mode": session.mode,
                "attached": opts["session"] is not None,
                "created": created,
                "seq": seq,
            }
            await send_text(m.notification("argus/session", frame))
            # The receive loop runs in this task (no extra task per idle client); the
            # subscriber cancels it when its sender is done.
            with trio.CancelScope() as receiving:
                sub.on_done = receiving.cancel
                session.start_sender(sub)
                await self._receive_loop(session, sub, receive, opts.get("surface", "ws"))
            await sub.done.wait()
            client_gone = sub.close_code == codes.CLOSE_ABNORMAL
        except SessionGone:
            sub.close_code = sub.close_code or codes.CLOSE_GOING_AWAY
        finally:
            session.detach(sub)
        if not client_gone and sub.close_code is not None:
            await close(sub.close_code, sub.close_reason)

    async def _receive_loop(
        self, session: Session, sub: Subscriber, receive: Any, surface: str
    ) -> None:
        frames_in = metrics.STATS.frames_in
        bytes_in = metrics.STATS.bytes_in
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                text = message.get("text")
                frames_in[surface] += 1
                bytes_in[surface] += len(text if text is not None else message.get("bytes") or b"")
                if text is None:
                    error = "Invalid request: binary frames are not supported; send JSON text"
                    sub.push(m.error_response(None, codes.INVALID_REQUEST, error), sub.cursor)
                    continue
                await session.handle_client_text(sub, text)
            elif kind == "websocket.disconnect":
                sub.request_close(codes.CLOSE_ABNORMAL, "Client disconnected", drain=False)
                return


def parse_options(query: dict[str, list[str]]) -> tuple[dict[str, Any], str]:
    """``session``, ``since``, ``seq`` and ``coalesce`` from the query; or a problem."""
    session = (query.get("session") or [""])[0].strip() or None
    since_raw = (query.get("since") or [""])[0].strip()
    since: int | None = None
    if since_raw:
        if not (since_raw.isascii() and since_raw.isdigit()) or len(since_raw) > 20:
            return {}, "Invalid 'since': expected a sequence number"
        since = int(since_raw)
    seq = (query.get("seq") or ["0"])[0].strip().lower() in ("1", "true", "yes")
    coalesce = (query.get("coalesce") or ["1"])[0].strip().lower() not in ("0", "false", "no")
    return {"session": session, "since": since, "seq": seq, "coalesce": coalesce}, ""

"""``/`` as a WebSocket: the endpoint ``codex --remote ws://HOST:PORT`` connects to.

Why a surface of its own: the codex TUI (0.169.0) only accepts an address ``ws(s)://host:port``
with path ``/`` and no query, authenticates with ``Authorization: Bearer``, and recovers
from a disconnect with a fresh ``initialize`` and ``thread/resume`` rather than a replay.
So, compared with ``/ws``:

* the session comes from the token, since the URL can carry none: a session token opens its
  own session; the admin token (or no token, where auth is off) opens the default session;
* the client starts live: nothing buffered is replayed unasked, and no ``argusSeq`` is added;
* the upgrade is accepted without echoing ``x-codex-app-server-compression`` (echoing it
  would make codex expect zstd binary frames);
* after its ``thread/items/list`` answer the client gets the thread's still-streaming agent
  messages as they stand (``codex_catchup``), which its rebuilt transcript would lack.

Everything else is ``/ws``: the auth-failure rate limit and metrics (surface ``remote``),
the Origin check, the ``argus/session`` first frame (codex drops
unknown notifications), ``initialize`` answered per connection from the session's cache with
the client's id restored exactly (codex waits for the string id ``"initialize"``), and
server requests routed to the turn's owner or, when it is gone, to another client.
A plain HTTP ``GET /`` never reaches this handler (the ASGI router splits by scope type).
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from .. import auth
from ..config import Settings
from ..protocol import codes
from ..sessions.manager import DEFAULT_SESSION_ID, SessionManager
from . import authlimit
from .accept import accept, close_reason
from .codex_catchup import ThreadCatchUp
from .ws import CLOSE_TIMEOUT_S, WsEndpoint

log = logging.getLogger(__name__)


class CodexRemoteEndpoint(WsEndpoint):
    """The ``/`` WebSocket handler for codex remote clients."""

    def __init__(self, settings: Settings, manager: SessionManager, secret: str) -> None:
        super().__init__(settings, manager)
        self.secret = secret

    def session_for_token(self, token: str | None) -> str | None:
        """The session a token opens here, or None when it opens nothing."""
        session_id = auth.session_of_token(self.secret, token) if self.secret else None
        if session_id is not None:
            return session_id
        if auth.token_matches(self.settings.admin_token, token):
            return DEFAULT_SESSION_ID
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve one codex remote connection."""
        # The one accept path: the Origin rule, then the token (codex sends it in the
        # Authorization header). The accept carries no headers: in particular no
        # x-codex-app-server-compression.
        accepted = await accept(scope, receive, send, self.settings.allowed_origins)
        if accepted is None:
            return
        token = accepted.token

        async def close(code: int, reason: str) -> None:
            with trio.move_on_after(CLOSE_TIMEOUT_S):
                await send(
                    {"type": "websocket.close", "code": code, "reason": close_reason(reason)}
                )

        address = authlimit.client_address(scope)
        if authlimit.LIMITER.limited(address, "remote"):
            await close(authlimit.CLOSE_RATE_LIMITED, authlimit.REASON)
            return
        session_id = self.session_for_token(token)
        if session_id is None:
            authlimit.LIMITER.failed(address, "remote")
            await close(codes.CLOSE_POLICY_VIOLATION, "Unauthorized")
            return
        session, created, problem_code, problem = await self._open_session(session_id)
        if session is None:
            await close(problem_code, problem)
            return
        catch_up = ThreadCatchUp(session)

        async def receive_noting() -> Any:
            message = await receive()
            if message.get("type") == "websocket.receive" and message.get("text"):
                catch_up.on_client_text(message["text"])
            return message

        async def send_catching_up(message: dict[str, Any]) -> None:
            await send(message)
            if message.get("type") == "websocket.send" and catch_up.wanted:
                for frame in catch_up.frames_after(message.get("text") or ""):
                    await send({"type": "websocket.send", "text": frame})

        opts = {
            "session": session.id,
            "since": None,
            "seq": False,
            "coalesce": True,
            "live": True,
            "on_attach": catch_up.attached,
            "surface": "remote",
        }
        await self._serve_client(session, created, opts, receive_noting, send_catching_up, close)

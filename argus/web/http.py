"""The HTTP API on Quart-Trio: health, sessions, and (later) automation and nodes.

Errors are JSON with a human ``detail`` (the original's member, kept for its clients) and a
stable machine ``code``. Admin routes take the token from ``Authorization: Bearer`` or
``?token=`` and compare it in constant time.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from .. import auth
from ..automation.service import Automation
from ..config import Settings
from ..sessions.manager import SessionManager
from .automation_http import add_automation_routes
from .shared import error, request_token

View = Callable[..., Awaitable[Any]]


def admin_only(settings: Settings) -> Callable[[View], View]:
    """A decorator for admin routes: the admin token, compared in constant time, else 401."""

    def admin(view: View) -> View:
        @functools.wraps(view)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not auth.token_matches(settings.admin_token, request_token()):
                return error(401, "unauthorized", "Unauthorized")
            return await view(*args, **kwargs)

        return wrapper

    return admin


def build_http_app(
    settings: Settings, manager: SessionManager, automation: Automation | None = None
) -> QuartTrio:
    """The Quart app serving every HTTP route."""
    app = QuartTrio("argus")
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = True
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024  # API bodies are small; larger: 413
    admin = admin_only(settings)

    @app.before_request
    async def read_body_first() -> None:
        # Every body is read (bounded by MAX_CONTENT_LENGTH) before any route answers:
        # a response sent before its request's body was read leaves those bytes on a
        # keep-alive connection, where they stall the next request.
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            await request.get_data()

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Any:
        code = (exc.name or "error").lower().replace(" ", "_")
        response, status = error(exc.code or 500, code, exc.name or "Error")
        if status == 413:
            # The rest of the body was never read; on a keep-alive connection it would be
            # taken as the next request, which then never gets an answer. Close instead.
            response.headers["Connection"] = "close"
        return response, status

    @app.get("/healthz")
    async def healthz() -> Any:
        return {"ok": True}

    @app.get("/")
    async def index() -> Any:
        return Response(
            "Argus gateway is running. Connect a WebSocket client to /ws "
            "(see docs/client-guide.md).\n",
            content_type="text/plain",
        )

    @app.get("/robots.txt")
    async def robots() -> Any:
        return Response("User-agent: *\nDisallow: /\n", content_type="text/plain")

    @app.get("/sessions")
    @admin
    async def list_sessions() -> Any:
        return {"sessions": manager.describe()}

    @app.delete("/sessions/<session_id>")
    @admin
    async def delete_session(session_id: str) -> Any:
        purge = request.args.get("purge", "") in ("1", "true", "yes")
        if not await manager.delete(session_id, purge=purge):
            return error(404, "session_not_found", "Session not found")
        return {"ok": True, "sessionId": session_id}

    if automation is not None:
        add_automation_routes(app, admin, manager, automation)
    return app

"""The ASGI entry point: WebSocket routes go to raw handlers, everything else to Quart.

It is also the failure boundary of every WebSocket connection (``serve_contained``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from ..protocol import codes

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0

AsgiApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class ArgusAsgi:
    """Dispatches by scope: ``websocket`` scopes on known paths to their handler."""

    def __init__(self, http_app: AsgiApp, ws_routes: Mapping[str, AsgiApp]) -> None:
        self.http_app = http_app
        self.ws_routes = dict(ws_routes)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Route one ASGI connection."""
        if scope["type"] == "websocket":
            handler = self.ws_routes.get(scope["path"])
            if handler is None:
                await receive()
                await send(
                    {"type": "websocket.close", "code": codes.CLOSE_POLICY_VIOLATION}
                )  # HTTP 403
                return
            await serve_contained(handler, scope, receive, send)
            return
        await self.http_app(scope, receive, send)  # Quart turns a route's exception into 500


async def serve_contained(handler: AsgiApp, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Boundary for one WebSocket connection: a bug ends that connection with 1011 only."""
    try:
        await handler(scope, receive, send)
    except Exception:
        log.exception("internal error serving %s; closing that connection with 1011", scope["path"])
        with trio.move_on_after(CLOSE_TIMEOUT_S):
            try:
                close = {"type": "websocket.close", "code": codes.CLOSE_INTERNAL_ERROR}
                await send({**close, "reason": "Internal error"})
            except Exception:  # already closed, or the peer is gone
                log.debug("close after an internal error failed", exc_info=True)

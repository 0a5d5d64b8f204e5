"""The ASGI entry point: WebSocket routes go to raw handlers, everything else to Quart."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..protocol import codes

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
            await handler(scope, receive, send)
            return
        await self.http_app(scope, receive, send)

"""``/nodes/ws``: where nodes connect, register their commands and answer invokes.

Wire-compatible with the original (the ``connect`` frame, ``node.connected``,
``node.invoke.request``/``node.invoke.result``, ``node.heartbeat``,
``node.process.exited``), with its weaknesses fixed: the ``connect`` frame must arrive
within ``CONNECT_DEADLINE_S``; a session token may only register that session's runtime
node; results count only from the connection the invoke was sent to; a replaced
connection is closed with 1012 by its own handler, outside the registry.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..nodes.registry import NodeConnection, NodeRegistry
from ..nodes.scope import Scopes, runtime_node_id
from ..procs import now_ms
from ..protocol import codes
from ..protocol import messages as m
from .accept import accept, close_reason

log = logging.getLogger(__name__)

CONNECT_DEADLINE_S = 10.0
SEND_TIMEOUT_S = 10.0
MAX_LIST = 256  # commands/caps kept per node
MAX_FIELD = 200

NodeEventHandler = Callable[[NodeConnection, str, dict[str, Any]], Awaitable[None]]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()[:MAX_FIELD]
    return text or None


def _names(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [str(v)[:MAX_FIELD] for v in value[:MAX_LIST]]


class NodesEndpoint:
    """The ``/nodes/ws`` ASGI handler."""

    def __init__(
        self,
        registry: NodeRegistry,
        scopes: Scopes,
        on_event: NodeEventHandler | None = None,
        allowed_origins: tuple[str, ...] = (),
    ) -> None:
        self.allowed_origins = allowed_origins
        self.registry = registry
        self.scopes = scopes
        self.on_event = on_event
        self.allowed_origins = allowed_origins

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve one node connection."""
        accepted = await accept(scope, receive, send, self.allowed_origins)
        if accepted is None:
            return
        token = accepted.token
        lock = trio.Lock()

        async def send_frame(frame: dict[str, Any]) -> None:
            async with lock:
                with trio.fail_after(SEND_TIMEOUT_S):
                    await send({"type": "websocket.send", "text": json.dumps(frame)})

        async def close(code: int, reason: str) -> None:
            with trio.move_on_after(SEND_TIMEOUT_S):
                async with lock:
                    await send(
                        {"type": "websocket.close", "code": code, "reason": close_reason(reason)}
                    )

        principal = self.scopes.node_principal(token)
        if principal is None:
            await close(codes.CLOSE_POLICY_VIOLATION, "Unauthorized")
            return
        first: dict[str, Any] | None = None
        with trio.move_on_after(CONNECT_DEADLINE_S):
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            first = _json_object(message.get("text"))
        if first is None or first.get("type") != "connect":
            await close(codes.CLOSE_POLICY_VIOLATION, "First message must be {type:'connect', ...}")
            return
        node_id = _text(first.get("nodeId"))
        if node_id is None:
            await close(codes.CLOSE_POLICY_VIOLATION, "Missing nodeId")
            return
        if not principal.is_admin and node_id != runtime_node_id(principal.session_id or ""):
            await close(
                codes.CLOSE_POLICY_VIOLATION,
                "This token may only connect node runtime:<its session>",
            )
            return
        client = scope.get("client")
        conn = NodeConnection(
            node_id=node_id,
            display_name=_text(first.get("displayName")),
            platform=_text(first.get("platform")),
            version=_text(first.get("version")),
            caps=_names(first.get("caps")),
            commands=_names(first.get("commands")),
            send=send_frame,
            ip=client[0] if client else None,
            session_id=principal.session_id,
        )
        try:
            self.registry.register(conn)
        except OverflowError as exc:
            await close(codes.CLOSE_TRY_AGAIN_LATER, str(exc))
            return
        code, reason = codes.CLOSE_NORMAL, ""
        try:
            await send_frame(
                {"type": "event", "event": "node.connected", "payload": {"nodeId": node_id}}
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._receive_loop, conn, receive, nursery.cancel_scope)
                await conn.replaced.wait()
                code, reason = codes.CLOSE_SERVICE_RESTART, "replaced"
                nursery.cancel_scope.cancel()
        except (trio.TooSlowError, OSError):
            code, reason = codes.CLOSE_INTERNAL_ERROR, "send timed out"
        finally:
            self.registry.unregister(conn)
        if code:
            await close(code, reason)

    async def _receive_loop(
        self, conn: NodeConnection, receive: Any, done: trio.CancelScope
    ) -> None:
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                frame = _json_object(message.get("text"))
                if frame is None or frame.get("type") != "event":
                    continue
                payload = frame.get("payload")
                if not isinstance(payload, dict):
                    continue
                event = frame.get("event")
                conn.last_seen_ms = now_ms()
                if event == "node.invoke.result":
                    if str(payload.get("nodeId") or "") == conn.node_id:
                        self.registry.on_result(conn, payload)
                elif event == "node.process.exited":
                    if payload.get("nodeId") in (None, "", conn.node_id) and self.on_event:
                        await self.on_event(conn, event, payload)
        finally:
            done.cancel()


def _json_object(text: Any) -> dict[str, Any] | None:
    """A frame's JSON object; None for anything else (not JSON, too deep, lone surrogates)."""
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or (m.may_hold_surrogate(text) and m.has_lone_surrogate(value)):
        return None
    return value

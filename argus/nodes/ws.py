"""``/nodes/ws``: where nodes connect, as a raw ASGI handler like ``/ws``.

Wire-compatible with the original (§8): the first frame is ``{"type":"connect",...}``, the
gateway answers ``node.connected`` and later sends ``node.invoke.request``; the node sends
``node.invoke.result``, ``node.heartbeat`` and ``node.process.exited`` events. Differences,
all closing weaknesses: the connect frame must arrive within ARGUS_NODE_CONNECT_TIMEOUT_S
(close 1008), ``runtime:<sid>`` ids need that session's token, frames are size-bounded by
hypercorn (ARGUS_WS_MAX_MESSAGE_BYTES), and a binary frame is refused with 1003.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any
from urllib.parse import parse_qs

import trio

from ..config import Settings
from ..web import auth
from .registry import NodeConn, NodeRegistry, now_ms
from .scope import Scopes

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0
SEND_TIMEOUT_S = 30.0
MAX_LIST = 256  # commands/caps kept per node; the rest is dropped
MAX_FIELD = 200  # characters kept of nodeId/displayName/platform/version


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)[:MAX_FIELD]
    return text or None


def _str_list(value: Any) -> list[str]:
    return [str(e)[:MAX_FIELD] for e in value[:MAX_LIST]] if isinstance(value, list) else []


class NodeWsEndpoint:
    """The ``/nodes/ws`` ASGI handler."""

    def __init__(self, settings: Settings, registry: NodeRegistry, scopes: Scopes) -> None:
        self.settings = settings
        self.registry = registry
        self.scopes = scopes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve one node connection until it closes."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        headers = scope["headers"]
        origin = auth.header(headers, b"origin")
        if not auth.origin_allowed(origin, self.settings.allowed_origins):
            await send({"type": "websocket.close", "code": 1008})
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        token = auth.extract_token(auth.header(headers, b"authorization"), query)
        await send({"type": "websocket.accept"})
        send_lock = trio.Lock()

        async def close(code: int, reason: str) -> None:
            with trio.move_on_after(CLOSE_TIMEOUT_S):
                async with send_lock:
                    await send({"type": "websocket.close", "code": code, "reason": reason})

        async def send_text(text: str) -> None:
            with trio.fail_after(SEND_TIMEOUT_S):
                async with send_lock:
                    await send({"type": "websocket.send", "text": text})

        if not self.scopes.token_plausible(token):
            await close(1008, "Unauthorized")
            return
        first: Any = None
        with trio.move_on_after(self.settings.node_connect_timeout_s):
            first = await receive()
        if first is None:
            await close(1008, "connect frame not received in time")
            return
        if first["type"] != "websocket.receive":
            return
        try:
            frame = json.loads(first.get("text") or "")
        except ValueError:
            frame = None
        if not isinstance(frame, dict) or frame.get("type") != "connect":
            await close(1008, "First message must be {type:'connect', ...}")
            return
        node_id = str(frame.get("nodeId") or "").strip()[:MAX_FIELD]
        if not node_id:
            await close(1008, "Missing nodeId")
            return
        if not self.scopes.node_may_register(token, node_id):
            await close(1008, "Unauthorized")
            return
        if node_id not in self.registry.nodes and self.registry.full():
            await close(1013, "Too many nodes")
            return
        client = scope.get("client")
        conn = NodeConn(
            conn_id=uuid.uuid4().hex[:12],
            node_id=node_id,
            display_name=_text(frame.get("displayName")),
            platform=_text(frame.get("platform")),
            version=_text(frame.get("version")),
            caps=_str_list(frame.get("caps")),
            commands=_str_list(frame.get("commands")),
            send_text=send_text,
            close=close,
            ip=client[0] if client else None,
        )
        old = self.registry.register(conn)
        try:
            if old is not None:
                log.info("node %s reconnected: replacing the old connection", node_id)
                await old.close(1012, "replaced")
            ack = {"type": "event", "event": "node.connected", "payload": {"nodeId": node_id}}
            try:
                await send_text(json.dumps(ack))
            except (Exception, trio.TooSlowError):
                return
            await self._receive_loop(conn, receive)
        finally:
            self.registry.unregister(conn)

    async def _receive_loop(self, conn: NodeConn, receive: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await conn.close(1003, "binary frames are not supported")
                return
            try:
                frame = json.loads(text)
            except ValueError:
                continue
            if not isinstance(frame, dict) or frame.get("type") != "event":
                continue
            payload = frame.get("payload")
            if not isinstance(payload, dict):
                continue
            event = frame.get("event")
            if event == "node.invoke.result":
                self.registry.handle_result(conn, payload)
            elif event == "node.heartbeat":
                conn.last_seen_ms = now_ms()
            elif event == "node.process.exited":
                if str(payload.get("nodeId") or conn.node_id) != conn.node_id:
                    continue
                if not str(payload.get("jobId") or "").strip():
                    continue
                conn.last_seen_ms = now_ms()
                self.registry.emit(conn.node_id, "process.exited", payload)

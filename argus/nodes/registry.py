"""The node registry: connected nodes, their pending invokes, and invoke itself.

Why a registry object with a plain dict and no lock held across I/O: every mutation happens
synchronously between awaits (Trio is single-threaded), so the "lock" is simply that no
method awaits while it changes the maps; sends happen after the maps are consistent. A node
that reconnects replaces the old connection at once: the old one's pending invokes fail with
``NODE_REPLACED`` and its socket is closed 1012, and its later unregister is a no-op.

Invoke results are accepted only from the connection the request was sent to (the pending
entry records it), unlike the original, which matched by id alone.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_MS = 30_000
MAX_PENDING_PER_NODE = 256  # overflow: the invoke fails at once with BUSY

NodeEventHook = Callable[[str | None, str, str, dict[str, Any]], None]
"""``on_node_event(session_id | None, node_id, event, payload)``: wired by the daemon."""


def now_ms() -> int:
    """Wall-clock milliseconds, as the original reports them."""
    return int(time.time() * 1000)


@dataclass
class InvokeResult:
    """What a caller of ``invoke`` gets; ``as_json`` is the original's response shape."""

    ok: bool
    node_id: str
    command: str
    payload: Any = None
    payload_json: str | None = None
    error: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        """The ``POST /nodes/invoke`` body."""
        return {
            "ok": self.ok,
            "nodeId": self.node_id,
            "command": self.command,
            "payload": self.payload,
            "payloadJSON": self.payload_json,
            "error": self.error,
        }


@dataclass
class NodeConn:
    """One registered node connection."""

    conn_id: str
    node_id: str
    display_name: str | None
    platform: str | None
    version: str | None
    caps: list[str]
    commands: list[str]
    send_text: Callable[[str], Awaitable[None]]
    close: Callable[[int, str], Awaitable[None]]
    ip: str | None = None
    connected_at_ms: int = field(default_factory=now_ms)
    last_seen_ms: int = field(default_factory=now_ms)
    pending: dict[str, _Pending] = field(default_factory=dict)
    closed: bool = False

    def info(self) -> dict[str, Any]:
        """The ``GET /nodes`` entry."""
        return {
            "nodeId": self.node_id,
            "displayName": self.display_name,
            "platform": self.platform,
            "version": self.version,
            "caps": list(self.caps),
            "commands": list(self.commands),
            "connectedAtMs": self.connected_at_ms,
            "lastSeenMs": self.last_seen_ms,
        }


@dataclass
class _Pending:
    event: trio.Event = field(default_factory=trio.Event)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class NodeRegistry:
    """Connected nodes by id, and the invokes waiting on them."""

    def __init__(self, *, max_timeout_ms: int = 600_000, max_nodes: int = 1000) -> None:
        self.max_timeout_ms = max_timeout_ms
        self.max_nodes = max_nodes
        self.nodes: dict[str, NodeConn] = {}
        self.on_node_event: NodeEventHook | None = None

    # -- membership ----------------------------------------------------------------------

    def register(self, conn: NodeConn) -> NodeConn | None:
        """Make ``conn`` the node's connection; returns the replaced one (caller closes it)."""
        old = self.nodes.pop(conn.node_id, None)
        if old is not None:
            old.closed = True
            self._fail_pending(old, "NODE_REPLACED", "node replaced by a new connection")
        self.nodes[conn.node_id] = conn
        log.info("node connected node=%s commands=%d", conn.node_id, len(conn.commands))
        self.emit(conn.node_id, "connected", {"ip": conn.ip})
        return old

    def unregister(self, conn: NodeConn) -> None:
        """Forget ``conn`` if it is still the node's connection; fail its invokes at once."""
        conn.closed = True
        if self.nodes.get(conn.node_id) is not conn:
            return
        del self.nodes[conn.node_id]
        self._fail_pending(conn, "NODE_DISCONNECTED", "node disconnected")
        log.info("node disconnected node=%s", conn.node_id)
        self.emit(conn.node_id, "disconnected", {"ip": conn.ip})

    def full(self) -> bool:
        """True when no further node may register."""
        return len(self.nodes) >= self.max_nodes

    def _fail_pending(self, conn: NodeConn, code: str, message: str) -> None:
        for pending in conn.pending.values():
            pending.error = {"code": code, "message": message}
            pending.event.set()
        conn.pending.clear()

    def list_connected(self) -> list[dict[str, Any]]:
        """Every node's info, sorted by ``displayName or nodeId`` (the original's order)."""
        nodes = sorted(self.nodes.values(), key=lambda n: n.display_name or n.node_id)
        return [n.info() for n in nodes]

    def resolve(self, ident: str) -> str | None:
        """Exact nodeId, else the unique case-insensitive displayName match."""
        if ident in self.nodes:
            return ident
        wanted = ident.strip().lower()
        hits = [
            n.node_id
            for n in self.nodes.values()
            if n.display_name and n.display_name.strip().lower() == wanted
        ]
        return hits[0] if len(hits) == 1 else None

    # -- frames from a node --------------------------------------------------------------

    def handle_result(self, conn: NodeConn, payload: dict[str, Any]) -> None:
        """A ``node.invoke.result`` from ``conn``: resolves only ``conn``'s own invokes."""
        if str(payload.get("nodeId") or "") != conn.node_id:
            return
        conn.last_seen_ms = now_ms()
        pending = conn.pending.pop(str(payload.get("id") or ""), None)
        if pending is None:
            return  # unknown, late (timed out) or sent to another connection
        pending.result = payload
        pending.event.set()

    def emit(self, node_id: str, event: str, payload: dict[str, Any]) -> None:
        """Hand a node event to the daemon's hook (system events), or log it."""
        session_id = payload.get("sessionId") if isinstance(payload.get("sessionId"), str) else None
        if session_id is None and node_id.startswith("runtime:"):
            session_id = node_id.removeprefix("runtime:")
        hook = self.on_node_event
        if hook is None:
            if event == "process.exited":
                log.info(
                    "node job finished node=%s session=%s job=%s exitCode=%s",
                    node_id,
                    session_id,
                    payload.get("jobId"),
                    payload.get("exitCode"),
                )
            return
        try:
            hook(session_id, node_id, event, payload)
        except Exception:
            log.exception("on_node_event hook failed node=%s event=%s", node_id, event)

    # -- invoke --------------------------------------------------------------------------

    def clamp_timeout(self, timeout_ms: int | None) -> int:
        """The effective wait: default 30 s, at least 1 ms, at most ARGUS_NODE_INVOKE_MAX_MS."""
        if timeout_ms is None or timeout_ms <= 0:
            timeout_ms = DEFAULT_TIMEOUT_MS
        return min(int(timeout_ms), self.max_timeout_ms)

    async def invoke(
        self, node_id: str, command: str, params: Any, timeout_ms: int | None
    ) -> InvokeResult:
        """Send ``command`` to the node and wait for its result (or a stable error code)."""

        def fail(code: str, message: str) -> InvokeResult:
            return InvokeResult(False, node_id, command, error={"code": code, "message": message})

        conn = self.nodes.get(node_id)
        if conn is None or conn.closed:
            return fail("NOT_CONNECTED", "node not connected")
        # An empty command list advertises nothing, so nothing is accepted (the original
        # treated it as "everything").
        if command not in conn.commands:
            return fail("UNSUPPORTED", f"command not supported: {command}")
        try:
            params_json = None if params is None else json.dumps(params, allow_nan=False)
        except (TypeError, ValueError):
            return fail("BAD_PARAMS", "params must be JSON-serializable")
        if len(conn.pending) >= MAX_PENDING_PER_NODE:
            return fail("BUSY", f"too many invokes in flight on this node ({MAX_PENDING_PER_NODE})")
        effective = self.clamp_timeout(timeout_ms)
        invoke_id = uuid.uuid4().hex
        pending = _Pending()
        conn.pending[invoke_id] = pending
        frame = {
            "type": "event",
            "event": "node.invoke.request",
            "payload": {
                "id": invoke_id,
                "nodeId": node_id,
                "command": command,
                "paramsJSON": params_json,
                "timeoutMs": effective,
            },
        }
        try:
            with trio.move_on_after(effective / 1000) as scope:
                try:
                    await conn.send_text(json.dumps(frame))
                except Exception:
                    return fail("UNAVAILABLE", "failed to send invoke to node")
                await pending.event.wait()
            if scope.cancelled_caught:
                return fail("TIMEOUT", "node invoke timed out")
        finally:
            conn.pending.pop(invoke_id, None)
        if pending.error is not None:
            return fail(pending.error["code"], pending.error["message"])
        res = pending.result or {}
        error = res.get("error") if isinstance(res.get("error"), dict) else None
        payload = res.get("payload")
        payload_json = res.get("payloadJSON") if isinstance(res.get("payloadJSON"), str) else None
        if payload is None and payload_json is not None:
            try:
                payload = json.loads(payload_json)
            except ValueError:
                payload = None
        return InvokeResult(bool(res.get("ok")), node_id, command, payload, payload_json, error)

"""Connected nodes and invokes in flight.

Invariants:

* One connection per node id. A new connection for the same id replaces the old one: the
  old one's pending invokes fail at once with ``NODE_REPLACED`` and it is closed with 1012
  by its own handler (the registry never awaits I/O while it changes its maps).
* A result resolves an invoke only if it comes from the connection the request was sent to.
* When a connection goes, its pending invokes fail at once with ``NODE_DISCONNECTED``.
* An empty command list means the node accepts no command, not every command.
* Bounds: ``MAX_NODES`` connections (more are refused), ``MAX_PENDING`` invokes in flight
  (more fail with ``BUSY``), ``timeoutMs`` clamped to ``[1, max_timeout_ms]``.
"""

from __future__ import annotations

import itertools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from ..procs import now_ms

log = logging.getLogger(__name__)

MAX_NODES = 1000
MAX_PENDING = 10_000
DEFAULT_TIMEOUT_MS = 30_000

SendFrame = Callable[[dict[str, Any]], Awaitable[None]]
_conn_ids = itertools.count(1)


def error(code: str, message: str) -> dict[str, Any]:
    """An invoke error in the original's shape."""
    return {"code": code, "message": message}


@dataclass(eq=False)
class NodeConnection:
    """One connected node."""

    node_id: str
    display_name: str | None
    platform: str | None
    version: str | None
    caps: list[str]
    commands: list[str]
    send: SendFrame
    ip: str | None = None
    session_id: str | None = None  # set for a runtime node authenticated by a session token
    conn_id: int = field(default_factory=lambda: next(_conn_ids))
    connected_at_ms: int = field(default_factory=now_ms)
    last_seen_ms: int = field(default_factory=now_ms)
    replaced: trio.Event = field(default_factory=trio.Event)

    def describe(self) -> dict[str, Any]:
        """The ``GET /nodes`` / ``nodes_list`` entry."""
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


@dataclass(eq=False)
class PendingInvoke:
    """An invoke waiting for its node's result."""

    node_id: str
    conn_id: int
    done: trio.Event = field(default_factory=trio.Event)
    result: dict[str, Any] | None = None


class NodeRegistry:
    """The nodes connected to this gateway and their invokes in flight."""

    def __init__(self, max_timeout_ms: int = 300_000) -> None:
        self.nodes: dict[str, NodeConnection] = {}
        self.pending: dict[str, PendingInvoke] = {}
        self.max_timeout_ms = max_timeout_ms

    # -- connections -----------------------------------------------------------------------

    def register(self, conn: NodeConnection) -> NodeConnection | None:
        """Add a connection; returns the one it replaced (its handler closes it with 1012)."""
        old = self.nodes.get(conn.node_id)
        if old is None and len(self.nodes) >= MAX_NODES:
            raise OverflowError(f"too many nodes connected ({MAX_NODES})")
        if old is not None:
            self._fail_pending(old, error("NODE_REPLACED", "node replaced by a new connection"))
            old.replaced.set()
        self.nodes[conn.node_id] = conn
        log.info("node connected node=%s conn=%s", conn.node_id, conn.conn_id)
        return old

    def unregister(self, conn: NodeConnection) -> bool:
        """Remove a connection if it is still the registered one; whether it was."""
        if self.nodes.get(conn.node_id) is not conn:
            return False
        del self.nodes[conn.node_id]
        self._fail_pending(conn, error("NODE_DISCONNECTED", "node disconnected"))
        log.info("node disconnected node=%s conn=%s", conn.node_id, conn.conn_id)
        return True

    def _fail_pending(self, conn: NodeConnection, err: dict[str, Any]) -> None:
        for invoke_id, pending in list(self.pending.items()):
            if pending.conn_id == conn.conn_id:
                pending.result = {"ok": False, "payload": None, "payloadJSON": None, "error": err}
                pending.done.set()
                del self.pending[invoke_id]

    def list_connected(self, allowed: Callable[[str], bool] | None = None) -> list[dict[str, Any]]:
        """Connected nodes (those ``allowed`` accepts), sorted by display name or id."""
        nodes = [c for c in self.nodes.values() if allowed is None or allowed(c.node_id)]
        nodes.sort(key=lambda c: c.display_name or c.node_id)
        return [c.describe() for c in nodes]

    def resolve(self, ident: str) -> str | None:
        """Exact node id, else the unique node whose display name matches (case-insensitive)."""
        if ident in self.nodes:
            return ident
        wanted = ident.strip().lower()
        matches = [
            c.node_id
            for c in self.nodes.values()
            if c.display_name and c.display_name.strip().lower() == wanted
        ]
        return matches[0] if len(matches) == 1 else None

    # -- invokes ---------------------------------------------------------------------------

    def clamp_timeout(self, timeout_ms: float | None) -> int:
        """The wait of an invoke: default 30 s, at least 1 ms, at most the configured bound."""
        if timeout_ms is None:
            return min(DEFAULT_TIMEOUT_MS, self.max_timeout_ms)
        return int(max(1, min(float(timeout_ms), self.max_timeout_ms)))

    async def invoke(
        self, node_id: str, command: str, params: Any, timeout_ms: float | None
    ) -> dict[str, Any]:
        """Send ``command`` to a node and wait for its result (or a gateway error)."""
        result: dict[str, Any] = {"ok": False, "nodeId": node_id, "command": command}
        conn = self.nodes.get(node_id)
        if conn is None:
            return {
                **result,
                "payload": None,
                "error": error("NOT_CONNECTED", "node not connected"),
            }
        if command not in conn.commands:
            message = f"command not supported: {command}"
            return {**result, "payload": None, "error": error("UNSUPPORTED", message)}
        if len(self.pending) >= MAX_PENDING:
            message = "too many invokes in flight"
            return {**result, "payload": None, "error": error("BUSY", message)}
        try:
            params_json = json.dumps(params) if params is not None else None
        except (TypeError, ValueError):
            message = "params must be JSON-serializable"
            return {**result, "payload": None, "error": error("BAD_PARAMS", message)}
        wait_ms = self.clamp_timeout(timeout_ms)
        invoke_id = uuid.uuid4().hex
        pending = self.pending[invoke_id] = PendingInvoke(node_id, conn.conn_id)
        frame = {
            "type": "event",
            "event": "node.invoke.request",
            "payload": {
                "id": invoke_id,
                "nodeId": node_id,
                "command": command,
                "paramsJSON": params_json,
                "timeoutMs": wait_ms,
            },
        }
        try:
            try:
                await conn.send(frame)
            except Exception as exc:  # the connection is going away
                log.info("invoke send failed node=%s: %s", node_id, exc)
                message = "failed to send invoke to node"
                return {**result, "payload": None, "error": error("UNAVAILABLE", message)}
            with trio.move_on_after(wait_ms / 1000):
                await pending.done.wait()
        finally:
            self.pending.pop(invoke_id, None)
        if pending.result is None:
            message = "node invoke timed out"
            return {**result, "payload": None, "error": error("TIMEOUT", message)}
        return {**result, **pending.result}

    def on_result(self, conn: NodeConnection, payload: dict[str, Any]) -> bool:
        """A ``node.invoke.result`` from ``conn``; accepted only for invokes sent to it."""
        invoke_id = payload.get("id")
        pending = self.pending.get(invoke_id) if isinstance(invoke_id, str) else None
        if pending is None or pending.conn_id != conn.conn_id:
            return False
        error_obj = payload.get("error")
        data = payload.get("payload")
        if data is None and isinstance(payload.get("payloadJSON"), str):
            try:
                data = json.loads(payload["payloadJSON"])
            except (ValueError, RecursionError):
                data = None
        pending.result = {
            "ok": bool(payload.get("ok")),
            "payload": data,
            "error": error_obj if isinstance(error_obj, dict) else None,
        }
        pending.done.set()
        del self.pending[invoke_id]  # type: ignore[arg-type]
        return True

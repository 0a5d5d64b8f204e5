"""How the daemon assembles the node pieces: registry, scopes, routes and runtime nodes.

Kept out of ``daemon.py`` so the shared file only gains three lines. The lead wires
automation through the two public hooks: ``registry.on_node_event`` (node job completions
and (dis)connects, to become system events) and ``mcp.cron`` (the ``cron`` MCP tool).
"""

from __future__ import annotations

from typing import Any

import trio
from quart_trio import QuartTrio

from ..config import Settings
from ..sessions.manager import SessionManager
from ..tokens import gateway_secret
from .http import add_node_routes
from .mcp import McpServer, add_mcp_routes
from .registry import NodeRegistry
from .runtime_node import RuntimeNodes
from .scope import Scopes
from .ws import NodeWsEndpoint


class NodesWiring:
    """Everything nodes-related the daemon owns."""

    def __init__(self, settings: Settings, manager: SessionManager, secret: str) -> None:
        self.settings = settings
        self.registry = NodeRegistry(
            max_timeout_ms=settings.node_invoke_max_ms, max_nodes=settings.max_nodes
        )
        self.scopes = Scopes(settings, secret, lambda: manager.sessions.keys())
        self.mcp = McpServer(settings, self.registry, self.scopes)
        self.runtime_nodes = RuntimeNodes(
            settings.home_host_path, settings.workspace_host_path, self.scopes.session_token
        )
        if settings.runtime_nodes and settings.provision_mode == "local":
            manager.runtime_companion = self.runtime_nodes.serve_runtime_node

    @classmethod
    async def create(cls, settings: Settings, manager: SessionManager) -> NodesWiring:
        """Read the gateway secret once (blocking file read, in a worker thread)."""
        secret = await trio.to_thread.run_sync(gateway_secret, settings)
        return cls(settings, manager, secret)

    def install(self, app: QuartTrio) -> dict[str, Any]:
        """Add the HTTP routes to ``app``; returns the WebSocket routes."""
        add_node_routes(app, self.registry, self.scopes)
        add_mcp_routes(app, self.mcp)
        return {"/nodes/ws": NodeWsEndpoint(self.settings, self.registry, self.scopes)}

    def set_bound(self, binds: list[str]) -> None:
        """Tell runtime nodes where to connect: the first bound address, over loopback."""
        if not binds:
            return
        url = binds[0]
        host_port = url.split("://", 1)[-1]
        host, _, port = host_port.rpartition(":")
        if host in ("0.0.0.0", "[::]", ""):
            host = "127.0.0.1"
        self.runtime_nodes.url = f"ws://{host}:{port}/nodes/ws"

"""``GET /nodes`` and ``POST /nodes/invoke``: the admin's view of nodes (admin token only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quart_trio import QuartTrio

from ..nodes.registry import NodeRegistry
from .shared import error, json_body


def add_nodes_routes(app: QuartTrio, admin: Callable[..., Any], registry: NodeRegistry) -> None:
    """Register the node routes."""

    @app.get("/nodes")
    @admin
    async def list_nodes() -> Any:
        return {"nodes": registry.list_connected()}

    @app.post("/nodes/invoke")
    @admin
    async def invoke() -> Any:
        body, problem = await json_body()
        if problem is not None:
            return error(400, *problem)
        if not isinstance(body, dict):
            return error(400, "invalid_json", "Expected a JSON object")
        ident = body.get("node", body.get("nodeId"))
        command = body.get("command")
        timeout = body.get("timeoutMs")
        if not isinstance(ident, str) or not ident.strip():
            return error(400, "invalid_params", "Missing 'node' (or 'nodeId')")
        if not isinstance(command, str) or not command.strip():
            return error(400, "invalid_params", "Missing 'command'")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float)
        ):
            return error(400, "invalid_params", "timeoutMs must be a number (milliseconds)")
        node_id = registry.resolve(ident.strip())
        if node_id is None:  # the original's 404 (also for "self": no implicit node here)
            return error(404, "node_not_found", "Node not found (or ambiguous display name)")
        result = await registry.invoke(node_id, command.strip(), body.get("params"), timeout)
        return {"payloadJSON": None, **result}

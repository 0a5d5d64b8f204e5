"""``GET /nodes`` and ``POST /nodes/invoke`` (admin token only), on the Quart app.

The body and response shapes are the original's (§3.7, §3.8); errors carry ``detail`` plus a
stable ``code``. ``timeoutMs`` must be an integer (booleans are refused, unlike the original)
and is bounded by ARGUS_NODE_INVOKE_MAX_MS; ``self`` is not resolved here (it has no meaning
for the admin), so it is a 404 like any unknown node.
"""

from __future__ import annotations

from typing import Any

from quart import jsonify, request
from quart_trio import QuartTrio

from ..web import auth
from .registry import NodeRegistry
from .scope import Scopes


def _error(status: int, code: str, detail: str) -> Any:
    return jsonify({"detail": detail, "code": code}), status


def _token() -> str | None:
    return auth.extract_token(
        request.headers.get("authorization"),
        {"token": request.args.getlist("token")} if "token" in request.args else {},
    )


def add_node_routes(app: QuartTrio, registry: NodeRegistry, scopes: Scopes) -> None:
    """Register the admin node routes on ``app``."""

    @app.get("/nodes")
    async def list_nodes() -> Any:
        if not scopes.admin_caller(_token()):
            return _error(401, "unauthorized", "Unauthorized")
        return {"nodes": registry.list_connected()}

    @app.post("/nodes/invoke")
    async def invoke_node() -> Any:
        await request.get_data()  # read before any early answer (kept-alive connections)
        if not scopes.admin_caller(_token()):
            return _error(401, "unauthorized", "Unauthorized")
        body = await request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            return _error(400, "invalid_body", "Body must be a JSON object")
        ident = body.get("node", body.get("nodeId"))
        if not isinstance(ident, str) or not ident.strip():
            return _error(400, "missing_node", "Missing 'node' (or 'nodeId')")
        command = body.get("command")
        if not isinstance(command, str) or not command.strip():
            return _error(400, "missing_command", "Missing 'command'")
        timeout_ms = body.get("timeoutMs")
        if timeout_ms is not None and (type(timeout_ms) is not int):
            return _error(400, "invalid_timeout", "'timeoutMs' must be an integer (milliseconds)")
        node_id = registry.resolve(ident.strip())
        if node_id is None:
            return _error(404, "node_not_found", "Node not found (or ambiguous display name)")
        result = await registry.invoke(node_id, command.strip(), body.get("params"), timeout_ms)
        return result.as_json()

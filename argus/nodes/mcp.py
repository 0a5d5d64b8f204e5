"""``/mcp``: MCP over Streamable HTTP (JSON responses), serving the node tools.

Why our own implementation rather than the official ``mcp`` SDK: the server side of the
SDK is built on Starlette/anyio with its own session manager and task group per session,
which would sit beside Quart-Trio as a second web stack inside the daemon. What Argus
needs is small — ``initialize``, ``ping``, ``tools/list``, ``tools/call``, sessions, and
the transport's header rules — and owning it lets the scope rules (which token sees which
node) live in one place. The official SDK client is used in the tests to prove
interoperability, and the real codex connects to it in the real-peer tier.

Transport rules followed (spec 2025-06-18 / 2025-11-25):

* ``POST`` carries one JSON-RPC message or a batch; requests get ``application/json``
  responses (no SSE stream is ever opened); notifications and responses get 202.
* ``initialize`` negotiates the protocol version and returns ``MCP-Session-Id``; every
  later request must carry it (missing: 400; unknown, expired or another caller's: 404).
* ``MCP-Protocol-Version`` on later requests must be a supported version (else 400).
* ``Origin``, when sent, must be loopback or in ``ARGUS_ALLOWED_ORIGINS`` (else 403);
  ``Accept``, when sent, must admit ``application/json`` (else 406).
* ``GET`` (server-initiated stream) is 405; ``DELETE`` ends a session.

Sessions expire after ``ARGUS_MCP_SESSION_TTL_S`` without use and are bounded in number
(the least recently used is dropped past ``MAX_SESSIONS``).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from quart import Response, jsonify, request
from quart_trio import QuartTrio

from ..web import auth
from ..web.http import json_body
from .scope import Principal, Scopes
from .tools import NodeTools

VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")
MAX_SESSIONS = 10_000
MAX_BATCH = 100
SERVER_INFO = {"name": "argus_gateway", "title": "Argus Gateway MCP", "version": "0.1.0"}
INSTRUCTIONS = "Tools for listing and invoking the nodes (devices) this session may use."


@dataclass
class McpSession:
    """One MCP session: who opened it and which protocol version it speaks."""

    principal: Principal
    version: str
    last_seen: float = field(default_factory=time.monotonic)


def rpc_error(req_id: Any, code: int, message: str) -> dict[str, Any]:
    """A JSON-RPC 2.0 error object."""
    return {"jsonrpc": "2.0", "id": req_id, "error": {"code": code, "message": message}}


class McpServer:
    """Sessions and method dispatch; the HTTP route is in ``add_mcp_routes``."""

    def __init__(self, tools: NodeTools, ttl_s: float) -> None:
        self.tools = tools
        self.ttl_s = ttl_s
        self.sessions: OrderedDict[str, McpSession] = OrderedDict()

    def session(self, session_id: str | None, principal: Principal) -> McpSession | None:
        """A live session of this caller, refreshed; None when unknown, expired or foreign."""
        now = time.monotonic()
        while self.sessions:
            oldest_id, oldest = next(iter(self.sessions.items()))
            if now - oldest.last_seen <= self.ttl_s:
                break
            del self.sessions[oldest_id]
        found = self.sessions.get(session_id or "")
        if found is None or found.principal != principal:
            return None
        found.last_seen = now
        self.sessions.move_to_end(session_id)  # type: ignore[arg-type]
        return found

    def open_session(self, principal: Principal, version: str) -> str:
        """A new session id (the least recently used one goes past the bound)."""
        session_id = uuid.uuid4().hex
        self.sessions[session_id] = McpSession(principal, version)
        while len(self.sessions) > MAX_SESSIONS:
            self.sessions.popitem(last=False)
        return session_id

    async def handle(
        self, principal: Principal, msg: Any, session: McpSession | None, headers: dict[str, str]
    ) -> dict[str, Any] | None:
        """One JSON-RPC message; its response, or None for notifications and responses."""
        if not isinstance(msg, dict):
            return rpc_error(None, -32600, "Invalid JSON-RPC message")
        req_id = msg.get("id")
        method = msg.get("method")
        if "method" not in msg:
            return None if "id" in msg else rpc_error(None, -32600, "Invalid JSON-RPC message")
        if msg.get("jsonrpc") != "2.0":
            return (
                None if "id" not in msg else rpc_error(req_id, -32600, "Invalid JSON-RPC version")
            )
        if not isinstance(method, str):
            return rpc_error(req_id, -32600, "Invalid JSON-RPC message")
        if "id" not in msg:
            return None  # notifications (initialized, cancelled...) need nothing
        params = msg.get("params", {})
        if not isinstance(params, dict):
            return rpc_error(req_id, -32602, "Invalid params")
        if method == "initialize":
            wanted = params.get("protocolVersion")
            version = wanted if wanted in VERSIONS else VERSIONS[0]
            headers["MCP-Session-Id"] = self.open_session(principal, version)
            headers["MCP-Protocol-Version"] = version
            result = {
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": SERVER_INFO,
                "instructions": INSTRUCTIONS,
            }
            return {"jsonrpc": "2.0", "id": req_id, "result": result}
        if session is None:
            return rpc_error(req_id, -32000, "Not initialized: send initialize first")
        headers["MCP-Protocol-Version"] = session.version
        if method == "ping":
            return {"jsonrpc": "2.0", "id": req_id, "result": {}}
        if method == "tools/list":
            tools = self.tools.list_tools(principal)
            return {"jsonrpc": "2.0", "id": req_id, "result": {"tools": tools}}
        if method == "tools/call":
            name = params.get("name")
            if not isinstance(name, str):
                return rpc_error(req_id, -32602, "Invalid params: 'name' must be a string")
            arguments = params.get("arguments", {})
            result = await self.tools.call(principal, name, arguments)
            return {"jsonrpc": "2.0", "id": req_id, "result": result}
        return rpc_error(req_id, -32601, f"Method not found: {method}")


def add_mcp_routes(
    app: QuartTrio, server: McpServer, scopes: Scopes, allowed_origins: tuple[str, ...]
) -> None:
    """Register ``/mcp`` (POST, GET, DELETE) on the Quart app."""

    def fail(status: int, detail: str, code: str) -> tuple[Response, int]:
        return jsonify({"detail": detail, "code": code}), status

    def caller() -> tuple[Principal | None, tuple[Response, int] | None]:
        origin = request.headers.get("origin")
        if origin is not None and not auth.origin_allowed(origin, allowed_origins):
            return None, fail(403, "Origin not allowed", "forbidden_origin")
        token = auth.extract_token(
            request.headers.get("authorization"),
            {k: request.args.getlist(k) for k in ("token",) if k in request.args},
        )
        principal = scopes.principal(token)
        if principal is None:
            return None, fail(401, "Unauthorized", "unauthorized")
        return principal, None

    @app.post("/mcp")
    async def mcp_post() -> Any:
        principal, problem = caller()  # the body was read first (http.read_body_first)
        if problem is not None:
            return problem
        assert principal is not None
        accept = request.headers.get("accept")
        if accept and not any(a in accept for a in ("application/json", "*/*", "application/*")):
            return fail(406, "Accept must include application/json", "not_acceptable")
        body, problem = await json_body()
        if problem is not None:
            return fail(400, problem[1], problem[0])
        if not isinstance(body, dict | list):
            return fail(400, "Invalid JSON body", "invalid_json")
        messages = body if isinstance(body, list) else [body]
        if len(messages) > MAX_BATCH:
            return fail(400, f"Batch larger than {MAX_BATCH} messages", "batch_too_large")
        only_initialize = all(
            isinstance(m, dict) and m.get("method") == "initialize" for m in messages
        )
        session = None
        if not only_initialize:
            version = request.headers.get("mcp-protocol-version")
            if version is not None and version not in VERSIONS:
                return fail(400, f"Unsupported MCP-Protocol-Version: {version}", "bad_version")
            session_id = request.headers.get("mcp-session-id")
            needs_session = any(
                isinstance(m, dict) and "id" in m and "method" in m for m in messages
            )
            if session_id is None and needs_session:
                return fail(400, "Missing MCP-Session-Id header", "missing_session")
            if session_id is not None:
                session = server.session(session_id, principal)
                if session is None:
                    return fail(404, "Unknown MCP session", "unknown_session")
        headers: dict[str, str] = {}
        replies = [await server.handle(principal, m, session, headers) for m in messages]
        replies = [r for r in replies if r is not None]
        if not replies:
            return Response("", status=202, headers=headers)
        payload = replies if isinstance(body, list) else replies[0]
        response = jsonify(payload)
        response.headers.update(headers)
        return response

    @app.get("/mcp")
    async def mcp_get() -> Any:
        _, problem = caller()
        if problem is not None:
            return problem
        response, status = fail(
            405, "This MCP endpoint does not open SSE streams", "method_not_allowed"
        )
        response.headers["Allow"] = "POST, DELETE"
        return response, status

    @app.delete("/mcp")
    async def mcp_delete() -> Any:
        principal, problem = caller()
        if problem is not None:
            return problem
        session_id = request.headers.get("mcp-session-id")
        if not session_id:
            return fail(400, "Missing MCP-Session-Id header", "missing_session")
        if server.session(session_id, principal) is None:  # type: ignore[arg-type]
            return fail(404, "Unknown MCP session", "unknown_session")
        del server.sessions[session_id]
        return {"ok": True}

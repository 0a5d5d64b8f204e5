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
(``ARGUS_MCP_MAX_SESSIONS``, default ``MAX_SESSIONS``: past it the least recently used
session is dropped, and its id answers 404 like an expired one).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from quart import Response, jsonify, request
from quart_trio import QuartTrio

from .. import auth
from ..nodes.scope import Principal, Scopes
from ..nodes.tools import NodeTools
from ..protocol import codes
from . import authlimit
from .shared import error, json_body, request_token

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

    def __init__(self, tools: NodeTools, ttl_s: float, max_sessions: int = MAX_SESSIONS) -> None:
        self.tools = tools
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
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
        while len(self.sessions) > self.max_sessions:
            self.sessions.popitem(last=False)
        return session_id

    async def handle(
        self, principal: Principal, msg: Any, session: McpSession | None, headers: dict[str, str]
    ) -> dict[str, Any] | None:
        """One JSON-RPC message; its response, or None for notifications and responses."""
        if not isinstance(msg, dict):
            return rpc_error(None, codes.INVALID_REQUEST, "Invalid JSON-RPC message")
        req_id = msg.get("id")
        method = msg.get("method")
        if "method" not in msg:
            return (
                None
                if "id" in msg
                else rpc_error(None, codes.INVALID_REQUEST, "Invalid JSON-RPC message")
            )
        if msg.get("jsonrpc") != "2.0":
            return (
                None
                if "id" not in msg
                else rpc_error(req_id, codes.INVALID_REQUEST, "Invalid JSON-RPC version")
            )
        if not isinstance(method, str):
            return rpc_error(req_id, codes.INVALID_REQUEST, "Invalid JSON-RPC message")
        if "id" not in msg:
            return None  # notifications (initialized, cancelled...) need nothing
        params = msg.get("params", {})
        if not isinstance(params, dict):
            return rpc_error(req_id, codes.INVALID_PARAMS, "Invalid params")
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
            return rpc_error(req_id, codes.GATEWAY_ERROR, "Not initialized: send initialize first")
        headers["MCP-Protocol-Version"] = session.version
        if method == "ping":
            return {"jsonrpc": "2.0", "id": req_id, "result": {}}
        if method == "tools/list":
            tools = self.tools.list_tools(principal)
            return {"jsonrpc": "2.0", "id": req_id, "result": {"tools": tools}}
        if method == "tools/call":
            name = params.get("name")
            if not isinstance(name, str):
                return rpc_error(
                    req_id, codes.INVALID_PARAMS, "Invalid params: 'name' must be a string"
                )
            arguments = params.get("arguments", {})
            result = await self.tools.call(principal, name, arguments)
            return {"jsonrpc": "2.0", "id": req_id, "result": result}
        return rpc_error(req_id, codes.METHOD_NOT_FOUND, f"Method not found: {method}")


def add_mcp_routes(
    app: QuartTrio, server: McpServer, scopes: Scopes, allowed_origins: tuple[str, ...]
) -> None:
    """Register ``/mcp`` (POST, GET, DELETE) on the Quart app."""

    def caller() -> tuple[Principal | None, tuple[Response, int] | None]:
        origin = request.headers.get("origin")
        if origin is not None and not auth.origin_allowed(origin, allowed_origins):
            return None, error(403, "forbidden_origin", "Origin not allowed")
        address = request.remote_addr or "?"
        if authlimit.LIMITER.limited(address, "mcp"):
            return None, error(429, "rate_limited", authlimit.REASON)
        principal = scopes.principal(request_token())
        if principal is None:
            authlimit.LIMITER.failed(address, "mcp")
            return None, error(401, "unauthorized", "Unauthorized")
        return principal, None

    @app.post("/mcp")
    async def mcp_post() -> Any:
        principal, problem = caller()  # the body was read first (http.read_body_first)
        if problem is not None:
            return problem
        assert principal is not None
        accept = request.headers.get("accept")
        if accept and not any(a in accept for a in ("application/json", "*/*", "application/*")):
            return error(406, "not_acceptable", "Accept must include application/json")
        body, problem = await json_body()
        if problem is not None:
            return error(400, problem[0], problem[1])
        if not isinstance(body, dict | list):
            return error(400, "invalid_json", "Invalid JSON body")
        messages = body if isinstance(body, list) else [body]
        if len(messages) > MAX_BATCH:
            return error(400, "batch_too_large", f"Batch larger than {MAX_BATCH} messages")
        only_initialize = all(
            isinstance(m, dict) and m.get("method") == "initialize" for m in messages
        )
        session = None
        if not only_initialize:
            version = request.headers.get("mcp-protocol-version")
            if version is not None and version not in VERSIONS:
                return error(400, "bad_version", f"Unsupported MCP-Protocol-Version: {version}")
            session_id = request.headers.get("mcp-session-id")
            needs_session = any(
                isinstance(m, dict) and "id" in m and "method" in m for m in messages
            )
            if session_id is None and needs_session:
                return error(400, "missing_session", "Missing MCP-Session-Id header")
            if session_id is not None:
                session = server.session(session_id, principal)
                if session is None:
                    return error(404, "unknown_session", "Unknown MCP session")
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
        response, status = error(
            405, "method_not_allowed", "This MCP endpoint does not open SSE streams"
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
            return error(400, "missing_session", "Missing MCP-Session-Id header")
        if server.session(session_id, principal) is None:  # type: ignore[arg-type]
            return error(404, "unknown_session", "Unknown MCP session")
        del server.sessions[session_id]
        return {"ok": True}

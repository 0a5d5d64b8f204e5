"""``/mcp``: the MCP Streamable HTTP endpoint with the node tools (own implementation).

Why our own rather than the official SDK: see docs/architecture.md ("MCP"). In short, we
serve three tools with JSON responses only (no server-initiated messages, no SSE), on the
Quart-Trio app that already carries our auth and error conventions; the SDK's server side is
a Starlette/anyio stack with its own session manager and task group, which would be a second
web framework inside the daemon for about 250 lines of protocol.

Spec points kept: protocol negotiation (2025-11-25, 2025-06-18, 2025-03-26), the
``MCP-Session-Id`` header (issued at ``initialize``, required afterwards, 404 when unknown or
expired so clients re-initialize), ``MCP-Protocol-Version`` checked on later requests (400 if
unsupported), batches, ``Origin`` validated (403, DNS-rebinding protection), ``Accept`` must
allow JSON (406), ``Content-Type`` JSON (415). Sessions expire after ARGUS_MCP_SESSION_TTL_S
idle and are bounded (oldest evicted). A session belongs to the caller that created it.

Tool arguments are validated against each tool's JSON schema before anything runs; a
violation is a tool error (``isError``) naming the field, as the 2025-11-25 spec asks.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from quart import Response, request
from quart_trio import QuartTrio

from ..config import Settings
from ..web import auth
from .registry import NodeRegistry
from .scope import RUNTIME_PREFIX as RUNTIME_PREFIX_REG
from .scope import Caller, Scopes

log = logging.getLogger(__name__)

VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")
LATEST = VERSIONS[0]
MAX_SESSIONS = 1024  # overflow: the least recently used session is forgotten
MAX_BATCH = 64


class CronProvider(Protocol):
    """What the ``cron`` tool needs from the automation store (wired by the daemon)."""

    async def list_jobs(self, session_id: str) -> list[dict[str, Any]]:
        """The calling session's cron jobs."""

    async def add_job(self, session_id: str, job: dict[str, Any]) -> dict[str, Any]:
        """Create or replace a job for the session; returns it (raises ValueError if bad)."""

    async def remove_job(self, session_id: str, job_id: str) -> bool:
        """Remove one of the session's jobs; False if it had none with that id."""


TOOLS: dict[str, dict[str, Any]] = {
    "nodes_list": {
        "name": "nodes_list",
        "title": "Nodes List",
        "description": "List the connected nodes (devices) you may use and their commands.",
        "inputSchema": {"type": "object", "properties": {}, "additionalProperties": False},
    },
    "node_invoke": {
        "name": "node_invoke",
        "title": "Node Invoke",
        "description": (
            "Invoke a command on a connected node. node='self' (the default) is this "
            "session's own runtime node. Commands: system.run {argv, cwd?, env?, timeoutMs?, "
            "yieldMs?}, system.which {bin}, process.list, process.get {jobId}, "
            "process.logs {jobId, tailBytes?}, process.kill {jobId}."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {
                "node": {"type": "string", "description": "nodeId/displayName, or 'self'."},
                "command": {"type": "string", "description": "Command name, e.g. system.run"},
                "params": {"type": "object", "description": "The command's parameters."},
                "timeoutMs": {"type": "integer", "minimum": 1, "description": "Wait bound."},
            },
            "required": ["command"],
            "additionalProperties": False,
        },
    },
    "cron": {
        "name": "cron",
        "title": "Cron",
        "description": "List, add or remove this session's scheduled jobs.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "action": {"type": "string", "enum": ["list", "add", "remove"]},
                "job": {"type": "object", "description": "For add: the job definition."},
                "jobId": {"type": "string", "description": "For remove."},
            },
            "required": ["action"],
            "additionalProperties": False,
        },
    },
}

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "object": (dict,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
}


def validate(schema: dict[str, Any], args: Any) -> str | None:
    """Check ``args`` against one of our (flat) tool schemas; the problem, or None."""
    if not isinstance(args, dict):
        return "arguments must be an object"
    props = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in args:
            return f"missing required field: {name}"
    for name, value in args.items():
        spec = props.get(name)
        if spec is None:
            return f"unknown field: {name}"
        kind = spec.get("type")
        if kind and (
            not isinstance(value, _JSON_TYPES[kind])
            or (isinstance(value, bool) and kind != "boolean")
        ):
            return f"field {name} must be of type {kind}"
        if "enum" in spec and value not in spec["enum"]:
            return f"field {name} must be one of {spec['enum']}"
        if "minimum" in spec and value < spec["minimum"]:
            return f"field {name} must be >= {spec['minimum']}"
    return None


@dataclass
class McpSession:
    """One MCP session: its negotiated version and its owner."""

    session_id: str
    version: str
    caller: Caller
    last_seen: float = field(default_factory=time.monotonic)


def _rpc_error(msg_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}


def _tool_result(text: str, structured: Any, is_error: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "content": [{"type": "text", "text": text}],
        "structuredContent": structured,
    }
    if is_error:
        out["isError"] = True
    return out


def _tool_error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return _tool_result(
        message, {"ok": False, "error": {"code": code, "message": message, **extra}}, True
    )


class _HttpError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


class McpServer:
    """Sessions and method dispatch for ``/mcp``."""

    def __init__(
        self,
        settings: Settings,
        registry: NodeRegistry,
        scopes: Scopes,
        cron: CronProvider | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.scopes = scopes
        self.cron = cron
        self.sessions: dict[str, McpSession] = {}

    # -- sessions ------------------------------------------------------------------------

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.settings.mcp_session_ttl_s
        for sid in [s for s, v in self.sessions.items() if v.last_seen < cutoff]:
            del self.sessions[sid]

    def _lookup(self, header: str | None, caller: Caller) -> McpSession | None:
        if header is None:
            return None
        self._expire()
        session = self.sessions.get(header.strip())
        if session is None or session.caller != caller:
            raise _HttpError(404, "mcp_session_unknown", "Unknown MCP session")
        session.last_seen = time.monotonic()
        return session

    def _create(self, version: str, caller: Caller) -> McpSession:
        self._expire()
        while len(self.sessions) >= MAX_SESSIONS:
            oldest = min(self.sessions.values(), key=lambda s: s.last_seen)
            del self.sessions[oldest.session_id]
        session = McpSession(uuid.uuid4().hex, version, caller)
        self.sessions[session.session_id] = session
        return session

    # -- messages ------------------------------------------------------------------------

    async def handle(
        self, message: Any, caller: Caller, header_sid: str | None, out_headers: dict[str, str]
    ) -> dict[str, Any] | None:
        """One JSON-RPC message; the response, or None for notifications and responses."""
        if not isinstance(message, dict):
            return _rpc_error(None, -32600, "Invalid JSON-RPC message")
        msg_id = message.get("id")
        if message.get("jsonrpc") != "2.0":
            return _rpc_error(msg_id, -32600, "Invalid JSON-RPC version")
        method = message.get("method")
        if "id" not in message:
            if not isinstance(method, str):
                return _rpc_error(None, -32600, "Invalid JSON-RPC message")
            self._lookup(header_sid, caller)
            return None
        if method is None:
            self._lookup(header_sid, caller)  # a response from the client
            return None
        if not isinstance(method, str):
            return _rpc_error(msg_id, -32600, "Invalid JSON-RPC message")
        params = message.get("params", {})
        if method == "initialize":
            if not isinstance(params, dict):
                return _rpc_error(msg_id, -32602, "Invalid params")
            wanted = str(params.get("protocolVersion") or "").strip()
            version = wanted if wanted in VERSIONS else LATEST
            session = self._create(version, caller)
            out_headers.setdefault("MCP-Session-Id", session.session_id)
            out_headers.setdefault("MCP-Protocol-Version", version)
            result = {
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": {
                    "name": "argus_gateway",
                    "title": "Argus Gateway MCP",
                    "version": "0.1.0",
                },
                "instructions": "Tools for listing and invoking connected nodes (devices).",
            }
            return {"jsonrpc": "2.0", "id": msg_id, "result": result}
        session = self._lookup(header_sid, caller)
        if session is None:
            raise _HttpError(400, "mcp_session_missing", "Missing MCP-Session-Id header")
        out_headers.setdefault("MCP-Protocol-Version", session.version)
        if method == "ping":
            return {"jsonrpc": "2.0", "id": msg_id, "result": {}}
        if method == "tools/list":
            return {"jsonrpc": "2.0", "id": msg_id, "result": {"tools": self.tools_for(caller)}}
        if method == "tools/call":
            if not isinstance(params, dict) or not isinstance(params.get("name"), str):
                return _rpc_error(msg_id, -32602, "Invalid params")
            args = params.get("arguments", {})
            if args is None:
                args = {}
            result = await self.call_tool(caller, params["name"], args)
            return {"jsonrpc": "2.0", "id": msg_id, "result": result}
        return _rpc_error(msg_id, -32601, f"Method not found: {method}")

    def tools_for(self, caller: Caller) -> list[dict[str, Any]]:
        """The tools this caller sees (``cron`` only with a provider and a session)."""
        names = ["nodes_list", "node_invoke"]
        if self.cron is not None and not caller.is_admin:
            names.append("cron")
        return [TOOLS[n] for n in names]

    async def call_tool(self, caller: Caller, name: str, args: Any) -> dict[str, Any]:
        """Run one tool after validating its arguments against its schema."""
        if name not in {t["name"] for t in self.tools_for(caller)}:
            return _tool_error("UNKNOWN_TOOL", f"Unknown tool: {name}")
        problem = validate(TOOLS[name]["inputSchema"], args)
        if problem is not None:
            return _tool_error("INVALID_ARGUMENT", f"Invalid arguments for {name}: {problem}")
        if name == "nodes_list":
            nodes = [
                n
                for n in self.registry.list_connected()
                if self.scopes.may_reach(caller, n["nodeId"])
            ]
            return _tool_result(json.dumps({"nodes": nodes}, ensure_ascii=False), {"nodes": nodes})
        if name == "node_invoke":
            return await self._node_invoke(caller, args)
        return await self._cron(caller, args)

    def _resolve(self, caller: Caller, ident: str) -> str | None:
        if ident.strip().lower() == "self":
            if caller.is_admin:
                runtime = [n for n in self.registry.nodes if n.startswith(RUNTIME_PREFIX_REG)]
                return runtime[0] if len(runtime) == 1 else None
            own = RUNTIME_PREFIX_REG + caller.session_id
            return own if own in self.registry.nodes else None
        node_id = self.registry.resolve(ident)
        if node_id is not None and not self.scopes.may_reach(caller, node_id):
            return None  # not yours: indistinguishable from absent
        return node_id

    async def _node_invoke(self, caller: Caller, args: dict[str, Any]) -> dict[str, Any]:
        command = args["command"].strip()
        if not command:
            return _tool_error(
                "INVALID_ARGUMENT", "Missing required field: command", field="command"
            )
        ident = args.get("node") or "self"
        node_id = self._resolve(caller, ident)
        if node_id is None:
            return _tool_error("NODE_NOT_FOUND", f"Node not found: {ident}", node=ident)
        res = await self.registry.invoke(
            node_id, command, args.get("params"), args.get("timeoutMs")
        )
        structured = {
            "ok": res.ok,
            "nodeId": res.node_id,
            "command": res.command,
            "payload": res.payload,
            "error": res.error,
        }
        text = json.dumps(res.payload if res.ok else {"error": res.error}, ensure_ascii=False)
        return _tool_result(text, structured, not res.ok)

    async def _cron(self, caller: Caller, args: dict[str, Any]) -> dict[str, Any]:
        assert self.cron is not None and caller.session_id is not None
        sid, action = caller.session_id, args["action"]
        try:
            if action == "list":
                jobs = await self.cron.list_jobs(sid)
                return _tool_result(json.dumps({"jobs": jobs}, ensure_ascii=False), {"jobs": jobs})
            if action == "add":
                if "job" not in args:
                    return _tool_error("INVALID_ARGUMENT", "add requires job", field="job")
                job = await self.cron.add_job(sid, args["job"])
                return _tool_result(json.dumps({"job": job}, ensure_ascii=False), {"job": job})
            if "jobId" not in args:
                return _tool_error("INVALID_ARGUMENT", "remove requires jobId", field="jobId")
            removed = await self.cron.remove_job(sid, args["jobId"])
            return _tool_result(json.dumps({"removed": removed}), {"removed": removed})
        except ValueError as exc:
            return _tool_error("INVALID_ARGUMENT", str(exc))


def _json_response(body: Any, status: int, headers: dict[str, str]) -> Response:
    return Response(
        json.dumps(body), status=status, content_type="application/json", headers=headers
    )


def add_mcp_routes(app: QuartTrio, server: McpServer) -> None:
    """Register ``GET``/``POST``/``DELETE /mcp`` on ``app``."""
    settings = server.settings

    def check() -> Caller:
        origin = request.headers.get("origin")
        if origin is not None and not auth.origin_allowed(origin, settings.allowed_origins):
            raise _HttpError(403, "origin_forbidden", "Origin not allowed")
        token = auth.extract_token(
            request.headers.get("authorization"),
            {"token": request.args.getlist("token")} if "token" in request.args else {},
        )
        caller = server.scopes.mcp_caller(token)
        if caller is None:
            raise _HttpError(401, "unauthorized", "Unauthorized")
        version = request.headers.get("mcp-protocol-version")
        if version is not None and version.strip() not in VERSIONS:
            raise _HttpError(
                400, "mcp_version_unsupported", f"Unsupported MCP-Protocol-Version: {version}"
            )
        return caller

    def http_error(exc: _HttpError) -> Response:
        return _json_response({"detail": exc.detail, "code": exc.code}, exc.status, {})

    @app.route("/mcp", methods=["GET", "POST", "DELETE"])
    async def mcp() -> Any:
        # Read the body before any early answer: hypercorn stalls a kept-alive connection
        # whose request body was left unread.
        raw = await request.get_data(as_text=True)
        try:
            caller = check()
            if request.method == "GET":
                raise _HttpError(
                    405,
                    "method_not_allowed",
                    "Streamable HTTP GET is not supported on this MCP endpoint",
                )
            header_sid = request.headers.get("mcp-session-id")
            if request.method == "DELETE":
                if header_sid is None:
                    raise _HttpError(400, "mcp_session_missing", "Missing MCP-Session-Id header")
                server._lookup(header_sid, caller)
                del server.sessions[header_sid.strip()]
                return _json_response({"ok": True}, 200, {})
            accept = request.headers.get("accept", "*/*").lower()
            if not any(t in accept for t in ("application/json", "*/*", "application/*")):
                raise _HttpError(406, "not_acceptable", "Accept must allow application/json")
            ctype = request.headers.get("content-type", "").lower()
            if not ctype.startswith("application/json"):
                raise _HttpError(
                    415, "unsupported_media_type", "Content-Type must be application/json"
                )
            try:
                body = json.loads(raw)
            except ValueError:
                raise _HttpError(400, "invalid_json", "Invalid JSON body") from None
            if not isinstance(body, (dict, list)):
                raise _HttpError(400, "invalid_json", "Invalid JSON body")
            headers: dict[str, str] = {}
            if isinstance(body, dict):
                reply = await server.handle(body, caller, header_sid, headers)
                if reply is None:
                    return Response("", status=202, headers=headers)
                return _json_response(reply, 200, headers)
            if len(body) > MAX_BATCH:
                raise _HttpError(400, "batch_too_large", f"At most {MAX_BATCH} messages per batch")
            replies = []
            for item in body:
                reply = await server.handle(item, caller, header_sid, headers)
                if reply is not None:
                    replies.append(reply)
            if not replies:
                return Response("", status=202, headers=headers)
            return _json_response(replies, 200, headers)
        except _HttpError as exc:
            return http_error(exc)

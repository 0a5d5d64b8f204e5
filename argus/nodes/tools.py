"""The MCP tools: ``nodes_list``, ``node_invoke`` and (with automation) ``cron``.

Each tool has a strict JSON schema (``additionalProperties: false``, types, required
fields) that is enforced before anything runs; a violation is a tool error the model can
read and correct (``isError`` with code ``INVALID_ARGUMENT``), never a silent coercion.
What a caller may reach follows ``scope.Scopes.may_reach``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from .registry import NodeRegistry
from .scope import RUNTIME_PREFIX, Principal, Scopes, runtime_node_id

CronProvider = Callable[[str, str, dict[str, Any]], Awaitable[Any]]

JSON_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}

NODES_LIST = {
    "name": "nodes_list",
    "title": "Nodes List",
    "description": "List the nodes (devices) you may use and the commands they offer.",
    "inputSchema": {"type": "object", "properties": {}, "additionalProperties": False},
}
NODE_INVOKE = {
    "name": "node_invoke",
    "title": "Node Invoke",
    "description": (
        "Invoke a command on a node. node='self' (or omitted) is your own runtime node. "
        "system.run {argv, cwd?, env?, timeoutMs?, yieldMs?} runs a process and returns "
        "{running:true, jobId} if it is still running after yieldMs; follow it with "
        "process.get, process.logs and process.kill."
    ),
    "inputSchema": {
        "type": "object",
        "properties": {
            "node": {"type": "string", "description": "nodeId, displayName, or 'self'"},
            "command": {"type": "string", "description": "e.g. system.run"},
            "params": {"type": ["object", "array", "string", "number", "boolean", "null"]},
            "timeoutMs": {"type": "number", "description": "how long to wait (bounded)"},
            "idempotencyKey": {"type": "string"},
        },
        "required": ["command"],
        "additionalProperties": False,
    },
}
CRON = {
    "name": "cron",
    "title": "Cron",
    "description": (
        "Your session's scheduled jobs. action=list; action=add with job {expr or at, text, "
        "tz?, mode?: systemEvent|turn, enabled?}; action=remove with jobId."
    ),
    "inputSchema": {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["list", "add", "remove"]},
            "job": {"type": "object"},
            "jobId": {"type": "string"},
        },
        "required": ["action"],
        "additionalProperties": False,
    },
}


def schema_errors(schema: dict[str, Any], value: Any) -> list[str]:
    """Violations of the (small) JSON-schema subset our tools use."""
    errors: list[str] = []
    if not isinstance(value, dict):
        return ["arguments must be an object"]
    props = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            errors.append(f"missing required field: {name}")
    for name, item in value.items():
        if name not in props:
            if schema.get("additionalProperties") is False:
                errors.append(f"unknown field: {name}")
            continue
        types = props[name].get("type")
        if types is None:
            continue
        allowed = types if isinstance(types, list) else [types]
        if not any(_is_type(item, t) for t in allowed):
            errors.append(f"{name} must be {' or '.join(allowed)}")
        enum = props[name].get("enum")
        if enum is not None and item not in enum:
            errors.append(f"{name} must be one of {', '.join(enum)}")
    return errors


def _is_type(value: Any, name: str) -> bool:
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, JSON_TYPES[name])


def tool_result(structured: dict[str, Any], text: str | None = None, error: bool = False) -> dict:
    """An MCP ``tools/call`` result with text and structured content."""
    result: dict[str, Any] = {
        "content": [{"type": "text", "text": text if text is not None else json.dumps(structured)}],
        "structuredContent": structured,
    }
    if error:
        result["isError"] = True
    return result


def invalid(message: str, **extra: Any) -> dict[str, Any]:
    """A tool error for bad arguments."""
    return tool_result(
        {"ok": False, "error": {"code": "INVALID_ARGUMENT", "message": message, **extra}},
        message,
        error=True,
    )


class NodeTools:
    """Lists and runs the tools for one caller."""

    def __init__(
        self, registry: NodeRegistry, scopes: Scopes, cron: CronProvider | None = None
    ) -> None:
        self.registry = registry
        self.scopes = scopes
        self.cron = cron

    def list_tools(self, principal: Principal) -> list[dict[str, Any]]:
        """The tools this caller has (``cron`` only for a session, when automation runs)."""
        tools = [NODES_LIST, NODE_INVOKE]
        if self.cron is not None and not principal.is_admin:
            tools.append(CRON)
        return tools

    async def call(self, principal: Principal, name: str, arguments: Any) -> dict[str, Any]:
        """Run a tool; errors are tool results with ``isError`` (never JSON-RPC errors)."""
        tool = next((t for t in self.list_tools(principal) if t["name"] == name), None)
        if tool is None:
            message = f"Unknown tool: {name}"
            return tool_result(
                {"ok": False, "error": {"code": "UNKNOWN_TOOL", "message": name}}, message, True
            )
        problems = schema_errors(tool["inputSchema"], arguments)
        if problems:
            return invalid("; ".join(problems))
        if name == "nodes_list":
            nodes = self.registry.list_connected(lambda n: self.scopes.may_reach(principal, n))
            return tool_result({"nodes": nodes}, json.dumps({"nodes": nodes}, ensure_ascii=False))
        if name == "cron":
            assert self.cron is not None and principal.session_id is not None
            try:
                structured = await self.cron(principal.session_id, arguments["action"], arguments)
            except ValueError as exc:
                return invalid(str(exc))
            return tool_result(structured)
        return await self._invoke(principal, arguments)

    def _select(self, principal: Principal, wanted: str | None) -> tuple[str | None, dict | None]:
        runtime_nodes = sorted(n for n in self.registry.nodes if n.startswith(RUNTIME_PREFIX))
        if wanted is None or wanted.strip().lower() == "self":
            if not principal.is_admin:
                return runtime_node_id(principal.session_id or ""), None
            if len(runtime_nodes) == 1:
                return runtime_nodes[0], None
            message = "node='self' is ambiguous for the admin; pass node='runtime:<sessionId>'"
            return None, tool_result(
                {
                    "ok": False,
                    "error": {
                        "code": "NODE_NOT_FOUND",
                        "node": "self",
                        "runtimeNodes": runtime_nodes,
                    },
                },
                message,
                True,
            )
        node_id = self.registry.resolve(wanted)
        if node_id is None or not self.scopes.may_reach(principal, node_id):
            # Unreachable and missing look the same: a session learns nothing about others.
            message = "Node not found (or ambiguous display name)"
            return None, tool_result(
                {"ok": False, "error": {"code": "NODE_NOT_FOUND", "node": wanted}}, message, True
            )
        return node_id, None

    async def _invoke(self, principal: Principal, arguments: dict[str, Any]) -> dict[str, Any]:
        command = arguments["command"].strip()
        if not command:
            return invalid("Missing required field: command")
        node_id, problem = self._select(principal, arguments.get("node"))
        if problem is not None:
            return problem
        assert node_id is not None
        result = await self.registry.invoke(
            node_id, command, arguments.get("params"), arguments.get("timeoutMs")
        )
        structured = {
            "ok": result["ok"],
            "nodeId": node_id,
            "command": command,
            "payload": result.get("payload"),
            "error": result.get("error"),
        }
        text = json.dumps(
            result.get("payload") if result["ok"] else result.get("error"), ensure_ascii=False
        )
        return tool_result(structured, text, error=not result["ok"])

"""``/mcp`` with the official MCP Python SDK client, and the spec rules on raw HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx
import httpx2
import trio
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from argus.auth import derive_session_token
from tests.conftest import DaemonFactory
from tests.harness import connect
from tests.nodes_helpers import ADMIN, wait_node

ENV = {"ARGUS_TOKEN": ADMIN}
JSON_HEADERS = {"Accept": "application/json, text/event-stream"}


async def test_sdk_client_lists_tools_and_invokes_self(daemon_factory: DaemonFactory) -> None:
    with trio.fail_after(60):
        async with daemon_factory(**ENV) as d, d.http(ADMIN) as admin:
            async with connect(d, token=ADMIN) as client:
                sid = client.session["id"]
                await wait_node(admin, f"runtime:{sid}")
                token = derive_session_token(ADMIN, sid)
                headers = {"Authorization": f"Bearer {token}"}
                async with (
                    httpx2.AsyncClient(headers=headers, timeout=30) as http,
                    streamable_http_client(d.base_url + "/mcp", http_client=http) as streams,
                    ClientSession(streams[0], streams[1]) as session,
                ):
                    await session.initialize()
                    tools = await session.list_tools()
                    assert sorted(t.name for t in tools.tools) == [
                        "cron",
                        "node_invoke",
                        "nodes_list",
                    ]
                    res = await session.call_tool(
                        "node_invoke",
                        {
                            "node": "self",
                            "command": "system.run",
                            "params": {"argv": ["sh", "-c", "echo from-self"]},
                        },
                    )
                    assert not res.is_error, res
                    assert res.structured_content["nodeId"] == f"runtime:{sid}"
                    assert json.loads(res.content[0].text)["stdout"] == "from-self\n"
                    listed = await session.call_tool("nodes_list", {})
                    ids = [n["nodeId"] for n in listed.structured_content["nodes"]]
                    assert ids == [f"runtime:{sid}"]
                    # Strict schema: an unknown field is refused before anything runs.
                    bad = await session.call_tool("node_invoke", {"command": "x", "extra": 1})
                    assert bad.is_error and "unknown field: extra" in bad.content[0].text


async def post(
    http: httpx.AsyncClient, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    """A raw POST /mcp."""
    h = {"Content-Type": "application/json", **JSON_HEADERS, **(headers or {})}
    return await http.post("/mcp", content=json.dumps(body), headers=h)


async def test_mcp_http_rules(daemon_factory: DaemonFactory) -> None:
    with trio.fail_after(30):
        async with daemon_factory(**ENV, ARGUS_RUNTIME_NODE="0") as d, d.http(ADMIN) as http:
            init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {}}
            r = await post(
                http, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}
            )
            assert r.status_code == 200
            assert r.headers["mcp-protocol-version"] == "2025-06-18"
            msid = r.headers["mcp-session-id"]
            r = await post(
                http,
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {"protocolVersion": "1999"},
                },
            )
            assert r.json()["result"]["protocolVersion"] == "2025-11-25"
            h = {"MCP-Session-Id": msid, "MCP-Protocol-Version": "2025-06-18"}
            batch = [
                {"jsonrpc": "2.0", "id": 8, "method": "ping"},
                {"jsonrpc": "2.0", "method": "notifications/x"},
                5,
                {"jsonrpc": "1.0", "id": 9, "method": "ping"},
                {"jsonrpc": "2.0", "id": 10, "method": "resources/list"},
            ]
            r = await post(http, batch, h)
            assert r.json() == [
                {"jsonrpc": "2.0", "id": 8, "result": {}},
                {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {"code": -32600, "message": "Invalid JSON-RPC message"},
                },
                {
                    "jsonrpc": "2.0",
                    "id": 9,
                    "error": {"code": -32600, "message": "Invalid JSON-RPC version"},
                },
                {
                    "jsonrpc": "2.0",
                    "id": 10,
                    "error": {"code": -32601, "message": "Method not found: resources/list"},
                },
            ]
            r = await post(http, {"jsonrpc": "2.0", "method": "notifications/initialized"}, h)
            assert r.status_code == 202
            r = await post(http, {"jsonrpc": "2.0", "id": 2, "method": "ping"})
            assert r.status_code == 400  # no session header
            r = await post(
                http, {"jsonrpc": "2.0", "id": 2, "method": "ping"}, {"MCP-Session-Id": "nope"}
            )
            assert r.status_code == 404
            r = await post(
                http,
                {"jsonrpc": "2.0", "id": 2, "method": "ping"},
                {**h, "MCP-Protocol-Version": "2000-01-01"},
            )
            assert r.status_code == 400
            r = await post(
                http,
                {"jsonrpc": "2.0", "id": 2, "method": "ping"},
                {**h, "Origin": "https://evil.example"},
            )
            assert r.status_code == 403
            r = await post(
                http, {"jsonrpc": "2.0", "id": 2, "method": "ping"}, {**h, "Accept": "text/html"}
            )
            assert r.status_code == 406
            assert (await http.get("/mcp")).status_code == 405
            assert (await d.http().post("/mcp", json={})).status_code == 401
            assert (await http.delete("/mcp", headers={"MCP-Session-Id": msid})).status_code == 200
            r = await post(http, {"jsonrpc": "2.0", "id": 2, "method": "ping"}, h)
            assert r.status_code == 404


async def test_mcp_sessions_expire(daemon_factory: DaemonFactory) -> None:
    with trio.fail_after(30):
        env = {**ENV, "ARGUS_RUNTIME_NODE": "0", "ARGUS_MCP_SESSION_TTL_S": "0.5"}
        async with daemon_factory(**env) as d, d.http(ADMIN) as http:
            r = await post(http, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}})
            h = {"MCP-Session-Id": r.headers["mcp-session-id"]}
            assert (
                await post(http, {"jsonrpc": "2.0", "id": 2, "method": "ping"}, h)
            ).status_code == 200
            await trio.sleep(0.8)
            assert (
                await post(http, {"jsonrpc": "2.0", "id": 3, "method": "ping"}, h)
            ).status_code == 404


async def test_refused_requests_do_not_stall_the_connection(daemon_factory: DaemonFactory) -> None:
    """Every early answer (406, 403, 401) reads the body first, so the next request on the
    same kept-alive connection is answered (an unread body used to stall it)."""
    with trio.fail_after(30):
        async with daemon_factory(**ENV, ARGUS_RUNTIME_NODE="0") as d, d.http(ADMIN) as http:
            big = {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x" * 300_000}}
            for headers in (
                {"Accept": "text/html"},
                {"Origin": "https://evil.example"},
                {"Authorization": "Bearer wrong"},
            ):
                r = await http.post("/mcp", json=big, headers=headers)
                assert r.status_code in (401, 403, 406)
                r = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "ping"})
                assert r.status_code == 400  # answered: no session header

"""``/mcp`` with the official MCP Python SDK, and the scope rules of session tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from mcp import ClientSession
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
from trio_websocket import ConnectionClosed, open_websocket_url

from argus.auth import derive_session_token
from tests.harness import connect, run_daemon
from tests.integration.nodes.test_nodes import ADMIN, HEADERS, wait_node

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}


async def mcp_tools(base_url: str, token: str) -> tuple[list[str], Any]:
    """List tools and run ``node_invoke`` on ``self`` with the official SDK client."""
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with streamable_http_client(base_url + "/mcp", http_client=client) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            tools = [t.name for t in (await session.list_tools()).tools]
            args = {
                "node": "self",
                "command": "system.run",
                "params": {"argv": ["echo", "from-mcp"]},
            }
            result = await session.call_tool("node_invoke", args)
            return tools, result


async def test_official_sdk_lists_tools_and_invokes_self(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with run_daemon(tmp_path / "home", env={"ARGUS_TOKEN": ADMIN}) as daemon:
            async with connect(daemon, headers=HEADERS) as client, daemon.http(ADMIN) as http:
                await wait_node(http, f"runtime:{client.id}")
                token = derive_session_token(ADMIN, client.id)
                tools, result = await mcp_tools(daemon.base_url, token)
    assert tools == ["nodes_list", "node_invoke", "cron"]
    assert result.is_error is False
    assert result.structured_content["nodeId"] == f"runtime:{client.id}"
    assert result.structured_content["payload"]["stdout"] == "from-mcp\n"


async def test_session_token_scope(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with run_daemon(tmp_path / "home", env={"ARGUS_TOKEN": ADMIN}) as daemon:
            async with (
                connect(daemon, headers=HEADERS) as a,
                connect(daemon, headers=HEADERS) as b,
                daemon.http(ADMIN) as admin,
            ):
                await wait_node(admin, f"runtime:{a.id}")
                await wait_node(admin, f"runtime:{b.id}")
                token = derive_session_token(ADMIN, a.id)
                async with daemon.http(token) as http:
                    for path in (
                        "/sessions",
                        "/automation/state",
                        "/nodes",
                        "/automation/cron/jobs",
                    ):
                        assert (await http.get(path)).status_code == 401, path
                    assert (await http.delete(f"/sessions/{b.id}")).status_code == 401
                    assert (
                        await http.post(
                            "/nodes/invoke",
                            json={"node": f"runtime:{b.id}", "command": "system.which"},
                        )
                    ).status_code == 401
                    session_id = await mcp_initialize(http)
                    mcp = {"MCP-Session-Id": session_id}
                    listed = await mcp_call(http, mcp, "nodes_list", {})
                    assert [n["nodeId"] for n in listed["structuredContent"]["nodes"]] == [
                        f"runtime:{a.id}"
                    ]
                    other = await mcp_call(
                        http,
                        mcp,
                        "node_invoke",
                        {
                            "node": f"runtime:{b.id}",
                            "command": "system.which",
                            "params": {"bin": "sh"},
                        },
                    )
                    assert (
                        other["isError"] is True
                        and other["structuredContent"]["error"]["code"] == "NODE_NOT_FOUND"
                    )
                    extra = await mcp_call(
                        http, mcp, "node_invoke", {"command": "system.which", "sudo": True}
                    )
                    assert (
                        extra["isError"] is True
                        and "unknown field: sudo" in extra["content"][0]["text"]
                    )
                    typed = await mcp_call(
                        http, mcp, "node_invoke", {"command": "x", "timeoutMs": "soon"}
                    )
                    assert (
                        typed["isError"] is True
                        and "timeoutMs must be number" in typed["content"][0]["text"]
                    )
                # A session token is not an admin token on /ws either...
                auth = [("Authorization", f"Bearer {token}")]
                url = daemon.ws_url + f"/ws?session={b.id}"
                async with open_websocket_url(url, extra_headers=auth) as ws:
                    with pytest.raises(ConnectionClosed) as refused:
                        await ws.get_message()
                assert (refused.value.reason.code, refused.value.reason.reason) == (
                    1008,
                    "Unauthorized",
                )
                # ... and it may only connect its own runtime node.
                async with open_websocket_url(
                    daemon.ws_url + "/nodes/ws", extra_headers=auth
                ) as ws:
                    await ws.send_message(
                        '{"type":"connect","nodeId":"mac","commands":["system.run"]}'
                    )
                    with pytest.raises(ConnectionClosed) as refused:
                        await ws.get_message()
                assert refused.value.reason.code == 1008


async def mcp_initialize(http: httpx.AsyncClient) -> str:
    r = await http.post(
        "/mcp", json=INIT, headers={"Accept": "application/json, text/event-stream"}
    )
    assert r.status_code == 200 and r.json()["result"]["protocolVersion"] == "2025-06-18"
    return r.headers["MCP-Session-Id"]


async def mcp_call(http: httpx.AsyncClient, headers: dict[str, str], name: str, args: dict) -> dict:
    body = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": name, "arguments": args},
    }
    r = await http.post("/mcp", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["result"]


async def test_transport_rules(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with run_daemon(tmp_path / "home", env={"ARGUS_TOKEN": ADMIN}) as daemon:
            async with daemon.http(ADMIN) as http:
                assert (
                    await http.post("/mcp", json=INIT, headers={"Origin": "https://evil.example"})
                ).status_code == 403
                assert (
                    await http.post("/mcp", json=INIT, headers={"Accept": "text/html"})
                ).status_code == 406
                async with daemon.http() as anon:
                    assert (await anon.post("/mcp", json=INIT)).status_code == 401
                ping = {"jsonrpc": "2.0", "id": 5, "method": "ping"}
                assert (await http.post("/mcp", json=ping)).status_code == 400  # no session
                r = await http.post(
                    "/mcp",
                    json={**INIT, "params": {**INIT["params"], "protocolVersion": "1999-01-01"}},
                )
                assert r.json()["result"]["protocolVersion"] == "2025-11-25"
                sid = r.headers["MCP-Session-Id"]
                h = {"MCP-Session-Id": sid}
                assert (
                    await http.post(
                        "/mcp", json=ping, headers={**h, "MCP-Protocol-Version": "1999-01-01"}
                    )
                ).status_code == 400
                batch = [ping, {"jsonrpc": "2.0", "method": "notifications/initialized"}, 5,
                         {"jsonrpc": "2.0", "id": 9, "method": "resources/list"}]  # fmt: skip
                replies = (await http.post("/mcp", json=batch, headers=h)).json()
                assert [x.get("id") for x in replies] == [5, None, 9]
                assert replies[2]["error"]["code"] == -32601
                note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
                assert (await http.post("/mcp", json=note, headers=h)).status_code == 202
                assert (await http.get("/mcp", headers=h)).status_code == 405
                assert (await http.delete("/mcp", headers=h)).status_code == 200
                assert (await http.post("/mcp", json=ping, headers=h)).status_code == 404
                async with connect(daemon, headers=HEADERS) as someone:
                    async with daemon.http(derive_session_token(ADMIN, someone.id)) as other:
                        r = await other.post("/mcp", json=INIT)
                        theirs = {"MCP-Session-Id": r.headers["MCP-Session-Id"]}
                    assert (await http.post("/mcp", json=ping, headers=theirs)).status_code == 404
                async with daemon.http(derive_session_token(ADMIN, "never-existed")) as ghost:
                    assert (await ghost.post("/mcp", json=INIT)).status_code == 401


async def test_a_deleted_sessions_token_stops_working(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with run_daemon(tmp_path / "home", env={"ARGUS_TOKEN": ADMIN}) as daemon:
            async with connect(daemon, headers=HEADERS) as client:
                await client.handshake()
            token = derive_session_token(ADMIN, client.id)
            async with daemon.http(token) as http:
                assert (await http.post("/mcp", json=INIT)).status_code == 200
                async with daemon.http(ADMIN) as admin:
                    assert (await admin.delete(f"/sessions/{client.id}")).status_code == 200
                assert (await http.post("/mcp", json=INIT)).status_code == 401

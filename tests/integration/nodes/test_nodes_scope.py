"""Scoped session tokens: a session reaches its own runtime node and the allowed nodes only,
never another session's node and never the admin surfaces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from argus.auth import derive_session_token
from tests.conftest import DaemonFactory
from tests.harness import connect, ws_url
from tests.nodes_helpers import ADMIN, node_host, nodes_url, wait_node


async def mcp_call(http: httpx.AsyncClient, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """initialize + tools/call over raw HTTP; returns the tool result."""
    headers = {"Accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    r = await http.post("/mcp", json=init, headers=headers)
    assert r.status_code == 200, r.text
    headers["MCP-Session-Id"] = r.headers["mcp-session-id"]
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call"}
    call["params"] = {"name": name, "arguments": arguments}
    r = await http.post("/mcp", json=call, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["result"]


async def test_session_token_scope(daemon_factory: DaemonFactory, tmp_path: Path) -> None:
    with trio.fail_after(60):
        env = {"ARGUS_TOKEN": ADMIN, "ARGUS_NODE_ALLOW": "shared"}
        async with daemon_factory(**env) as d, d.http(ADMIN) as admin:
            async with (
                connect(d, token=ADMIN) as a,
                connect(d, token=ADMIN) as b,
                node_host(nodes_url(d), "shared", tmp_path / "s1"),
                node_host(nodes_url(d), "private", tmp_path / "s2"),
            ):
                sa, sb = a.session["id"], b.session["id"]
                for node in (f"runtime:{sa}", f"runtime:{sb}", "shared", "private"):
                    await wait_node(admin, node)
                token_a = derive_session_token(ADMIN, sa)
                async with d.http(token_a) as http:
                    listed = await mcp_call(http, "nodes_list", {})
                    ids = sorted(n["nodeId"] for n in listed["structuredContent"]["nodes"])
                    assert ids == sorted([f"runtime:{sa}", "shared"])
                    own = await mcp_call(
                        http,
                        "node_invoke",
                        {"node": "self", "command": "system.run", "params": {"argv": ["true"]}},
                    )
                    assert own["structuredContent"]["nodeId"] == f"runtime:{sa}"
                    for other in (f"runtime:{sb}", "private", f"RUNTIME-{sb}"):
                        res = await mcp_call(
                            http, "node_invoke", {"node": other, "command": "system.which"}
                        )
                        assert res["isError"] is True
                        assert res["structuredContent"]["error"]["code"] == "NODE_NOT_FOUND"
                    allowed = await mcp_call(
                        http,
                        "node_invoke",
                        {"node": "shared", "command": "system.which", "params": {"bin": "sh"}},
                    )
                    assert allowed["structuredContent"]["ok"] is True
                    # No admin surface.
                    assert (await http.get("/sessions")).status_code == 401
                    assert (await http.get("/nodes")).status_code == 401
                    assert (await http.delete(f"/sessions/{sb}")).status_code == 401
                    r = await http.post("/nodes/invoke", json={"node": "shared", "command": "x"})
                    assert r.status_code == 401
                # Not another session's /ws, nor its own.
                for target in (sb, sa):
                    url = ws_url(d, session=target, token=token_a)
                    async with open_websocket_url(url) as ws:
                        with pytest.raises(ConnectionClosed) as c:
                            await ws.get_message()
                        assert c.value.reason.code == 1008
                # Nor can it register another session's runtime node (or a plain node).
                for node_id in (f"runtime:{sb}", "mac"):
                    async with open_websocket_url(nodes_url(d, token=token_a)) as ws:
                        await ws.send_message(json.dumps({"type": "connect", "nodeId": node_id}))
                        with pytest.raises(ConnectionClosed) as c:
                            await ws.get_message()
                        assert c.value.reason.code == 1008
                # A session token made with another secret opens nothing.
                async with d.http(derive_session_token("not-the-secret", sa)) as http:
                    r = await http.post(
                        "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "initialize"}
                    )
                    assert r.status_code == 401


async def test_runtime_node_follows_the_session(daemon_factory: DaemonFactory) -> None:
    """Deleting a session takes its runtime node away; the admin token never reaches it."""
    with trio.fail_after(60):
        async with daemon_factory(ARGUS_TOKEN=ADMIN) as d, d.http(ADMIN) as admin:
            async with connect(d, token=ADMIN) as a:
                sid = a.session["id"]
                await wait_node(admin, f"runtime:{sid}")
                r = await admin.post(
                    "/nodes/invoke",
                    json={
                        "node": f"runtime:{sid}",
                        "command": "system.run",
                        "params": {"argv": ["sh", "-c", "env"]},
                    },
                )
                env_text = r.json()["payload"]["stdout"]
                assert ADMIN not in env_text and "ARGUS_" not in env_text
                assert (await admin.delete(f"/sessions/{sid}")).status_code == 200
                await wait_node(admin, f"runtime:{sid}", present=False)

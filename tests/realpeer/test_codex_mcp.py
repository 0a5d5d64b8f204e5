"""The real ``codex app-server`` calls Argus's MCP ``node_invoke`` on its own runtime node.

codex gets ``[mcp_servers.argus] url=… bearer_token_env_var="ARGUS_MCP_TOKEN"`` in its
config; Argus gives each runtime its session token in that variable (never the admin
token). When the fake model emits a call of the MCP tool, codex calls ``/mcp``, Argus runs
the command on ``runtime:<session>`` through its node-host, and the output reaches the
model in the next request.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from argus.testing import run_daemon
from tests.harness import connect
from tests.integration.nodes.test_nodes import ADMIN, HEADERS, free_port, wait_node
from tests.realpeer.codex_home import make_codex_home
from tests.realpeer.fake_model import FakeModel

pytestmark = pytest.mark.codex


async def test_codex_calls_node_invoke_through_mcp(
    tmp_path: Path, codex_bin: str, fake_model: FakeModel
) -> None:
    port = free_port()
    env = make_codex_home(tmp_path, fake_model.base_url)
    config = Path(env["CODEX_HOME"]) / "config.toml"
    config.write_text(
        config.read_text()
        + f'\n[mcp_servers.argus]\nurl = "http://127.0.0.1:{port}/mcp"\n'
        + 'bearer_token_env_var = "ARGUS_MCP_TOKEN"\n'
    )
    env.update(ARGUS_RUNTIME_CMD=f"{codex_bin} app-server", ARGUS_TOKEN=ADMIN)
    with trio.fail_after(150):
        async with run_daemon(tmp_path / "home", "--port", str(port), env=env) as daemon:
            async with connect(daemon, headers=HEADERS) as client, daemon.http(ADMIN) as http:
                await client.handshake()
                await wait_node(http, f"runtime:{client.id}")
                thread_id = await client.start_thread()
                fake_model.queue_text("warming up", chunks=1)
                await client.start_turn(thread_id, "hello")
                await client.recv_until(lambda m: m.get("method") == "turn/completed", timeout=60)
                offered = fake_model.requests[-1].get("tools", [])
                namespace = next((t for t in offered if t.get("name") == "mcp__argus"), None)
                assert namespace is not None, f"codex did not offer Argus's MCP tools: {offered}"
                inner = [t["name"] for t in namespace.get("tools", [])]
                assert {"nodes_list", "node_invoke"} <= set(inner)
                arguments = {
                    "node": "self",
                    "command": "system.run",
                    "params": {"argv": ["echo", "via-mcp-42"]},
                }
                fake_model.queue_function_call("node_invoke", arguments, namespace="mcp__argus")
                fake_model.queue_text("the command said via-mcp-42", chunks=2)
                await client.start_turn(thread_id, "run echo on your node")
                while True:
                    msg = await client.recv(timeout=60)
                    if "id" in msg and "method" in msg:  # an approval request: accept it
                        await client.send(
                            {"id": msg["id"], "result": {"decision": "accept", "action": "accept"}}
                        )
                    if msg.get("method") == "turn/completed":
                        break
    outputs = [
        item
        for item in fake_model.requests[-1]["input"]
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]
    assert outputs and "via-mcp-42" in json.dumps(outputs)

"""The gateway side of /nodes/ws and /nodes/invoke, driven by a hand-written node on a real
WebSocket (so the frames are exactly the original's wire format)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from argus.procs import read_chunks
from tests.conftest import DaemonFactory
from tests.harness import Daemon
from tests.nodes_helpers import ADMIN, invoke, nodes_url, wait_node

ENV = {"ARGUS_TOKEN": ADMIN, "ARGUS_RUNTIME_NODE": "0"}


@asynccontextmanager
async def raw_node(
    d: Daemon, node_id: str, commands: list[str] | None = None, token: str = ADMIN
) -> AsyncIterator[WebSocketConnection]:
    """A node that connected and got ``node.connected``."""
    async with open_websocket_url(nodes_url(d, token=token)) as ws:
        frame = {
            "type": "connect",
            "nodeId": node_id,
            "displayName": node_id.upper(),
            "platform": "linux",
            "version": "0.1.0",
            "caps": ["system"],
            "commands": ["echo", "slow"] if commands is None else commands,
        }
        await ws.send_message(json.dumps(frame))
        ack = json.loads(await ws.get_message())
        assert ack == {"type": "event", "event": "node.connected", "payload": {"nodeId": node_id}}
        yield ws


async def next_request(ws: WebSocketConnection) -> dict[str, Any]:
    """The next ``node.invoke.request`` payload."""
    frame = json.loads(await ws.get_message())
    assert frame["type"] == "event" and frame["event"] == "node.invoke.request", frame
    return frame["payload"]


def result(node_id: str, req_id: str, payload: Any) -> str:
    """A ``node.invoke.result`` frame."""
    body = {"id": req_id, "nodeId": node_id, "ok": True, "payload": payload, "error": None}
    return json.dumps({"type": "event", "event": "node.invoke.result", "payload": body})


async def test_invoke_round_trip_wire_format(daemon_factory: DaemonFactory) -> None:
    with trio.fail_after(30):
        async with daemon_factory(**ENV) as d, d.http(ADMIN) as http:
            async with raw_node(d, "mac") as ws, trio.open_nursery() as nursery:

                async def answer() -> None:
                    req = await next_request(ws)
                    assert req["command"] == "echo" and req["nodeId"] == "mac"
                    assert json.loads(req["paramsJSON"]) == {"a": 1}
                    assert req["timeoutMs"] == 30000
                    await ws.send_message(result("mac", req["id"], {"echo": {"a": 1}}))

                nursery.start_soon(answer)
                # By display name, case-insensitively.
                res = await invoke(http, "Mac", "echo", {"a": 1})
                assert res == {
                    "ok": True,
                    "nodeId": "mac",
                    "command": "echo",
                    "payload": {"echo": {"a": 1}},
                    "payloadJSON": None,
                    "error": None,
                }
                listed = (await http.get("/nodes")).json()["nodes"]
                assert [n["nodeId"] for n in listed] == ["mac"]
                assert set(listed[0]) >= {"displayName", "commands", "connectedAtMs", "lastSeenMs"}


async def test_invoke_errors(daemon_factory: DaemonFactory) -> None:
    with trio.fail_after(30):
        async with daemon_factory(**ENV) as d, d.http(ADMIN) as http:
            async with raw_node(d, "quiet"), raw_node(d, "empty", commands=[]):
                r = await http.post("/nodes/invoke", json={"command": "echo"})
                assert r.status_code == 400 and r.json()["detail"].startswith("Missing 'node'")
                r = await http.post("/nodes/invoke", json={"node": "quiet"})
                assert (r.status_code, r.json()["detail"]) == (400, "Missing 'command'")
                r = await http.post(
                    "/nodes/invoke", json={"node": "quiet", "command": "echo", "timeoutMs": "5"}
                )
                assert r.status_code == 400
                r = await http.post("/nodes/invoke", json={"node": "self", "command": "echo"})
                assert r.status_code == 404
                res = await invoke(http, "quiet", "nope")
                assert res["error"] == {
                    "code": "UNSUPPORTED",
                    "message": "command not supported: nope",
                }
                # An empty command list accepts nothing (the original: everything).
                res = await invoke(http, "empty", "echo")
                assert res["error"]["code"] == "UNSUPPORTED"
                res = await invoke(http, "quiet", "slow", timeoutMs=300)
                assert res["ok"] is False and res["error"]["code"] == "TIMEOUT"
                r = await d.http().get("/nodes")
                assert r.status_code == 401


async def test_disconnect_fails_pending_at_once_and_replacement(
    daemon_factory: DaemonFactory,
) -> None:
    with trio.fail_after(30):
        async with daemon_factory(**ENV) as d, d.http(ADMIN) as http:
            results: dict[str, Any] = {}
            async with trio.open_nursery() as nursery:
                async with raw_node(d, "flaky") as ws:

                    async def call() -> None:
                        results["a"] = await invoke(http, "flaky", "slow", timeoutMs=20000)

                    nursery.start_soon(call)
                    await next_request(ws)
                # The socket closed: the invoke fails now, not after 20 s.
            assert results["a"]["error"]["code"] == "NODE_DISCONNECTED"

            async with raw_node(d, "dup") as old, trio.open_nursery() as nursery:

                async def call2() -> None:
                    results["b"] = await invoke(http, "dup", "slow", timeoutMs=20000)

                nursery.start_soon(call2)
                req = await next_request(old)
                async with raw_node(d, "dup") as new:
                    with pytest.raises(ConnectionClosed) as closed:
                        await old.get_message()
                    assert closed.value.reason.code == 1012
                    nursery.cancel_scope.deadline = trio.current_time() + 10
                    # A late answer on the old socket is not accepted for the new one.
                    await trio.sleep(0.2)
                    assert results["b"]["error"]["code"] == "NODE_REPLACED"
                    info = await wait_node(http, "dup")
                    assert info["nodeId"] == "dup"
                    del req, new


async def test_result_only_from_the_node_it_was_sent_to(daemon_factory: DaemonFactory) -> None:
    with trio.fail_after(30):
        async with daemon_factory(**ENV) as d, d.http(ADMIN) as http:
            async with raw_node(d, "target") as target, raw_node(d, "intruder") as intruder:
                async with trio.open_nursery() as nursery:
                    out: dict[str, Any] = {}

                    async def call() -> None:
                        out["r"] = await invoke(http, "target", "echo", timeoutMs=5000)

                    nursery.start_soon(call)
                    req = await next_request(target)
                    # Same id, from another node (claiming either node id): ignored.
                    await intruder.send_message(result("intruder", req["id"], "forged"))
                    await intruder.send_message(result("target", req["id"], "forged"))
                    await trio.sleep(0.2)
                    await target.send_message(result("target", req["id"], "genuine"))
                assert out["r"]["payload"] == "genuine"


async def test_handshake_rules(daemon_factory: DaemonFactory) -> None:
    with trio.fail_after(30):
        async with daemon_factory(**ENV) as d:
            async with open_websocket_url(nodes_url(d, token="wrong")) as ws:
                with pytest.raises(ConnectionClosed) as c:
                    await ws.get_message()
                assert (c.value.reason.code, c.value.reason.reason) == (1008, "Unauthorized")
            async with open_websocket_url(nodes_url(d, token=ADMIN)) as ws:
                await ws.send_message(json.dumps({"type": "hello"}))
                with pytest.raises(ConnectionClosed) as c:
                    await ws.get_message()
                assert c.value.reason.reason == "First message must be {type:'connect', ...}"
            async with open_websocket_url(nodes_url(d, token=ADMIN)) as ws:
                await ws.send_message(json.dumps({"type": "connect", "nodeId": "  "}))
                with pytest.raises(ConnectionClosed) as c:
                    await ws.get_message()
                assert c.value.reason.reason == "Missing nodeId"
            # Silent after the upgrade: closed after the connect deadline (10 s).
            async with open_websocket_url(nodes_url(d, token=ADMIN)) as ws:
                with pytest.raises(ConnectionClosed) as c:
                    await ws.get_message()
                assert c.value.reason.code == 1008


async def test_node_token_setting(daemon_factory: DaemonFactory) -> None:
    with trio.fail_after(30):
        async with daemon_factory(**ENV, ARGUS_NODE_TOKEN="node-only") as d:
            async with raw_node(d, "n", token="node-only"):
                pass
            # The node token opens nothing else.
            async with d.http("node-only") as http:
                assert (await http.get("/nodes")).status_code == 401


async def test_a_foreign_origin_cannot_open_nodes_ws(daemon_factory: DaemonFactory) -> None:
    # Loopback, no token: the default a browser page would attack. Any site's page could
    # otherwise register a node offering system.run from a visitor's browser.
    with trio.fail_after(30):
        async with daemon_factory(ARGUS_RUNTIME_NODE="0") as d:
            with pytest.raises(HandshakeError) as refused:
                async with open_websocket_url(
                    nodes_url(d), extra_headers=[("Origin", "https://evil.example")]
                ):
                    pass
            assert getattr(refused.value, "status_code", None) == 403
            # The local console's origin still connects, as on /ws.
            async with open_websocket_url(
                nodes_url(d), extra_headers=[("Origin", "http://127.0.0.1:3000")]
            ) as ws:
                await ws.send_message(json.dumps({"type": "connect", "nodeId": "laptop"}))
                frame = json.loads(await ws.get_message())
                assert frame["event"] == "node.connected"


async def test_the_original_readme_node_host_invocation_connects(
    daemon_factory: DaemonFactory, tmp_path: Any
) -> None:
    # `argus node-host --url "ws://HOST:8080/nodes/ws?token=..."`, as the original README
    # wrote it: accepted, the token moves to a header, with one warning.
    with trio.fail_after(60):
        async with daemon_factory(**ENV) as d, d.http(ADMIN) as http:
            url = nodes_url(d, token=ADMIN)
            argv = [sys.executable, "-m", "argus", "node-host", "--url", url]
            argv += ["--node-id", "laptop", "--state-dir", str(tmp_path / "state")]
            env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
            process = await trio.lowlevel.open_process(
                argv, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            try:
                node = await wait_node(http, "laptop")
                assert node["nodeId"] == "laptop"
            finally:
                process.terminate()
                with trio.move_on_after(10):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            assert process.stderr is not None
            stderr = b"".join([chunk async for chunk in read_chunks(process.stderr)]).decode()
            assert stderr.count("visible to every user of this machine in the process list") == 1
            assert ADMIN not in stderr

"""``tcp`` mode against a scripted runtime: exactly what reaches the runtime, and back.

The test plays the runtime itself on 127.0.0.1, so it sees every line Argus writes and
decides every line Argus reads.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from tests.harness import connect, ws_url


class ScriptedRuntime:
    """A TCP 'runtime' whose connections the test drives line by line."""

    def __init__(self) -> None:
        self.connections: list[trio.SocketStream] = []
        self.buffers: dict[int, bytes] = {}
        self.new_connection = trio.Event()
        self.port = 0

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._accept, listeners)

    async def _accept(self, stream: trio.SocketStream) -> None:
        self.connections.append(stream)
        self.new_connection.set()
        await trio.sleep_forever()

    async def wait_connection(self, count: int) -> trio.SocketStream:
        with trio.fail_after(10):
            while len(self.connections) < count:
                self.new_connection = trio.Event()
                await self.new_connection.wait()
        return self.connections[count - 1]

    async def read_line(self, stream: trio.SocketStream) -> dict[str, Any]:
        key = id(stream)
        with trio.fail_after(10):
            while b"\n" not in self.buffers.get(key, b""):
                data = await stream.receive_some(65536)
                assert data, "gateway closed the runtime connection"
                self.buffers[key] = self.buffers.get(key, b"") + data
        line, rest = self.buffers[key].split(b"\n", 1)
        self.buffers[key] = rest
        return json.loads(line)

    async def no_line(self, stream: trio.SocketStream, wait: float = 0.3) -> None:
        """Nothing arrives for a while."""
        with trio.move_on_after(wait):
            data = await stream.receive_some(65536)
            raise AssertionError(f"unexpected runtime input: {data!r}")
        assert not self.buffers.get(id(stream))

    async def write(self, stream: trio.SocketStream, *objs: Any, raw: bytes = b"") -> None:
        await stream.send_all(raw + b"".join(json.dumps(o).encode() + b"\n" for o in objs))


@pytest.fixture
async def runtime(nursery: trio.Nursery) -> ScriptedRuntime:
    """A scripted runtime listening on 127.0.0.1 for this test."""
    scripted = ScriptedRuntime()
    await nursery.start(scripted.serve)
    return scripted


def tcp_env(runtime: ScriptedRuntime) -> dict[str, str]:
    """Daemon settings that point every session at ``runtime``."""
    return {"ARGUS_PROVISION_MODE": "tcp", "ARGUS_TCP_PORT": str(runtime.port)}


async def test_what_the_runtime_sees(daemon_factory, runtime: ScriptedRuntime) -> None:
    env = tcp_env(runtime)
    with trio.fail_after(60):
        async with daemon_factory(**env) as daemon, connect(daemon) as a:
            conn = await runtime.wait_connection(1)
            async with connect(daemon, session=a.id) as b:
                # initialize: forwarded once, with a gateway id; b's waits, then is cached.
                await a.send({"id": "a0", "method": "initialize", "params": {}})
                init = await runtime.read_line(conn)
                assert init["method"] == "initialize" and init["id"] >= 1_000_000_000
                await b.send({"id": 9, "method": "initialize", "params": {}})
                await runtime.no_line(conn)
                await runtime.write(conn, {"id": init["id"], "result": {"userAgent": "fake"}})
                assert await a.recv() == {"id": "a0", "result": {"userAgent": "fake"}}
                assert await b.recv() == {"id": 9, "result": {"userAgent": "fake"}}
                await a.send({"id": None, "method": "initialize", "params": {}})
                await b.send({"id": [1], "method": "initialize", "params": {}})
                assert (await a.recv())["id"] is None
                assert (await b.recv())["id"] == [1]
                # initialized: forwarded once.
                await a.send({"method": "initialized"})
                assert await runtime.read_line(conn) == {"method": "initialized"}
                await b.send({"method": "initialized"})
                await runtime.no_line(conn)

                # Ids rewritten, unique, restored; responses only to the requester.
                await a.send({"id": 7, "method": "thread/start", "params": {}})
                await b.send({"id": 7, "method": "thread/list", "params": {}})
                first, second = await runtime.read_line(conn), await runtime.read_line(conn)
                assert first["id"] != second["id"]
                assert {first["method"], second["method"]} == {"thread/start", "thread/list"}
                for req in (second, first):
                    await runtime.write(conn, {"id": req["id"], "result": {"m": req["method"]}})
                assert await a.recv() == {"id": 7, "result": {"m": "thread/start"}}
                assert await b.recv() == {"id": 7, "result": {"m": "thread/list"}}

                # Notifications reach everyone; noise does not.
                note = {"method": "thread/started", "params": {"thread": {"id": "t1"}}}
                await runtime.write(conn, note, raw=b"stderr-ish noise\n\n[1,2]\n")
                assert await a.recv() == note
                assert await b.recv() == note

                # Malformed frames are never forwarded; a pretty frame becomes one line.
                await a.ws.send_message("{broken")
                await a.ws.send_message("[]")
                assert (await a.recv())["error"]["code"] == -32700
                assert (await a.recv())["error"]["code"] == -32600
                await runtime.no_line(conn)
                await a.ws.send_message('{\n  "method": "custom/note",\n  "params": {}\n}')
                assert await runtime.read_line(conn) == {"method": "custom/note", "params": {}}

                # A request in flight when the runtime goes away fails; clients learn why.
                await b.send({"id": "pending", "method": "thread/read", "params": {}})
                await runtime.read_line(conn)
                await conn.aclose()
                failed = await b.recv_until(lambda m: m.get("id") == "pending")
                assert failed["error"]["code"] == -32001
                for client in (a, b):
                    await client.recv_until(lambda m: m.get("method") == "argus/runtime/exited")

            # Attaching again starts a new runtime connection with a fresh handshake.
            async with connect(daemon, session=a.id) as c:
                conn2 = await runtime.wait_connection(2)
                await c.send({"id": 1, "method": "initialize", "params": {}})
                assert (await runtime.read_line(conn2))["method"] == "initialize"


async def test_server_request_routing(daemon_factory, runtime: ScriptedRuntime) -> None:
    env = tcp_env(runtime)
    with trio.fail_after(60):
        async with daemon_factory(**env) as daemon, connect(daemon) as a:
            conn = await runtime.wait_connection(1)
            async with connect(daemon, session=a.id) as b:
                await b.send({"id": 1, "method": "turn/start", "params": {"threadId": "T"}})
                start = await runtime.read_line(conn)
                await runtime.write(conn, {"id": start["id"], "result": {"turn": {"id": "U"}}})
                await b.recv()
                approval = {
                    "id": 0,
                    "method": "item/commandExecution/requestApproval",
                    "params": {"threadId": "T", "turnId": "U", "command": "ls"},
                }
                await runtime.write(conn, approval)
                assert await b.recv() == approval  # the turn owner
                # The runtime resolves it itself: nobody gets it again, not even a newcomer.
                resolved = {
                    "method": "serverRequest/resolved",
                    "params": {"threadId": "T", "requestId": 0},
                }
                await runtime.write(conn, resolved)
                assert await b.recv() == resolved
                async with connect(daemon, session=a.id) as c:
                    await runtime.write(conn, {"method": "ping/note", "params": {}})
                    assert (await c.recv())["method"] == "ping/note"
                # An answer to a resolved request is not forwarded.
                await b.send({"id": 0, "result": {"decision": "accept"}})
                await runtime.no_line(conn)
                # A second request: answered by b, forwarded verbatim, once.
                await runtime.write(conn, dict(approval, id=1))
                again = await b.recv_until(lambda m: m.get("method", "").endswith("Approval"))
                assert again["id"] == 1
                # Both answer (a got it too? no: a never received it, but may guess the id);
                # whichever answer arrives first is forwarded, the other is dropped.
                await b.send({"id": 1, "result": {"decision": "decline"}})
                await a.send({"id": 1, "result": {"decision": "accept"}})
                forwarded = await runtime.read_line(conn)
                assert forwarded["id"] == 1 and forwarded["result"]["decision"] in (
                    "accept",
                    "decline",
                )
                await runtime.no_line(conn)
                assert not [m for m in a.seen if m.get("method", "").endswith("requestApproval")]


async def test_concurrent_attaches_start_one_runtime(
    daemon_factory, runtime: ScriptedRuntime
) -> None:
    env = tcp_env(runtime)
    with trio.fail_after(60):
        async with daemon_factory(**env) as daemon:
            async with connect(daemon) as first:
                conn = await runtime.wait_connection(1)
                await conn.aclose()  # the runtime goes away; the session is now stopped
                await first.recv_until(lambda m: m.get("method") == "argus/runtime/exited")
            frames: list[dict] = []

            async def attach() -> None:
                async with connect(daemon, session=first.id) as client:
                    frames.append(client.session)
                    await trio.sleep(0.5)

            async with trio.open_nursery() as attachers:
                for _ in range(6):
                    attachers.start_soon(attach)
            assert len(frames) == 6
            assert len(runtime.connections) == 2  # exactly one new runtime connection


async def test_provisioning_failure_closes_1011(daemon_factory) -> None:
    with trio.socket.socket() as sock:  # a port nothing listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        "ARGUS_PROVISION_MODE": "tcp",
        "ARGUS_TCP_PORT": str(port),
        "ARGUS_CONNECT_TIMEOUT_S": "2",
    }
    with trio.fail_after(60):
        async with daemon_factory(**env) as daemon:
            async with open_websocket_url(ws_url(daemon)) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
            assert closed.value.reason.code == 1011
            assert closed.value.reason.reason.startswith("Provisioning failed")
            async with daemon.http() as http:
                assert (await http.get("/sessions")).json() == {"sessions": []}
            assert "provisioning failed" in daemon.log_text


async def test_inflight_requests_are_bounded(daemon_factory, runtime: ScriptedRuntime) -> None:
    env = dict(tcp_env(runtime), ARGUS_MAX_INFLIGHT_REQUESTS="2")
    with trio.fail_after(30):
        async with daemon_factory(**env) as daemon, connect(daemon) as client:
            conn = await runtime.wait_connection(1)
            for i in range(3):
                await client.send({"id": i, "method": "slow/thing", "params": {}})
            refused = await client.recv()
            assert refused["id"] == 2 and refused["error"]["code"] == -32002
            first = await runtime.read_line(conn)
            await runtime.read_line(conn)
            await runtime.no_line(conn)
            # Answering one frees a slot.
            await runtime.write(conn, {"id": first["id"], "result": {}})
            assert (await client.recv())["id"] == 0
            await client.send({"id": 3, "method": "slow/thing", "params": {}})
            assert (await runtime.read_line(conn))["method"] == "slow/thing"

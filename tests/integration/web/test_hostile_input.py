"""Issue 9: what a hostile client sends gets a defined error or close code, never more.

Each test reproduces one defect against a real daemon and checks, afterwards, that the
daemon still serves and logged no traceback.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from argus.provision import bridged
from tests.harness import Daemon, connect, run_daemon, wait_process_gone
from tests.rawws import close_code_after, frame, open_raw

DEEP = "[" * 10_000 + "]" * 10_000
JSON_ROUTES = ("/mcp", "/automation/systemEvent/enqueue", "/automation/cron/jobs", "/nodes/invoke")


async def assert_healthy(daemon: Daemon) -> None:
    """The daemon answers, a new session works, and nothing logged a traceback."""
    async with daemon.http() as http:
        assert (await http.get("/healthz")).json() == {"ok": True}
    async with connect(daemon) as other:
        await other.handshake()
    assert daemon.process.returncode is None
    assert "Traceback" not in daemon.log_text


async def test_lone_surrogates_get_errors_and_the_daemon_lives(daemon) -> None:
    with trio.fail_after(30):
        async with connect(daemon) as bystander, connect(daemon) as client:
            await bystander.handshake()
            await client.handshake()
            for text in (
                r'{"method": 5, "id": "\ud800"}',
                r'{"id":"\ud800","method":"thread/list","params":{}}',
                r'{"id":7,"method":"thread/list","params":{"cursor":"\udc00x"}}',
                r'{"id":8,"method":"argus/cron/add","params":{"text":"\ud800","at":1}}',
            ):
                await client.ws.send_message(text)
                reply = await client.recv()
                assert reply["error"]["code"] == -32600, reply
                assert reply["id"] == json.loads(text)["id"]
            assert (await client.request("thread/list"))["result"] is not None
            assert (await bystander.request("thread/list"))["result"] is not None
        await assert_healthy(daemon)


async def test_invalid_utf8_text_frame_closes_with_1007(daemon) -> None:
    with trio.fail_after(30):
        for path in ("/ws", "/nodes/ws"):
            stream = await open_raw(daemon, path)
            assert await close_code_after(stream, frame(0x1, b'{"text":"\xc3\x28"}')) == 1007
            await stream.aclose()
        await assert_healthy(daemon)


async def test_nodes_ws_refuses_a_foreign_origin(daemon_factory) -> None:
    with trio.fail_after(30):
        async with daemon_factory(ARGUS_ALLOWED_ORIGINS="https://console.example") as daemon:
            url = daemon.ws_url + "/nodes/ws"
            with pytest.raises(ConnectionRejected) as rejected:
                async with open_websocket_url(
                    url, extra_headers=[("Origin", "https://evil.example")]
                ):
                    pass
            assert rejected.value.status_code == 403
            async with open_websocket_url(
                url, extra_headers=[("Origin", "https://console.example")]
            ) as ws:
                await ws.send_message(json.dumps({"type": "connect", "nodeId": "n1"}))
                assert json.loads(await ws.get_message())["event"] == "node.connected"
            assert "evil.example" in daemon.log_text


async def test_deep_nesting_is_a_clear_error(daemon) -> None:
    with trio.fail_after(30):
        async with open_websocket_url(daemon.ws_url + "/nodes/ws") as ws:
            await ws.send_message(json.dumps({"type": "connect", "nodeId": "deep"}))
            await ws.get_message()
            await ws.send_message(DEEP)
            async with daemon.http() as http:
                # Still connected: the frame was ignored like any other malformed one.
                await ws.send_message(json.dumps({"type": "event", "event": "x", "payload": {}}))
                assert [n["nodeId"] for n in (await http.get("/nodes")).json()["nodes"]] == ["deep"]
                for route in JSON_ROUTES:
                    response = await http.post(route, content=DEEP)
                    assert response.status_code == 400, (route, response.text)
                    assert response.json()["code"] == "invalid_json"
        await assert_healthy(daemon)


async def test_invalid_utf8_body_is_a_400(daemon) -> None:
    with trio.fail_after(30):
        async with daemon.http() as http:
            for route in JSON_ROUTES:
                response = await http.post(route, content=b'{"text":"\xc3\x28"}')
                assert response.status_code == 400, (route, response.text)
                assert response.json()["code"] == "invalid_utf8"
        await assert_healthy(daemon)


async def test_out_of_range_cron_at_is_refused(daemon) -> None:
    with trio.fail_after(30):
        async with connect(daemon) as client, daemon.http() as http:
            await client.handshake()
            for at in (1e300, 10**400, -5):
                await client.ws.send_message(
                    json.dumps(
                        {"id": 1, "method": "argus/cron/add", "params": {"text": "x", "at": at}}
                    )
                )
                reply = await client.recv()
                assert reply["error"]["code"] == -32602 and "'at'" in reply["error"]["message"]
                body = {"sessionId": client.id, "text": "x", "at": at}
                response = await http.post("/automation/cron/jobs", content=json.dumps(body))
                assert response.status_code == 400 and response.json()["code"] == "invalid_params"
        await assert_healthy(daemon)


async def test_cron_job_ids_outside_the_safe_charset_are_refused(daemon) -> None:
    with trio.fail_after(30):
        async with connect(daemon) as client, daemon.http() as http:
            await client.handshake()
            for job_id in ("a/b", "../../x", ".hidden", "a" * 65):
                body = {"sessionId": client.id, "text": "x", "at": 1, "jobId": job_id}
                response = await http.post("/automation/cron/jobs", json=body)
                assert response.status_code == 400, job_id
                assert "jobId" in response.json()["detail"]
            body = {"sessionId": client.id, "text": "x", "at": 1, "jobId": "ok_1.a-b"}
            assert (await http.post("/automation/cron/jobs", json=body)).status_code == 200
            assert (await http.delete("/automation/cron/jobs/ok_1.a-b")).status_code == 200


async def test_a_413_does_not_stall_the_keep_alive_connection(daemon) -> None:
    port = int(daemon.base_url.rsplit(":", 1)[1])
    with trio.fail_after(30):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        size = 2 * 1024 * 1024
        head = (
            f"POST /automation/cron/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            f"\r\nContent-Length: {size}\r\n\r\n"
        )
        received = b""
        try:
            await stream.send_all(head.encode() + b" " * (1024 * 1024 + 4096))
            await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        except trio.BrokenResourceError:
            pass  # the server closed already: the client sees the close, nothing stalls
        with trio.move_on_after(10) as waited:
            while True:
                try:
                    chunk = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    break
                if not chunk:
                    break  # the server closed: the client knows to open a new connection
                received += chunk
        assert not waited.cancelled_caught, b"stalled after the 413: " + received[:300]
        if received:  # unless the close (a reset: the body was unread) overtook it
            assert received.startswith(b"HTTP/1.1 413"), received[:200]
            assert b"connection: close" in received.lower()
        await stream.aclose()
        await assert_healthy(daemon)


async def test_a_long_home_still_gets_a_runtime(tmp_path: Path) -> None:
    home = tmp_path / ("a-long-home-directory-" * 4)
    assert len(str(home / "sessions" / "0123456789ab" / "bridge.sock")) > 108
    with trio.fail_after(20):
        async with run_daemon(home) as daemon:
            async with connect(daemon) as client:
                await client.handshake()
                assert (await client.request("thread/list"))["result"] is not None
            natural = home / "sessions" / client.id / "bridge.sock"
            digest = hashlib.sha256(bytes(natural)).hexdigest()[:24]
            sock = bridged.short_socket_dir() / f"{digest}.sock"
            assert sock.is_socket() and not natural.exists()
            async with daemon.http() as http:
                assert (await http.delete(f"/sessions/{client.id}")).status_code == 200
            assert not sock.exists()  # a deleted session leaves no socket behind
            await assert_healthy(daemon)


async def test_closed_clients_do_not_disturb_each_other(daemon) -> None:
    """A client closed by a bad frame leaves its session's other client attached."""
    with trio.fail_after(30):
        async with connect(daemon) as first:
            await first.handshake()
            async with connect(daemon, session=first.id) as second:
                stream = await open_raw(daemon, f"/ws?session={first.id}")
                assert await close_code_after(stream, frame(0x1, b"\xff\xfe")) == 1007
                await stream.aclose()
                assert (await second.request("thread/list"))["result"] is not None
                assert (await first.request("thread/list"))["result"] is not None


async def test_a_bridge_that_cannot_start_is_reported_at_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with trio.fail_after(25):  # the old behaviour: a 30 s connect timeout, then 1011
        async with run_daemon(home) as daemon:
            async with connect(daemon) as client:
                await client.handshake()
                bridge_pid = json.loads(
                    (home / "sessions" / client.id / "bridge.json").read_text()
                )["pid"]
                await client.start_turn(await client.start_thread(), "/crash 7")
                await client.recv_until(lambda m: m.get("method") == "argus/runtime/exited")
            await wait_process_gone(bridge_pid)
            # A directory where the socket goes: the next bridge fails to listen and exits.
            sock = home / "sessions" / client.id / "bridge.sock"
            sock.unlink(missing_ok=True)
            sock.mkdir()
            url = daemon.ws_url + f"/ws?session={client.id}"
            async with open_websocket_url(url) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
            assert closed.value.reason.code == 1011
            assert "exited at start" in closed.value.reason.reason
            assert "runtime bridge exited at start" in daemon.log_text

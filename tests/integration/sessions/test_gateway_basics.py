"""The daemon as a user first meets it: health, sessions, auth, the /ws handshake, errors."""

from __future__ import annotations

import json

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from tests.harness import connect, wait_process_gone, ws_url

TOKEN = "s3cret-token-value"


async def test_healthz_and_sessions_listing(daemon) -> None:
    with trio.fail_after(30):
        async with daemon.http() as http:
            assert (await http.get("/healthz")).json() == {"ok": True}
            assert (await http.get("/sessions")).json() == {"sessions": []}
            async with connect(daemon) as client:
                assert client.session["created"] is True
                assert client.session["attached"] is False
                assert client.session["mode"] == "local"
                assert client.session["seq"] == 0
                await client.handshake()
                [entry] = (await http.get("/sessions")).json()["sessions"]
                assert entry["sessionId"] == client.id
                assert entry["state"] == "running"
                assert entry["clients"] == 1
                assert isinstance(entry["pid"], int)
                assert entry["createdAtMs"] <= entry["lastActiveAtMs"]
            # The session outlives its last client, and so does the runtime.
            with trio.fail_after(5):
                while (await http.get("/sessions")).json()["sessions"][0]["clients"]:
                    await trio.sleep(0.02)
            [entry2] = (await http.get("/sessions")).json()["sessions"]
            assert entry2["state"] == "running" and entry2["pid"] == entry["pid"]


async def test_delete_session_stops_runtime_and_closes_clients(daemon) -> None:
    with trio.fail_after(30):
        async with daemon.http() as http, connect(daemon) as client:
            await client.handshake()
            pid = (await http.get("/sessions")).json()["sessions"][0]["pid"]
            response = await http.delete(f"/sessions/{client.id}")
            assert response.json() == {"ok": True, "sessionId": client.id}
            with pytest.raises(ConnectionClosed) as closed:
                await client.recv()
            assert closed.value.reason.code == 1001
            await wait_process_gone(pid)
            assert (await http.get("/sessions")).json() == {"sessions": []}
            missing = await http.delete(f"/sessions/{client.id}")
            assert missing.status_code == 404
            assert missing.json()["code"] == "session_not_found"


async def test_http_auth_and_token_never_logged(daemon_factory) -> None:
    with trio.fail_after(30):
        async with daemon_factory(ARGUS_TOKEN=TOKEN) as daemon:
            async with daemon.http() as http:
                assert (await http.get("/healthz")).status_code == 200
                denied = await http.get("/sessions")
                assert denied.status_code == 401
                assert denied.json() == {"detail": "Unauthorized", "code": "unauthorized"}
                wrong = await http.get("/sessions", headers={"Authorization": "Bearer nope"})
                assert wrong.status_code == 401
                ok = await http.get("/sessions", headers={"Authorization": f"Bearer {TOKEN}"})
                assert ok.status_code == 200
                assert (await http.get(f"/sessions?token={TOKEN}")).status_code == 200
            with pytest.raises(ConnectionClosed) as closed:
                async with connect(daemon) as client:
                    await client.recv()
            assert (closed.value.reason.code, closed.value.reason.reason) == (1008, "Unauthorized")
            async with connect(daemon, token=TOKEN) as client:
                await client.handshake()
            headers = [("Authorization", f"Bearer {TOKEN}")]
            async with connect(daemon, headers=headers) as client:
                await client.handshake()
        assert TOKEN not in daemon.log_text


async def test_unknown_session_is_refused(daemon) -> None:
    with trio.fail_after(30):
        for session in ("000000000000", "../etc"):
            async with open_websocket_url(ws_url(daemon, session=session)) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
            assert (closed.value.reason.code, closed.value.reason.reason) == (
                1008,
                "Unknown session",
            )


async def test_origin_check(daemon_factory) -> None:
    with trio.fail_after(30):
        async with daemon_factory(ARGUS_ALLOWED_ORIGINS="https://console.example") as daemon:
            with pytest.raises(ConnectionRejected) as rejected:
                async with connect(daemon, headers=[("Origin", "https://evil.example")]):
                    pass
            assert rejected.value.status_code == 403
            for origin in ("http://127.0.0.1:3000", "http://localhost", "https://console.example"):
                async with connect(daemon, headers=[("Origin", origin)]) as client:
                    assert client.session["created"]


async def test_malformed_frames_answered_not_forwarded(daemon) -> None:
    with trio.fail_after(30):
        async with connect(daemon) as a:
            await a.handshake()
            async with connect(daemon, session=a.id) as b:
                await b.handshake()
                await a.ws.send_message("{not json")
                err = await a.recv()
                assert err == {"id": None, "error": err["error"]}
                assert err["error"]["code"] == -32700
                for frame in ("[1, 2]", "42", '"text"'):
                    await a.ws.send_message(frame)
                    assert (await a.recv())["error"]["code"] == -32600
                await a.ws.send_message(b'{"id": 1, "method": "thread/list", "params": {}}')
                assert (await a.recv())["error"]["code"] == -32600
                await a.send({"id": 5, "method": 7})
                bad_method = await a.recv()
                assert bad_method["id"] == 5 and bad_method["error"]["code"] == -32600
                # Still open, and the runtime is untouched: a real request works.
                listed = await a.request("thread/list", {})
                assert "data" in listed["result"]
                # The other client saw none of it.
                await b.request("thread/list", {})
                assert not [m for m in b.seen if "error" in m]


async def test_unknown_gateway_method(daemon) -> None:
    with trio.fail_after(30):
        async with connect(daemon) as client:
            response = await client.request("argus/nope", {})
            assert response["error"]["code"] == -32601


async def test_request_ids_of_any_type_are_restored(daemon) -> None:
    with trio.fail_after(30):
        async with connect(daemon) as a, connect(daemon, session=a.id) as b:
            await a.handshake()
            await b.handshake()
            for req_id in ("a0", 7, None, 2.5, 10**30, "1000000001"):
                response = await a.request("thread/list", {}, req_id=req_id)
                assert response["id"] == req_id and "result" in response
            # Same id from two clients at once: each gets its own answer, and only its own.
            await a.send({"id": 1, "method": "thread/list", "params": {}})
            await b.send({"id": 1, "method": "thread/start", "params": {}})
            got_a = await a.recv_until(lambda m: m.get("id") == 1)
            got_b = await b.recv_until(lambda m: m.get("id") == 1)
            assert "data" in got_a["result"] and "thread" in got_b["result"]
            await a.request("thread/list", {})  # flush: a must not see b's response
            assert [m for m in a.seen if m.get("id") == 1] == [got_a]


async def test_binary_and_text_frames_keep_connection(daemon) -> None:
    with trio.fail_after(30):
        async with connect(daemon) as client:
            payload = json.dumps({"id": "x", "method": "initialize", "params": {}})
            await client.ws.send_message(payload.encode())
            assert (await client.recv())["error"]["code"] == -32600
            await client.ws.send_message(payload)
            assert (await client.recv())["id"] == "x"


async def test_session_limit_refuses_with_1013(daemon_factory) -> None:
    with trio.fail_after(30):
        async with daemon_factory(ARGUS_MAX_SESSIONS="1") as daemon, connect(daemon) as first:
            async with open_websocket_url(ws_url(daemon)) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
            assert closed.value.reason.code == 1013
            assert "session limit" in closed.value.reason.reason
            # Attaching to the existing session is still fine.
            async with connect(daemon, session=first.id) as again:
                assert again.session["attached"] is True


async def test_coalescing_can_be_turned_off_for_everyone(daemon_factory) -> None:
    with trio.fail_after(60):
        async with daemon_factory(ARGUS_COALESCE_DELTAS="0") as daemon, connect(daemon) as client:
            await client.handshake()
            thread = await client.start_thread()
            await client.start_turn(thread, "/stream 5000")
            await client.recv_until(lambda m: m.get("method") == "turn/completed", timeout=30)
            deltas = [m for m in client.seen if m.get("method") == "item/agentMessage/delta"]
            assert len(deltas) == 5000

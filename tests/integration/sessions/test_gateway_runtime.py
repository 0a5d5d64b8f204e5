"""What the runtime does on its own: crash, noise, stderr, over-long lines, restart."""

from __future__ import annotations

import os
import signal

import pytest
import trio
from trio_websocket import ConnectionClosed

from tests.harness import connect


def is_turn_completed(m: dict) -> bool:
    return m.get("method") == "turn/completed"


async def session_entry(daemon, session_id: str) -> dict:
    async with daemon.http() as http:
        sessions = (await http.get("/sessions")).json()["sessions"]
    return next(s for s in sessions if s["sessionId"] == session_id)


async def test_runtime_crash_reaches_clients_and_next_attach_restarts(daemon) -> None:
    with trio.fail_after(30):
        async with connect(daemon) as a, connect(daemon, session=a.id) as b:
            await a.handshake()
            await b.handshake()
            pid = (await session_entry(daemon, a.id))["pid"]
            thread = await a.start_thread()
            await a.send(
                {
                    "id": "crash",
                    "method": "turn/start",
                    "params": {
                        "threadId": thread,
                        "input": [{"type": "text", "text": "/crash 3", "text_elements": []}],
                    },
                }
            )
            for client in (a, b):
                exited = await client.recv_until(
                    lambda m: m.get("method") == "argus/runtime/exited"
                )
                assert exited["params"]["code"] == 3
                assert "crashing on request" in exited["params"]["stderrTail"]
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await client.recv()
                assert closed.value.reason.code == 1011
        entry = await session_entry(daemon, a.id)
        assert entry["state"] == "stopped"
        async with connect(daemon, session=a.id) as again:
            await again.handshake()  # really reaches the new process
            thread = await again.start_thread()
            await again.start_turn(thread, "back")
            await again.recv_until(is_turn_completed)
            restarted = await session_entry(daemon, a.id)
            assert restarted["state"] == "running" and restarted["pid"] != pid


async def test_killed_runtime_reports_signal(daemon) -> None:
    with trio.fail_after(30):
        async with connect(daemon) as client:
            await client.handshake()
            pid = (await session_entry(daemon, client.id))["pid"]
            os.killpg(pid, signal.SIGKILL)
            exited = await client.recv_until(lambda m: m.get("method") == "argus/runtime/exited")
            assert exited["params"]["signal"] == signal.SIGKILL
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await client.recv()
            assert closed.value.reason.code == 1011


async def test_stderr_and_noise_never_enter_the_stream(daemon) -> None:
    with trio.fail_after(30):
        async with connect(daemon) as client:
            await client.handshake()
            thread = await client.start_thread()
            for text in ("/stderr 50", "/noise"):
                await client.start_turn(thread, text)
                await client.recv_until(is_turn_completed)
            raw = [m for m in client.seen if "stderr line" in str(m) or "not json" in str(m)]
            assert not [m for m in raw if m.get("method") != "item/completed"]
        assert "dropping non-JSON runtime output" in daemon.log_text


async def test_overlong_line_is_dropped_with_warning(daemon_factory) -> None:
    with trio.fail_after(30):
        async with daemon_factory(ARGUS_JSONL_LINE_LIMIT_BYTES="100000") as daemon:
            async with connect(daemon) as client:
                await client.handshake()
                thread = await client.start_thread()
                await client.start_turn(thread, "/big 300000")
                warning = await client.recv_until(lambda m: m.get("method") == "argus/warning")
                assert warning["params"]["code"] == "line_too_long"
                assert warning["params"]["bytes"] > 100000
                await client.recv_until(is_turn_completed)
                assert not [m for m in client.seen if m.get("method") == "demo/big"]
                await client.start_turn(thread, "still alive")
                await client.recv_until(is_turn_completed)

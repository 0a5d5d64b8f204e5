"""A local session under the detached bridge survives ``kill -9`` of the gateway.

The turn keeps running while no gateway exists; the restarted gateway adopts the bridge,
and a client resuming with ``since`` gets the rest of the turn with no gap and no
duplicate, with the same sequence numbers as before.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import trio

from tests.harness import connect, run_daemon, wait_process_gone


def deltas(messages: list[dict]) -> list[str]:
    return [m["params"]["delta"] for m in messages if m.get("method") == "item/agentMessage/delta"]


async def test_kill_9_mid_turn_then_resume_with_since(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with trio.fail_after(90):
        # Nested: leaving run_daemon cleans up the home's bridges, which must live on here.
        async with run_daemon(home) as first:
            async with connect(first, seq=1) as client:
                await client.handshake()
                thread_id = await client.start_thread()
                session_id = client.id
                async with connect(first, session=session_id, seq=1) as second:
                    assert second.session["attached"] is True
                await client.start_turn(thread_id, "/slow 40 100")
                while len(deltas(client.seen)) < 5:
                    await client.recv()
                before = [m for m in client.seen if "argusSeq" in m]
                last_seq = before[-1]["argusSeq"]
                async with first.http() as http:
                    runtime_pid = (await http.get("/sessions")).json()["sessions"][0]["pid"]
                first.process.send_signal(signal.SIGKILL)
                await first.process.wait()
            os.kill(runtime_pid, 0)  # the runtime (and its turn) outlived the gateway
            await trio.sleep(1.0)  # the turn produces output while nobody is there
            async with run_daemon(home) as second_daemon:
                async with connect(
                    second_daemon, session=session_id, since=last_seq, coalesce=0
                ) as back:
                    await back.recv_until(lambda m: m.get("method") == "turn/completed", timeout=30)
                    after = [m for m in back.seen if "argusSeq" in m]
    seqs = [m["argusSeq"] for m in before + after]
    assert seqs == sorted(set(seqs)), "a duplicate or a reordering across the restart"
    assert after[0]["argusSeq"] == last_seq + 1, "a gap across the restart"
    assert deltas(before + after) == [f"{i:08d}" for i in range(40)]


async def test_delete_stops_the_bridge_and_its_runtime(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with run_daemon(tmp_path / "home") as daemon:
            async with connect(daemon) as client:
                await client.handshake()
            async with daemon.http() as http:
                pid = (await http.get("/sessions")).json()["sessions"][0]["pid"]
                assert (await http.delete(f"/sessions/{client.id}")).status_code == 200
            await wait_process_gone(pid)


async def test_runtime_exit_under_the_bridge_reaches_clients(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with run_daemon(tmp_path / "home") as daemon:
            async with connect(daemon) as client:
                await client.handshake()
                thread_id = await client.start_thread()
                await client.start_turn(thread_id, "/crash 7")
                exited = await client.recv_until(
                    lambda m: m.get("method") == "argus/runtime/exited", timeout=20
                )
                assert exited["params"]["code"] == 7
                assert "crashing on request" in exited["params"]["stderrTail"]


async def test_runtime_exit_while_no_gateway_is_reported_by_the_next(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with trio.fail_after(60):
        async with run_daemon(home) as first:  # nested: leaving it cleans up the bridges
            async with connect(first) as client:
                await client.handshake()
                session_id = client.id
            async with first.http() as http:
                runtime_pid = (await http.get("/sessions")).json()["sessions"][0]["pid"]
            assert await first.stop() == 0
            bridge_file = home / "sessions" / session_id / "bridge.json"
            bridge_pid = json.loads(bridge_file.read_text())["pid"]
            os.killpg(runtime_pid, signal.SIGKILL)  # the runtime dies while no gateway is up
            await trio.sleep(0.5)
            async with run_daemon(home) as second:
                async with connect(second, session=session_id) as back:
                    exited = await back.recv_until(
                        lambda m: m.get("method") == "argus/runtime/exited", timeout=20
                    )
                assert exited["params"]["signal"] == 9
                # Acknowledged, the bridge goes; the next attach starts a fresh runtime.
                await wait_process_gone(bridge_pid)
                async with connect(second, session=session_id) as again:
                    assert (await again.handshake())["platformFamily"] == "unix"

"""``argus.client`` against the real daemon (demo runtime): what a library user notices.

A turn's final text and status come back from ``run_turn``; a gateway killed in the middle
of a turn costs nothing (the library reconnects with ``since``: the text is whole and every
message arrives once, in order); approvals reach the callback once and its answer counts;
a wrong token or a deleted session ends the session with ``ConnectionLost``; TLS works with
a self-signed certificate the caller trusts.
"""

from __future__ import annotations

import signal
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from argus.client import ConnectionLost, RpcError, open_session
from argus.testing import run_daemon
from tests.nodes_helpers import free_port
from tests.tls_cert import make_self_signed

SLOW = [f"{i:08d}" for i in range(40)]


async def test_run_turn_on_the_default_session(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with run_daemon(tmp_path / "home") as daemon:
            async with open_session(daemon.base_url, session="default") as session:
                assert session.id == "default"
                assert session.server_info is not None
                thread = await session.start_thread()
                streamed: list[str] = []
                result = await session.run_turn(thread, "hello there", on_delta=streamed.append)
            assert result.ok and result.status == "completed"
            assert result.text == "echo: hello there"
            assert "".join(streamed) == "echo: hello there"
            async with httpx.AsyncClient(base_url=daemon.base_url) as http:
                sessions = (await http.get("/sessions")).json()["sessions"]
            assert [s["sessionId"] for s in sessions if s["default"]] == ["default"]


async def test_gateway_killed_mid_run_turn_loses_no_text(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    seqs: list[int] = []

    async def watch(session: Any, ready: trio.Event) -> None:
        async with session.notifications() as stream:
            ready.set()
            async for message in stream:
                if "argusSeq" in message:
                    seqs.append(message["argusSeq"])

    with trio.fail_after(90):
        async with run_daemon(home, "--port", str(port)) as first:
            async with open_session(first.base_url, session="default") as session:
                thread = await session.start_thread()
                streamed: list[str] = []

                async def kill_after_first_deltas() -> None:
                    while len(streamed) < 5:
                        await trio.sleep(0.01)
                    first.process.send_signal(signal.SIGKILL)
                    await first.process.wait()
                    await trio.sleep(0.5)  # the turn keeps streaming into the bridge
                    async with run_daemon(home, "--port", str(port)):
                        await done.wait()

                done = trio.Event()
                async with trio.open_nursery() as nursery:
                    ready = trio.Event()
                    nursery.start_soon(watch, session, ready)
                    await ready.wait()
                    nursery.start_soon(kill_after_first_deltas)
                    result = await session.run_turn(thread, "/slow 40 50", on_delta=streamed.append)
                    assert session.reconnects >= 1
                    # The next turn works on the restarted gateway too.
                    again = await session.run_turn(thread, "after the restart")
                    done.set()
                    nursery.cancel_scope.cancel()
    assert result.status == "completed"
    assert result.text == "".join(SLOW)
    # Every delta once, in order, across the disconnect (what was missed may come coalesced).
    assert "".join(streamed) == "".join(SLOW)
    assert streamed[:5] == SLOW[:5]
    assert again.text == "echo: after the restart"
    assert seqs == sorted(set(seqs))  # strictly increasing: nothing twice, nothing reordered


async def test_approval_callback_answers_once(tmp_path: Path) -> None:
    asked: list[tuple[str, dict[str, Any]]] = []

    async def approve(method: str, params: dict[str, Any]) -> dict[str, Any]:
        asked.append((method, params))
        return {"decision": "accept"}

    with trio.fail_after(60):
        async with run_daemon(tmp_path / "home") as daemon:
            async with open_session(daemon.base_url, on_approval=approve) as session:
                thread = await session.start_thread()
                result = await session.run_turn(thread, "/approve touch x")
    assert result.text == "approved"
    assert [m for m, _ in asked] == ["item/commandExecution/requestApproval"]
    assert asked[0][1]["command"] == "touch x"


async def test_refusals_are_clear(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with run_daemon(tmp_path / "home", env={"ARGUS_TOKEN": "sekrit"}) as daemon:
            with pytest.raises(ConnectionLost) as refused:
                async with open_session(daemon.base_url, token="wrong"):
                    pass
            assert refused.value.code == 1008
            async with open_session(daemon.base_url, token="sekrit") as session:
                with pytest.raises(RpcError) as bad:
                    await session.request("argus/no/such/method", {})
                assert bad.value.code == -32601
                headers = {"Authorization": "Bearer sekrit"}
                async with httpx.AsyncClient(base_url=daemon.base_url, headers=headers) as http:
                    assert (await http.delete(f"/sessions/{session.id}")).status_code == 200
                with trio.fail_after(10):
                    while session.error is None:
                        await trio.sleep(0.05)
                with pytest.raises(ConnectionLost):
                    await session.request("thread/list", {})


async def test_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = make_self_signed(tmp_path / "tls")
    args = ("--certfile", str(cert), "--keyfile", str(key))
    with trio.fail_after(60):
        async with run_daemon(tmp_path / "home", *args) as daemon:
            assert daemon.base_url.startswith("https://127.0.0.1:")
            async with open_session(daemon.base_url, cafile=str(cert)) as session:
                thread = await session.start_thread()
                result = await session.run_turn(thread, "over wss")
            assert result.text == "echo: over wss"
            # Without trusting the certificate the connection is refused.
            with pytest.raises(ConnectionLost):
                async with open_session(daemon.base_url):
                    pass
            # The runtime's node-host reached the gateway on the loopback link meanwhile.
            trust = ssl.create_default_context(cafile=str(cert))
            async with httpx.AsyncClient(base_url=daemon.base_url, verify=trust) as http:
                with trio.fail_after(20):
                    while True:
                        nodes = (await http.get("/nodes")).json()["nodes"]
                        if any(n["nodeId"] == f"runtime:{session.id}" for n in nodes):
                            break
                        await trio.sleep(0.1)

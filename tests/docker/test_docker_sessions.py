"""Docker sessions end to end: real engine, real runtime image, real gateway process."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed

from tests.harness import connect, run_daemon

pytestmark = pytest.mark.docker


def docker_env(image: str, gateway_id: str, **extra: str) -> dict[str, str]:
    env = {
        "ARGUS_PROVISION_MODE": "docker",
        "ARGUS_RUNTIME_IMAGE": image,
        "ARGUS_RUNTIME_CMD": "argus demo-runtime",
        "ARGUS_CONTAINER_PREFIX": f"argus-{gateway_id}",
        "ARGUS_GATEWAY_ID": gateway_id,
        "ARGUS_CONNECT_TIMEOUT_S": "60",
    }
    env.update(extra)
    return env


def deltas(messages: list[dict]) -> list[str]:
    return [m["params"]["delta"] for m in messages if m.get("method") == "item/agentMessage/delta"]


async def containers(client: Any, gateway_id: str) -> list[Any]:
    label = f"io.argus.gateway={gateway_id}"
    return await trio.to_thread.run_sync(
        lambda: client.containers.list(all=True, filters={"label": label})
    )


async def test_a_turn_survives_kill_9_of_the_gateway(
    tmp_path: Path, docker_client: Any, runtime_image: str, gateway_id: str
) -> None:
    home = tmp_path / "home"
    env = docker_env(runtime_image, gateway_id)
    with trio.fail_after(180):
        async with run_daemon(home, env=env) as first:
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
                    first.process.send_signal(signal.SIGKILL)
                    await first.process.wait()
            [container] = await containers(docker_client, gateway_id)
            assert container.name == f"argus-{gateway_id}-{session_id}"
            assert container.labels["io.argus.session_id"] == session_id
            assert "ARGUS_TOKEN" not in str(container.attrs["Config"]["Env"])
            await trio.sleep(1.0)
            async with run_daemon(home, env=env) as second_daemon:
                async with connect(
                    second_daemon, session=session_id, since=last_seq, coalesce=0
                ) as back:
                    await back.recv_until(lambda m: m.get("method") == "turn/completed", timeout=60)
                    after = [m for m in back.seen if "argusSeq" in m]
                async with second_daemon.http() as http:
                    assert (await http.delete(f"/sessions/{session_id}")).status_code == 200
                assert await containers(docker_client, gateway_id) == []
                assert (home / "sessions" / session_id).is_dir()  # kept without ?purge=1
    seqs = [m["argusSeq"] for m in before + after]
    assert seqs == sorted(set(seqs)) and after[0]["argusSeq"] == last_seq + 1
    assert deltas(before + after) == [f"{i:08d}" for i in range(40)]


async def test_idle_reaper_stops_and_attach_restarts_single_flight(
    tmp_path: Path, docker_client: Any, runtime_image: str, gateway_id: str
) -> None:
    env = docker_env(runtime_image, gateway_id, ARGUS_SESSION_IDLE_S="2")
    with trio.fail_after(180):
        async with run_daemon(tmp_path / "home", env=env) as daemon:
            async with connect(daemon) as client:
                await client.handshake()
                session_id = client.id
            with trio.fail_after(60):
                while True:
                    [container] = await containers(docker_client, gateway_id)
                    if container.status == "exited":
                        break  # stopped, not removed
                    await trio.sleep(0.5)
            clients: list[Any] = []

            async def attach() -> None:
                async with connect(daemon, session=session_id) as c:
                    clients.append(c.session)
                    await c.handshake()

            async with trio.open_nursery() as nursery:
                for _ in range(5):
                    nursery.start_soon(attach)
            assert len(clients) == 5
            [container] = await containers(docker_client, gateway_id)
            assert container.status == "running"
            logs = await trio.to_thread.run_sync(container.logs)
            assert logs.decode().count("runtime started") == 2  # first start + one restart


async def test_quota_and_engine_errors(
    tmp_path: Path, docker_client: Any, runtime_image: str, gateway_id: str
) -> None:
    env = docker_env(runtime_image, gateway_id, ARGUS_MAX_SESSIONS="1")
    with trio.fail_after(120):
        async with run_daemon(tmp_path / "home", env=env) as daemon:
            async with connect(daemon) as first:
                await first.handshake()
                with pytest.raises(ConnectionClosed) as refused:
                    async with connect(daemon):
                        pass
                assert refused.value.reason.code == 1013
                assert "session limit" in refused.value.reason.reason
        missing = docker_env("argus-runtime:does-not-exist", gateway_id)
        async with run_daemon(tmp_path / "home2", env=missing) as daemon:
            with pytest.raises(ConnectionClosed) as failed:
                async with connect(daemon):
                    pass
            assert failed.value.reason.code == 1011
            assert "image not found" in failed.value.reason.reason


async def test_orphans_are_collected_and_the_index_is_never_pruned(
    tmp_path: Path, docker_client: Any, runtime_image: str, gateway_id: str
) -> None:
    def run_labelled(session_id: str, gateway: str) -> Any:
        return docker_client.containers.run(
            runtime_image,
            entrypoint=["sleep", "300"],
            detach=True,
            name=f"argus-{gateway}-{session_id}",
            labels={"io.argus.session_id": session_id, "io.argus.gateway": gateway},
        )

    home = tmp_path / "home"
    env = docker_env(runtime_image, gateway_id)
    with trio.fail_after(120):
        async with run_daemon(home, env=env) as daemon:
            async with connect(daemon) as client:
                await client.handshake()
                known = client.id
        # The engine loses every container (say, a new Docker host): nothing is pruned.
        for container in await containers(docker_client, gateway_id):
            await trio.to_thread.run_sync(lambda c=container: c.remove(force=True))
        orphan = await trio.to_thread.run_sync(run_labelled, "orphan1", gateway_id)
        stranger = await trio.to_thread.run_sync(run_labelled, "other1", f"{gateway_id}x")
        try:
            async with run_daemon(home, env=env) as daemon:
                async with daemon.http() as http:
                    sessions = (await http.get("/sessions")).json()["sessions"]
                assert [s["sessionId"] for s in sessions] == [known]
                with trio.fail_after(20):  # collected right after start-up
                    while orphan.name in [
                        c.name for c in await containers(docker_client, gateway_id)
                    ]:
                        await trio.sleep(0.2)
                assert any(
                    "removing 1 orphan container" in line and orphan.name in line
                    for line in daemon.log_lines
                )
                stranger.reload()  # another gateway's container is left alone
                assert stranger.status == "running"
        finally:
            await trio.to_thread.run_sync(lambda: stranger.remove(force=True))

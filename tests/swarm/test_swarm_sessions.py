"""Swarm sessions end to end: a real swarm manager, the real runtime image, real gateways."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed

from tests.harness import connect, run_daemon
from tests.swarm.conftest import swarm_env

pytestmark = pytest.mark.docker


def deltas(messages: list[dict]) -> list[str]:
    return [m["params"]["delta"] for m in messages if m.get("method") == "item/agentMessage/delta"]


async def engine(fn: Any, *args: Any) -> Any:
    return await trio.to_thread.run_sync(fn, *args)


def services(client: Any, gateway_id: str) -> list[Any]:
    return client.services.list(filters={"label": f"io.argus.gateway={gateway_id}"})


def leftovers(client: Any, gateway_id: str) -> dict[str, list[str]]:
    """Everything labelled with this gateway id, by kind (empty lists: nothing left)."""
    label = {"label": f"io.argus.gateway={gateway_id}"}
    return {
        "services": [s.name for s in client.services.list(filters=label)],
        "containers": [c.name for c in client.containers.list(all=True, filters=label)],
        "volumes": [v.name for v in client.volumes.list(filters=label)],
        "secrets": [s.name for s in client.secrets.list(filters=label)],
    }


def tasks(service: Any) -> list[dict[str, Any]]:
    return sorted(service.tasks(), key=lambda t: t["CreatedAt"])


def inspect_text(*args: str) -> str:
    """What an operator sees with the docker CLI."""
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


async def test_service_per_session_attach_stream_secret_and_delete_cleanup(
    tmp_path: Path, docker_client: Any, runtime_image: str, gateway_id: str, swarm_node: str
) -> None:
    env = swarm_env(
        runtime_image,
        gateway_id,
        ARGUS_RUNTIME_CPUS="0.5",
        ARGUS_RUNTIME_MEMORY="256m",
        ARGUS_RUNTIME_PIDS_LIMIT="256",
        ARGUS_SWARM_CONSTRAINTS="node.role==manager",
    )
    with trio.fail_after(180):
        async with run_daemon(tmp_path / "home", env=env) as daemon:
            async with connect(daemon) as client:
                await client.handshake()
                session_id = client.id
                [service] = await engine(services, docker_client, gateway_id)
                spec = service.attrs["Spec"]
                template = spec["TaskTemplate"]
                assert service.name == f"argus-{gateway_id}-{session_id}"
                assert spec["Labels"]["io.argus.session_id"] == session_id
                assert spec["Labels"]["io.argus.gateway"] == gateway_id
                assert spec["Mode"]["Replicated"]["Replicas"] == 1
                assert template["RestartPolicy"]["Condition"] == "none"
                assert template["Resources"]["Limits"] == {
                    "NanoCPUs": 500_000_000,
                    "MemoryBytes": 256 << 20,
                    "Pids": 256,
                }
                assert template["Resources"]["Reservations"] == {
                    "NanoCPUs": 500_000_000,
                    "MemoryBytes": 256 << 20,
                }
                assert template["Placement"]["Constraints"] == ["node.role==manager"]
                [task] = await engine(tasks, service)
                assert task["NodeID"] == swarm_node

                # The token is a secret file of mode 0400 for the runtime user; nothing an
                # operator can inspect shows it.
                token = (await daemon_session_token(daemon, session_id)).strip()
                container_id = task["Status"]["ContainerStatus"]["ContainerID"]
                shown = inspect_text("service", "inspect", service.name)
                shown += inspect_text("inspect", container_id)
                assert token not in shown
                assert "ARGUS_SESSION_TOKEN" not in shown
                container = await engine(docker_client.containers.get, container_id)
                stat = await engine(
                    container.exec_run, ["stat", "-c", "%a %u", "/run/secrets/argus-session-token"]
                )
                assert stat.output.decode().split() == ["400", "10001"]

                async with connect(daemon, session=session_id) as second:
                    assert second.session["attached"] is True
                    thread_id = await client.start_thread()
                    await client.start_turn(thread_id, "/slow 12 20")
                    await second.recv_until(lambda m: m.get("method") == "turn/completed", 30)
                    await client.recv_until(lambda m: m.get("method") == "turn/completed", 30)
                # (A client that lags gets consecutive deltas joined: compare the text.)
                expected = "".join(f"{i:08d}" for i in range(12))
                assert "".join(deltas(client.seen)) == expected
                assert "".join(deltas(second.seen)) == expected
                async with daemon.http() as http:
                    [entry] = (await http.get("/sessions")).json()["sessions"]
                    assert entry["mode"] == "swarm"
                    assert entry["taskId"] == task["ID"] and entry["nodeId"] == swarm_node
                    deleted = await http.delete(f"/sessions/{session_id}")
                    assert deleted.status_code == 200
            # DELETE returns once the tasks are gone and the volumes and secret removed.
            assert await engine(leftovers, docker_client, gateway_id) == {
                "services": [],
                "containers": [],
                "volumes": [],
                "secrets": [],
            }


async def daemon_session_token(daemon: Any, session_id: str) -> str:
    """The session's derived token, as the gateway computes it (from its secret file)."""
    from argus.auth import derive_session_token, load_or_create_secret

    secret = await trio.to_thread.run_sync(load_or_create_secret, daemon.home)
    return derive_session_token(secret, session_id)


async def test_a_turn_survives_kill_9_of_the_gateway(
    tmp_path: Path, docker_client: Any, runtime_image: str, gateway_id: str, swarm_node: str
) -> None:
    home = tmp_path / "home"
    env = swarm_env(runtime_image, gateway_id)
    with trio.fail_after(180):
        async with run_daemon(home, env=env) as first:
            async with connect(first, seq=1) as client:
                await client.handshake()
                thread_id = await client.start_thread()
                session_id = client.id
                await client.start_turn(thread_id, "/slow 40 100")
                while len(deltas(client.seen)) < 5:
                    await client.recv()
                before = [m for m in client.seen if "argusSeq" in m]
                last_seq = before[-1]["argusSeq"]
                first.process.send_signal(signal.SIGKILL)
                await first.process.wait()
        [service] = await engine(services, docker_client, gateway_id)
        [task] = await engine(tasks, service)
        await trio.sleep(1.0)  # the turn goes on without a gateway
        async with run_daemon(home, env=env) as second_daemon:
            async with connect(
                second_daemon, session=session_id, since=last_seq, coalesce=0
            ) as back:
                await back.recv_until(lambda m: m.get("method") == "turn/completed", timeout=60)
                after = [m for m in back.seen if "argusSeq" in m]
            [service] = await engine(services, docker_client, gateway_id)
            assert [t["ID"] for t in await engine(tasks, service)] == [task["ID"]]  # re-adopted
            assert "runtime re-adopted session=" + session_id in second_daemon.log_text
    seqs = [m["argusSeq"] for m in before + after]
    assert seqs == sorted(set(seqs)) and after[0]["argusSeq"] == last_seq + 1
    assert "".join(deltas(before + after)) == "".join(f"{i:08d}" for i in range(40))


async def test_idle_reaper_ends_the_task_and_attach_starts_a_new_one_on_the_same_node(
    tmp_path: Path, docker_client: Any, runtime_image: str, gateway_id: str, swarm_node: str
) -> None:
    env = swarm_env(runtime_image, gateway_id, ARGUS_SESSION_IDLE_S="2")
    with trio.fail_after(180):
        async with run_daemon(tmp_path / "home", env=env) as daemon:
            async with connect(daemon) as client:
                await client.handshake()
                session_id = client.id
            [service] = await engine(services, docker_client, gateway_id)
            with trio.fail_after(60):
                while True:
                    [first] = await engine(tasks, service)
                    if first["Status"]["State"] == "complete":
                        break  # the bridge stopped the runtime and exited; no restart
                    await trio.sleep(0.5)
            async with daemon.http() as http:
                [entry] = (await http.get("/sessions")).json()["sessions"]
                assert entry["state"] == "stopped"
            clients: list[Any] = []

            async def attach() -> None:
                async with connect(daemon, session=session_id, since=0) as c:
                    await c.handshake()
                    clients.append(c)

            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(attach)
            assert len(clients) == 3  # one restart shared by every attach
            await engine(service.reload)
            old, new = await engine(tasks, service)
            assert old["ID"] == first["ID"] and new["Status"]["State"] == "running"
            constraints = service.attrs["Spec"]["TaskTemplate"]["Placement"]["Constraints"]
            assert constraints == [f"node.id=={swarm_node}"]  # pinned: its volumes are there
            async with connect(daemon, session=session_id, since=0) as watcher:
                note = await watcher.recv_until(
                    lambda m: m.get("method") == "argus/runtime/restarted"
                )
            assert note["params"] == {"taskId": new["ID"], "previousTaskId": first["ID"]}


async def test_quota_and_engine_errors_close_with_a_reason(
    tmp_path: Path, docker_client: Any, runtime_image: str, gateway_id: str, swarm_node: str
) -> None:
    env = swarm_env(runtime_image, gateway_id, ARGUS_MAX_SESSIONS="1")
    with trio.fail_after(120):
        async with run_daemon(tmp_path / "home", env=env) as daemon:
            async with connect(daemon) as first:
                await first.handshake()
                with pytest.raises(ConnectionClosed) as refused:
                    async with connect(daemon):
                        pass
                assert refused.value.reason.code == 1013
                assert "session limit" in refused.value.reason.reason
                assert len(await engine(services, docker_client, gateway_id)) == 1
        # More memory reserved than any node has: the scheduler refuses, and says why.
        greedy = swarm_env(
            runtime_image, gateway_id, ARGUS_RUNTIME_MEMORY="100000g", ARGUS_CONNECT_TIMEOUT_S="4"
        )
        async with run_daemon(tmp_path / "home2", env=greedy) as daemon:
            with pytest.raises(ConnectionClosed) as failed:
                async with connect(daemon):
                    pass
            assert failed.value.reason.code == 1011
            assert "insufficient resources" in failed.value.reason.reason
            async with daemon.http() as http:
                assert (await http.get("/sessions")).json()["sessions"] == []
            # The refused session's service was created, then removed with its secret.
            # (The first gateway's service went too: this store does not know its session.)
            assert "service created" in daemon.log_text
            assert await engine(leftovers, docker_client, gateway_id) == {
                "services": [],
                "containers": [],
                "volumes": [],
                "secrets": [],
            }


async def test_orphans_are_collected_and_other_gateways_left_alone(
    tmp_path: Path, docker_client: Any, runtime_image: str, gateway_id: str, swarm_node: str
) -> None:
    def sleeper(session_id: str, gateway: str) -> Any:
        labels = {"io.argus.session_id": session_id, "io.argus.gateway": gateway}
        return docker_client.services.create(
            runtime_image,
            command=["sleep", "300"],
            name=f"argus-{gateway}-{session_id}",
            labels=labels,
            container_labels=labels,
        )

    home = tmp_path / "home"
    env = swarm_env(runtime_image, gateway_id)
    stranger_gateway = f"{gateway_id}x"
    with trio.fail_after(150):
        async with run_daemon(home, env=env) as daemon:
            async with connect(daemon) as client:
                await client.handshake()
                known = client.id
        orphan = await engine(sleeper, "orphan1", gateway_id)
        lost_secret = await engine(
            lambda: docker_client.secrets.create(
                name=f"argus-{gateway_id}-lost1-token",
                data=b"x",
                labels={"io.argus.session_id": "lost1", "io.argus.gateway": gateway_id},
            )
        )
        stranger = await engine(sleeper, "other1", stranger_gateway)
        try:
            async with run_daemon(home, env=env) as daemon:
                with trio.fail_after(60):  # collected right after start-up
                    while "orphan" not in daemon.log_text or "unknown session=lost1" not in (
                        daemon.log_text
                    ):
                        await trio.sleep(0.2)
                    while orphan.name in [
                        s.name for s in await engine(services, docker_client, gateway_id)
                    ]:
                        await trio.sleep(0.2)
                assert any(
                    "removing 1 orphan service" in line and orphan.name in line
                    for line in daemon.log_lines
                )
                left = await engine(leftovers, docker_client, gateway_id)
                assert left["services"] == [f"argus-{gateway_id}-{known}"]
                assert lost_secret.name not in left["secrets"]
                # The known session's service was re-adopted, not collected.
                async with connect(daemon, session=known) as back:
                    await back.handshake()
                strangers = await engine(services, docker_client, stranger_gateway)
                assert [s.id for s in strangers] == [stranger.id]  # not ours: left alone
        finally:
            from argus.testing import remove_labelled

            await engine(remove_labelled, docker_client, stranger_gateway)


async def test_an_engine_that_cannot_be_reached_is_a_close_reason(tmp_path: Path) -> None:
    """No engine at all (here: DOCKER_HOST names no socket): 1011 with the reason."""
    env = swarm_env("argus-runtime", "swnone", DOCKER_HOST=f"unix://{tmp_path / 'no-docker.sock'}")
    with trio.fail_after(60):
        async with run_daemon(tmp_path / "home", env=env) as daemon:
            with pytest.raises(ConnectionClosed) as failed:
                async with connect(daemon):
                    pass
            assert failed.value.reason.code == 1011
            assert "Docker engine unavailable" in failed.value.reason.reason
            assert "orphan collection skipped" in daemon.log_text

"""Runtime bridge and Docker benchmarks.

* ``bridge throughput``: a 50,000-delta ``/stream`` turn through the gateway to one client
  (``coalesce=0``), with the runtime under the detached bridge against the plain child
  process, and the ratio.
* ``create -> first response``: a new ``/ws`` session until the answer to ``initialize``
  (provisioning included), local (bridge) against docker, median of 5.
* ``gateway memory per docker session``: the daemon's RSS growth over 10 idle docker
  sessions, per session.

The docker rows need a Docker engine and build the runtime image like the tests do
(``argus.testing.build_runtime_image``); without an engine they are skipped with a line.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import trio

from argus.testing import ImageBuildError, build_runtime_image, run_daemon
from bench.argus_bench import SERVER_CPU, pin_client, read_turn, ready_client, rss_kib, ws_client

Row = dict[str, Any]


async def stream_rate(home: Path, detach: str, n: int) -> float:
    env = {
        "ARGUS_LOCAL_DETACH": detach,
        "ARGUS_RUNTIME_NODE": "0",
        "ARGUS_REPLAY_BUFFER_BYTES": str(128 << 20),
        "ARGUS_CLIENT_QUEUE_BYTES": str(64 << 20),
    }
    async with run_daemon(home, "--log-level", "warning", env=env, cpu=SERVER_CPU) as daemon:
        async with ws_client(daemon, "?coalesce=0") as client:
            thread = await ready_client(client)
            best = 0.0
            for _ in range(3):
                start = time.perf_counter()
                await client.send(
                    {
                        "id": "t",
                        "method": "turn/start",
                        "params": {
                            "threadId": thread,
                            "input": [
                                {"type": "text", "text": f"/stream {n}", "text_elements": []}
                            ],
                        },
                    }
                )
                frames, _ = await read_turn(client, n)
                best = max(best, frames / (time.perf_counter() - start))
    return best


async def first_response(daemon: Any) -> float:
    start = time.perf_counter()
    async with ws_client(daemon) as client:
        await client.request("initialize", {"clientInfo": {"name": "bench", "version": "1"}})
    return time.perf_counter() - start


async def bench_create(home: Path, env: dict[str, str], runs: int) -> float:
    async with run_daemon(home, "--log-level", "warning", env=env, cpu=SERVER_CPU) as daemon:
        samples = [await first_response(daemon) for _ in range(runs)]
    return statistics.median(samples)


async def bench_docker_memory(home: Path, env: dict[str, str], sessions: int) -> float:
    async with run_daemon(home, "--log-level", "warning", env=env, cpu=SERVER_CPU) as daemon:
        await first_response(daemon)  # warm up
        before = rss_kib(daemon.process.pid)
        for _ in range(sessions):
            await first_response(daemon)
        await trio.sleep(0.5)
        return (rss_kib(daemon.process.pid) - before) / sessions


def docker_env(image: str) -> dict[str, str]:
    gid = f"b{uuid.uuid4().hex[:8]}"
    return {
        "ARGUS_PROVISION_MODE": "docker",
        "ARGUS_RUNTIME_IMAGE": image,
        "ARGUS_RUNTIME_CMD": "argus demo-runtime",
        "ARGUS_GATEWAY_ID": gid,
        "ARGUS_CONTAINER_PREFIX": f"argus-{gid}",
        "ARGUS_CONNECT_TIMEOUT_S": "60",
    }


def remove_containers(gateway_id: str) -> None:
    import docker

    client = docker.from_env()
    for c in client.containers.list(all=True, filters={"label": f"io.argus.gateway={gateway_id}"}):
        c.remove(force=True)


async def run_all(quick: bool = False) -> list[Row]:
    """Every bridge/docker benchmark."""
    pin_client()
    n = 5000 if quick else 50_000
    runs = 3 if quick else 5
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="argus-bench-bridge-") as tmp:
        root = Path(tmp)
        with trio.fail_after(900):
            bridged = await stream_rate(root / "b", "1", n)
            direct = await stream_rate(root / "d", "0", n)
            rows += [
                {
                    "bench": "bridge",
                    "case": "stream via bridge",
                    "value": bridged,
                    "unit": "frames/s",
                },
                {
                    "bench": "bridge",
                    "case": "stream via child process",
                    "value": direct,
                    "unit": "frames/s",
                },
                {
                    "bench": "bridge",
                    "case": "bridge / child ratio",
                    "value": bridged / direct,
                    "unit": "x",
                },
            ]
            local = await bench_create(root / "l", {"ARGUS_RUNTIME_NODE": "0"}, runs)
            rows.append(
                {
                    "bench": "create",
                    "case": "local -> first response (median)",
                    "value": local * 1e3,
                    "unit": "ms",
                }
            )
            try:
                image = await trio.to_thread.run_sync(build_runtime_image)
            except (ImageBuildError, OSError) as exc:
                print(f"docker benchmarks skipped: {exc}")
                return rows
            env = docker_env(image)
            try:
                dock = await bench_create(root / "k", env, runs)
                rows.append(
                    {
                        "bench": "create",
                        "case": "docker -> first response (median)",
                        "value": dock * 1e3,
                        "unit": "ms",
                    }
                )
                rows.append(
                    {
                        "bench": "create",
                        "case": "docker / local ratio",
                        "value": dock / local,
                        "unit": "x",
                    }
                )
                per = await bench_docker_memory(root / "m", env, 3 if quick else 10)
                rows.append(
                    {
                        "bench": "memory",
                        "case": "gateway RSS per docker session",
                        "value": per,
                        "unit": "KiB",
                    }
                )
            finally:
                await trio.to_thread.run_sync(remove_containers, env["ARGUS_GATEWAY_ID"])
    return rows


def run(quick: bool = False) -> list[Row]:
    """Synchronous entry point."""
    return trio.run(run_all, quick)

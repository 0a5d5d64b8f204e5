"""Swarm benchmarks: what a session costs when the swarm places it.

* ``create -> first response``: a new ``/ws`` session until the answer to ``initialize``
  (the service, its secret and volumes created, the task scheduled and started, the bridge
  reached through its host-mode port), in swarm mode against docker and local, median of 5
  (2 with ``--quick``). Each mode gets its own gateway, run one after the other.
* ``gateway memory per swarm session``: the daemon's RSS growth over 8 (3) idle swarm
  sessions, per session.

The swarm rows need a Docker engine; it joins a single-manager swarm on 127.0.0.1 for the
run if it is not in one, and leaves it afterwards (``argus.testing.swarm_manager``). Every
service, volume and secret the run created is removed by its gateway label.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

import trio

from argus.testing import (
    ImageBuildError,
    SwarmUnavailable,
    build_runtime_image,
    remove_labelled,
    run_daemon,
    swarm_manager,
)
from bench.argus_bench import SERVER_CPU, pin_client, rss_kib
from bench.bridge_bench import bench_create, docker_env, first_response, remove_containers

Row = dict[str, Any]


def swarm_env(image: str) -> dict[str, str]:
    """A swarm-mode gateway with its own gateway id and name prefix."""
    gid = f"bs{uuid.uuid4().hex[:8]}"
    return {
        "ARGUS_PROVISION_MODE": "swarm",
        "ARGUS_RUNTIME_IMAGE": image,
        "ARGUS_RUNTIME_CMD": "argus demo-runtime",
        "ARGUS_GATEWAY_ID": gid,
        "ARGUS_CONTAINER_PREFIX": f"argus-{gid}",
        "ARGUS_CONNECT_TIMEOUT_S": "60",
    }


async def bench_memory(home: Path, env: dict[str, str], sessions: int) -> float:
    """RSS growth of the gateway per idle session (the runtimes live in the swarm)."""
    async with run_daemon(home, "--log-level", "warning", env=env, cpu=SERVER_CPU) as daemon:
        await first_response(daemon)  # warm up
        before = rss_kib(daemon.process.pid)
        for _ in range(sessions):
            await first_response(daemon)
        await trio.sleep(0.5)
        return (rss_kib(daemon.process.pid) - before) / sessions


def row(bench: str, case: str, value: float, unit: str) -> Row:
    """One line of the results table."""
    return {"bench": bench, "case": case, "value": value, "unit": unit}


async def run_all(quick: bool = False) -> list[Row]:
    """Every swarm benchmark, beside docker and local for comparison."""
    import docker

    pin_client()
    runs = 2 if quick else 5
    rows: list[Row] = []
    try:
        image = await trio.to_thread.run_sync(build_runtime_image)
        client = await trio.to_thread.run_sync(docker.from_env)
    except (ImageBuildError, OSError, docker.errors.DockerException) as exc:
        print(f"swarm benchmarks skipped: {exc}")
        return rows
    with tempfile.TemporaryDirectory(prefix="argus-bench-swarm-") as tmp:
        root = Path(tmp)
        try:
            with swarm_manager(client):
                with trio.fail_after(900):
                    local = await bench_create(root / "l", {"ARGUS_RUNTIME_NODE": "0"}, runs)
                    denv = docker_env(image)
                    try:
                        dock = await bench_create(root / "d", denv, runs)
                    finally:
                        await trio.to_thread.run_sync(remove_containers, denv["ARGUS_GATEWAY_ID"])
                    senv = swarm_env(image)
                    try:
                        swarm = await bench_create(root / "s", senv, runs)
                        per = await bench_memory(root / "m", senv, 3 if quick else 8)
                    finally:
                        await trio.to_thread.run_sync(
                            remove_labelled, client, senv["ARGUS_GATEWAY_ID"]
                        )
        except SwarmUnavailable as exc:
            print(f"swarm benchmarks skipped: {exc}")
            return rows
        finally:
            client.close()
    rows += [
        row("swarm", "local -> first response (median)", local * 1e3, "ms"),
        row("swarm", "docker -> first response (median)", dock * 1e3, "ms"),
        row("swarm", "swarm -> first response (median)", swarm * 1e3, "ms"),
        row("swarm", "swarm / docker ratio", swarm / dock, "x"),
        row("swarm", "gateway RSS per swarm session", per, "KiB"),
    ]
    return rows


def run(quick: bool = False) -> list[Row]:
    """Synchronous entry point."""
    return trio.run(run_all, quick)


if __name__ == "__main__":
    for r in run():
        print(f"{r['case']:<40} {r['value']:>10.1f} {r['unit']}")

"""Nodes end to end: a real ``argus node-host`` process, the real daemon, real sockets.

Covers what a user of a node sees: a device registers, commands run in the foreground and
in the background, logs and kill work on the job, an invoke that outlives its timeout fails
cleanly, the node comes back by itself after the daemon restarts, and every session has a
runtime node of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from tests import nodes_helpers as helpers
from tests.harness import connect, run_daemon
from tests.nodes_helpers import free_port, invoke

ADMIN = "admin-secret"
HEADERS = [("Authorization", f"Bearer {ADMIN}")]


@asynccontextmanager
async def node_host(
    daemon_url: str, tmp: Path, node_id: str = "laptop", *extra: str
) -> AsyncIterator[trio.Process]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
    env["ARGUS_NODE_TOKEN"] = ADMIN
    ws = "ws" + daemon_url[len("http") :] + "/nodes/ws"
    cmd = [sys.executable, "-m", "argus", "node-host", "--url", ws, "--node-id", node_id,
           "--state-dir", str(tmp / f"state-{node_id}"), *extra]  # fmt: skip
    log = open(tmp / f"node-{node_id}.log", "wb")  # noqa: ASYNC230
    process = await trio.lowlevel.open_process(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        yield process
    finally:
        process.terminate()
        with trio.move_on_after(5):
            await process.wait()
        process.kill()
        log.close()


async def wait_node(http: httpx.AsyncClient, node_id: str, timeout: float = 20) -> dict[str, Any]:
    """``nodes_helpers.wait_node`` with a deadline of its own."""
    with trio.fail_after(timeout):
        return await helpers.wait_node(http, node_id)


async def test_node_host_runs_jobs_in_foreground_and_background(tmp_path: Path) -> None:
    with trio.fail_after(90):
        async with run_daemon(tmp_path / "home", env={"ARGUS_TOKEN": ADMIN}) as daemon:
            async with node_host(daemon.base_url, tmp_path), daemon.http(ADMIN) as http:
                listed = await wait_node(http, "laptop")
                assert "system.run" in listed["commands"] and listed["platform"] == sys.platform

                done = await invoke(
                    http,
                    "laptop",
                    "system.run",
                    {"argv": ["sh", "-c", "echo hi; echo err >&2; exit 3"]},
                )
                assert done["ok"] is True
                payload = done["payload"]
                assert (payload["running"], payload["exitCode"]) == (False, 3)
                assert (payload["stdout"], payload["stderr"]) == ("hi\n", "err\n")

                script = "echo started; sleep 1; echo finished"
                bg = await invoke(
                    http, "laptop", "system.run", {"argv": ["sh", "-c", script], "yieldMs": 100}
                )
                assert bg["payload"]["running"] is True
                job_id = bg["payload"]["jobId"]
                with trio.fail_after(10):
                    while True:
                        got = await invoke(http, "laptop", "process.get", {"jobId": job_id})
                        if not got["payload"]["job"]["running"]:
                            break
                        await trio.sleep(0.2)
                logs = await invoke(http, "laptop", "process.logs", {"jobId": job_id})
                assert logs["payload"]["stdout"] == "started\nfinished\n"
                listing = await invoke(http, "laptop", "process.list")
                assert job_id in [j["jobId"] for j in listing["payload"]["jobs"]]

                sleeper = await invoke(
                    http,
                    "laptop",
                    "system.run",
                    {"argv": ["sh", "-c", "sleep 60 & wait"], "yieldMs": 0},
                )
                killed = await invoke(
                    http, "laptop", "process.kill", {"jobId": sleeper["payload"]["jobId"]}
                )
                assert killed["ok"] is True and killed["payload"]["signal"] == "SIGTERM"
                after = await invoke(
                    http, "laptop", "process.get", {"jobId": sleeper["payload"]["jobId"]}
                )
                assert after["payload"]["job"]["running"] is False

                unknown = await invoke(http, "laptop", "camera.snap")
                assert unknown["ok"] is False and unknown["error"]["code"] == "UNSUPPORTED"


async def test_invoke_timeout_is_clean(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with run_daemon(tmp_path / "home", env={"ARGUS_TOKEN": ADMIN}) as daemon:
            async with node_host(daemon.base_url, tmp_path), daemon.http(ADMIN) as http:
                await wait_node(http, "laptop")
                stubborn = ["sh", "-c", "trap '' TERM; sleep 30"]
                job = await invoke(http, "laptop", "system.run", {"argv": stubborn, "yieldMs": 0})
                start = trio.current_time()
                slow = await invoke(
                    http,
                    "laptop",
                    "process.kill",
                    {"jobId": job["payload"]["jobId"]},
                    timeoutMs=500,
                )
                assert slow["ok"] is False and slow["error"]["code"] == "TIMEOUT"
                assert trio.current_time() - start < 5
                # The node still answers afterwards.
                which = await invoke(http, "laptop", "system.which", {"bin": "sh"})
                assert which["ok"] is True and which["payload"]["path"]


async def test_node_reconnects_after_the_daemon_restarts(tmp_path: Path) -> None:
    port = str(free_port())
    with trio.fail_after(90):
        async with run_daemon(
            tmp_path / "home", "--port", port, env={"ARGUS_TOKEN": ADMIN}
        ) as first:
            url = first.base_url
            async with node_host(url, tmp_path):
                async with first.http(ADMIN) as http:
                    await wait_node(http, "laptop")
                await first.stop()
                async with run_daemon(
                    tmp_path / "home", "--port", port, env={"ARGUS_TOKEN": ADMIN}
                ) as second:
                    async with second.http(ADMIN) as http:
                        await wait_node(http, "laptop", timeout=40)
                        which = await invoke(http, "laptop", "system.which", {"bin": "sh"})
                        assert which["ok"] is True


async def test_allow_and_deny_lists(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with run_daemon(tmp_path / "home", env={"ARGUS_TOKEN": ADMIN}) as daemon:
            async with (
                node_host(daemon.base_url, tmp_path, "laptop", "--allow", "echo", "--deny", "rm"),
                daemon.http(ADMIN) as http,
            ):
                await wait_node(http, "laptop")
                ok = await invoke(http, "laptop", "system.run", {"argv": ["echo", "yes"]})
                assert ok["payload"]["stdout"] == "yes\n"
                for argv in (["sh", "-c", "echo no"], ["/bin/rm", "-rf", "/tmp/nothing"]):
                    refused = await invoke(http, "laptop", "system.run", {"argv": argv})
                    assert refused["ok"] is False and refused["error"]["code"] == "DENIED"


async def test_every_session_has_its_runtime_node(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with run_daemon(tmp_path / "home", env={"ARGUS_TOKEN": ADMIN}) as daemon:
            async with connect(daemon, headers=HEADERS) as client, daemon.http(ADMIN) as http:
                listed = await wait_node(http, f"runtime:{client.id}")
                assert listed["displayName"] == f"runtime-{client.id}"
                run = await invoke(http, f"runtime:{client.id}", "system.run", {"argv": ["pwd"]})
                workspace = daemon.home / "sessions" / client.id / "workspace"
                assert run["payload"]["stdout"].strip() == str(workspace)
                env = await invoke(http, f"runtime:{client.id}", "system.run", {"argv": ["env"]})
                assert ADMIN not in env["payload"]["stdout"]  # no gateway secret in a job's env


async def test_a_finished_background_job_reaches_the_agent(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with run_daemon(tmp_path / "home", env={"ARGUS_TOKEN": ADMIN}) as daemon:
            async with connect(daemon, headers=HEADERS) as client, daemon.http(ADMIN) as http:
                node = f"runtime:{client.id}"
                await wait_node(http, node)
                script = "sleep 0.5; echo all-done"
                job = await invoke(
                    http, node, "system.run", {"argv": ["sh", "-c", script], "yieldMs": 50}
                )
                assert job["payload"]["running"] is True
                result = await client.recv_until(
                    lambda m: m.get("method") == "argus/turn/result", timeout=30
                )
    text = result["params"]["text"]
    assert result["params"]["kind"] == "heartbeat"
    assert "Background process finished." in text and f"jobId: {job['payload']['jobId']}" in text
    assert "all-done" in text and "[process at=" in text

"""A real ``argus node-host`` process against the real daemon: run, logs, kill, reconnect."""

from __future__ import annotations

from pathlib import Path

import trio

from argus.testing import run_daemon
from tests.conftest import DaemonFactory
from tests.nodes_helpers import ADMIN, free_port, invoke, node_host, nodes_url, wait_node

ENV = {"ARGUS_TOKEN": ADMIN, "ARGUS_RUNTIME_NODE": "0"}


async def test_run_foreground_background_logs_kill(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    with trio.fail_after(60):
        async with daemon_factory(**ENV) as d, d.http(ADMIN) as http:
            async with node_host(nodes_url(d), "box", tmp_path / "state"):
                info = await wait_node(http, "box")
                assert "system.run" in info["commands"]

                # Foreground: finishes within yieldMs, full result.
                res = await invoke(
                    http,
                    "box",
                    "system.run",
                    {"argv": ["sh", "-c", "echo hi; echo err >&2; exit 3"]},
                )
                assert res["ok"], res
                p = res["payload"]
                assert (p["running"], p["exitCode"], p["stdout"], p["stderr"]) == (
                    False,
                    3,
                    "hi\n",
                    "err\n",
                )

                # Background: yields, keeps running; logs show its output so far.
                script = "echo started; sleep 30; echo never"
                res = await invoke(
                    http, "box", "system.run", {"argv": ["sh", "-c", script], "yieldMs": 300}
                )
                assert res["ok"] and res["payload"]["running"] is True, res
                job = res["payload"]["jobId"]
                while True:
                    logs = await invoke(http, "box", "process.logs", {"jobId": job})
                    if "started" in logs["payload"]["stdout"]:
                        break
                    await trio.sleep(0.05)
                assert logs["payload"]["running"] is True
                listed = await invoke(http, "box", "process.list")
                assert [j["jobId"] for j in listed["payload"]["jobs"] if j["running"]] == [job]

                # Kill reaches the group: the `sleep` grandchild holds the pipes, so the
                # job only ends if it died too.
                killed = await invoke(http, "box", "process.kill", {"jobId": job})
                assert killed["ok"] and killed["payload"]["signal"] == "SIGTERM", killed
                got = await invoke(http, "box", "process.get", {"jobId": job})
                assert got["payload"]["job"]["running"] is False
                assert got["payload"]["job"]["signal"] == "SIGTERM"
                logs = await invoke(http, "box", "process.logs", {"jobId": job})
                assert logs["payload"]["stdout"] == "started\n"
                again = await invoke(http, "box", "process.kill", {"jobId": job})
                assert again["error"]["code"] == "NOT_RUNNING"

                # A background job's completion is reported to the gateway.
                res = await invoke(
                    http,
                    "box",
                    "system.run",
                    {"argv": ["sh", "-c", "sleep 0.3; echo finished"], "yieldMs": 0},
                )
                job2 = res["payload"]["jobId"]
                while f"job={job2}" not in d.log_text:
                    await trio.sleep(0.05)

                which = await invoke(http, "box", "system.which", {"bin": "sh"})
                assert which["payload"]["path"].endswith("/sh")
                bad = await invoke(http, "box", "system.run", {"argv": "ls"})
                assert bad["error"]["code"] == "BAD_INPUT"


async def test_allow_list_refuses_other_commands(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    with trio.fail_after(30):
        async with daemon_factory(**ENV) as d, d.http(ADMIN) as http:
            async with node_host(nodes_url(d), "locked", tmp_path / "s", ADMIN, "--allow", "echo"):
                await wait_node(http, "locked")
                ok = await invoke(http, "locked", "system.run", {"argv": ["echo", "yes"]})
                assert ok["payload"]["stdout"] == "yes\n"
                no = await invoke(http, "locked", "system.run", {"argv": ["sh", "-c", "id"]})
                assert no["ok"] is False and no["error"]["code"] == "DENIED"


async def test_reconnects_after_daemon_restart_and_keeps_jobs(tmp_path: Path) -> None:
    port = str(free_port())
    home = tmp_path / "home"
    with trio.fail_after(90):
        async with node_host(f"ws://127.0.0.1:{port}/nodes/ws", "roamer", tmp_path / "state"):
            async with run_daemon(home, "--port", port, env=ENV) as d, d.http(ADMIN) as http:
                await wait_node(http, "roamer")
                res = await invoke(http, "roamer", "system.run", {"argv": ["sh", "-c", "echo one"]})
                job = res["payload"]["jobId"]
                await d.stop()
            # The node-host survives the refused connects and comes back.
            await trio.sleep(1.5)
            async with run_daemon(home, "--port", port, env=ENV) as d, d.http(ADMIN) as http:
                await wait_node(http, "roamer")
                logs = await invoke(http, "roamer", "process.logs", {"jobId": job})
                assert logs["payload"]["stdout"] == "one\n"


async def test_state_survives_agent_restart_running_jobs_orphaned(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    with trio.fail_after(60):
        async with daemon_factory(**ENV) as d, d.http(ADMIN) as http:
            async with node_host(nodes_url(d), "n1", state):
                await wait_node(http, "n1")
                res = await invoke(
                    http, "n1", "system.run", {"argv": ["sleep", "3"], "yieldMs": 100}
                )
                job = res["payload"]["jobId"]
            await wait_node(http, "n1", present=False)
            async with node_host(nodes_url(d), "n1", state):
                await wait_node(http, "n1")
                got = await invoke(http, "n1", "process.get", {"jobId": job})
                assert got["payload"]["job"]["orphaned"] is True
                assert got["payload"]["job"]["running"] is False


async def test_yield_fits_the_invoke_timeout_and_output_keeps_the_tail(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    """A long ``yieldMs`` under a short invoke timeout still answers (running, with a job
    id) instead of timing out and losing the job; big output keeps its end."""
    with trio.fail_after(60):
        async with daemon_factory(**ENV) as d, d.http(ADMIN) as http:
            async with node_host(nodes_url(d), "capped", tmp_path / "state"):
                await wait_node(http, "capped")
                res = await invoke(
                    http,
                    "capped",
                    "system.run",
                    {"argv": ["sleep", "5"], "yieldMs": 60_000},
                    timeoutMs=2500,
                )
                assert res["ok"] is True, res
                assert res["payload"]["running"] is True
                await invoke(http, "capped", "process.kill", {"jobId": res["payload"]["jobId"]})

                script = "head -c 3000000 /dev/zero | tr '\\0' a; echo END"
                res = await invoke(http, "capped", "system.run", {"argv": ["sh", "-c", script]})
                p = res["payload"]
                assert p["running"] is False and p["exitCode"] == 0
                assert p["stdout"].endswith("aaaaEND\n")
                assert len(p["stdout"]) < 3_000_000 and p["stdoutTruncated"] is True
                assert p["stdoutBytes"] == 3_000_004

"""``argus import-state``: the original's state.json becomes sessions, queues and jobs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import trio

from tests.harness import connect, daemon_env, run_daemon

STATE = {
    "version": 1,
    "defaultSessionId": "b2444ae919b2",
    "sessions": {
        "b2444ae919b2": {
            "mainThreadId": "thr_2",
            "cronJobs": [
                {
                    "jobId": "d801a6dc30",
                    "expr": "*/5 * * * *",
                    "text": "check inbox",
                    "enabled": True,
                    "lastRunAtMs": 1795561640001,
                    "nextRunAtMs": 1795561645000,
                },
                {"jobId": "broken", "expr": "61 * * * *", "text": "never"},
            ],
            "systemEventQueues": {
                "thr_2": [
                    {
                        "eventId": "0c9e4f1d2b7a4e55a1d6b3f0c2e8d7a1",
                        "kind": "cron",
                        "text": "check inbox",
                        "createdAtMs": 1795561640001,
                        "meta": {"jobId": "d801a6dc30", "expr": "*/5 * * * *"},
                    },
                    {"eventId": "bad"},
                ]
            },
            "lastActiveByThread": {
                "thr_2": {
                    "channel": "telegram",
                    "chatKey": "-1001234567890:42",
                    "atMs": 1795561586000,
                }
            },
        },
        "../etc": {"mainThreadId": "x"},
    },
}


async def import_state(home: Path, path: Path) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(60):
        return await trio.run_process(
            [sys.executable, "-m", "argus", "import-state", str(path)],
            env=daemon_env(home),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


async def test_import_then_serve(tmp_path: Path) -> None:
    home = tmp_path / "home"
    state = tmp_path / "state.json"
    state.write_text(json.dumps(STATE))
    proc = await import_state(home, state)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["imported"] == {
        "sessions": 1,
        "mainThreads": 1,
        "events": 1,
        "cronJobs": 1,
        "bindings": 1,
    }
    warnings = "\n".join(summary["warnings"])
    assert "broken" in warnings and "../etc" in warnings and "invalid event" in warnings
    again = json.loads((await import_state(home, state)).stdout)
    assert again["imported"]["events"] == 0 and again["imported"]["cronJobs"] == 0

    async with run_daemon(home) as daemon:
        async with daemon.http() as http:
            sessions = (await http.get("/sessions")).json()["sessions"]
            assert [s["sessionId"] for s in sessions] == ["b2444ae919b2"]
            jobs = (await http.get("/automation/cron/jobs")).json()["jobs"]
            assert [(j["jobId"], j["expr"], j["text"]) for j in jobs] == [
                ("d801a6dc30", "*/5 * * * *", "check inbox")
            ]
        async with connect(daemon, session="b2444ae919b2") as client:
            assert client.session["attached"] is True


async def test_unreadable_state_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "state.json"
    bad.write_text("{not json")
    proc = await import_state(tmp_path / "home", bad)
    assert proc.returncode == 2
    assert b"not a readable JSON file" in proc.stderr and b"Traceback" not in proc.stderr

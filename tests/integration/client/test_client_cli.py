"""``argus sessions``, ``argus send`` and ``argus tail`` as a user runs them, against the daemon.

Each command runs as its own process (``python -m argus ...``) with ``ARGUS_URL`` and
``ARGUS_TOKEN`` in its environment, exactly as from a shell.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from argus.testing import Daemon, run_daemon
from tests.nodes_helpers import free_port


def cli_env(daemon: Daemon, token: str | None = None) -> dict[str, str]:
    """A shell's environment pointed at ``daemon``: ARGUS_URL and, if given, ARGUS_TOKEN."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
    env["ARGUS_URL"] = daemon.base_url
    if token:
        env["ARGUS_TOKEN"] = token
    return env


async def argus(
    daemon: Daemon, *args: str, stdin: bytes = b"", token: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argus ARGS`` to completion; its output is captured."""
    with trio.fail_after(60):
        return await trio.run_process(
            [sys.executable, "-m", "argus", *args],
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=cli_env(daemon, token),
        )


async def test_send_hello_prints_the_demo_reply_on_a_fresh_daemon(tmp_path: Path) -> None:
    async with run_daemon(tmp_path / "home") as daemon:
        done = await argus(daemon, "send", "hello")
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode() == "echo: hello\n"
        listed = await argus(daemon, "sessions")
    assert listed.returncode == 0
    lines = listed.stdout.decode().splitlines()
    assert lines[0].split() == ["SESSION", "MODE", "STATE", "CLIENTS", "SEQ"]
    assert lines[1].split()[:3] == ["default", "*", "local"]


async def test_send_continues_a_thread_and_asks_for_approvals(tmp_path: Path) -> None:
    async with run_daemon(tmp_path / "home") as daemon:
        first = await argus(daemon, "send", "remember me")
        thread = first.stderr.decode().split("thread ")[1].split()[0]
        yes = await argus(daemon, "send", "--thread", thread, "/approve touch x", stdin=b"y\n")
        assert yes.returncode == 0, yes.stderr
        assert yes.stdout.decode() == "approved\n"
        assert "touch x" in yes.stderr.decode()
        no = await argus(daemon, "send", "--thread", thread, "/approve rm -rf /", stdin=b"")
        assert no.returncode == 0
        assert no.stdout.decode() == "declined\n"
        crash = await argus(daemon, "send", "/crash")
        assert crash.returncode == 1
        assert "turn failed" in crash.stderr.decode()
        missing = await argus(daemon, "send", "--session", "nope", "hi")
        assert missing.returncode == 3
        assert "Unknown session" in missing.stderr.decode()


async def test_tokens_and_sessions_rm(tmp_path: Path) -> None:
    async with run_daemon(tmp_path / "home", env={"ARGUS_TOKEN": "sekrit"}) as daemon:
        refused = await argus(daemon, "send", "hi", token="wrong")
        assert refused.returncode == 3
        assert "Unauthorized" in refused.stderr.decode()
        assert (await argus(daemon, "sessions", token="wrong")).returncode == 3
        assert (await argus(daemon, "send", "hi", token="sekrit")).returncode == 0
        listed = await argus(daemon, "sessions", "--json", token="sekrit")
        before = json.loads(listed.stdout)
        assert [s["sessionId"] for s in before] == ["default"]
        removed = await argus(daemon, "sessions", "rm", "default", token="sekrit")
        assert removed.returncode == 0 and removed.stdout.decode() == "deleted default\n"
        gone = await argus(daemon, "sessions", "rm", "default", token="sekrit")
        assert gone.returncode == 1
        # The next use creates a new default session.
        assert (await argus(daemon, "send", "again", token="sekrit")).returncode == 0
        after = json.loads((await argus(daemon, "sessions", "--json", token="sekrit")).stdout)
        assert [s["sessionId"] for s in after] == ["default"]
        assert after[0]["createdAtMs"] > before[0]["createdAtMs"]
        assert after[0]["seq"] < before[0]["seq"] + 5  # a fresh log, not the old one


async def test_tail_resumes_across_a_gateway_kill(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    with trio.fail_after(90):
        async with run_daemon(home, "--port", str(port)) as first:
            await argus(first, "send", "before")  # creates the default session
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "argus", "tail", "--since", "0"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=cli_env(first),
            )
            lines: list[dict] = []

            async def read() -> None:
                assert process.stdout is not None
                buffer = b""
                while chunk := await process.stdout.receive_some(65536):
                    buffer += chunk
                    *complete, buffer = buffer.split(b"\n")
                    lines.extend(json.loads(line) for line in complete)

            def completed_turns() -> int:
                return sum(1 for m in lines if m.get("method") == "turn/completed")

            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(read)
                    while completed_turns() < 1:  # the earlier turn, replayed from 0
                        await trio.sleep(0.05)
                    first.process.send_signal(signal.SIGKILL)
                    await first.process.wait()
                    async with run_daemon(home, "--port", str(port)) as second:
                        await argus(second, "send", "after")
                        while completed_turns() < 2:
                            await trio.sleep(0.05)
                    nursery.cancel_scope.cancel()
            finally:
                process.kill()
                await process.wait()
    seqs = [m["argusSeq"] for m in lines]
    assert seqs == sorted(set(seqs))  # every message once, in order
    texts = [
        m["params"]["item"]["text"]
        for m in lines
        if m.get("method") == "item/completed" and m["params"]["item"]["type"] == "agentMessage"
    ]
    assert texts == ["echo: before", "echo: after"]


@pytest.mark.parametrize("command", [["sessions"], ["sessions", "rm"], ["send"], ["tail"]])
def test_help(command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "argus", *command, "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "ARGUS_URL" in done.stdout and "ARGUS_TOKEN" in done.stdout

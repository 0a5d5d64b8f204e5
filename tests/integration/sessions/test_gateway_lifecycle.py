"""Start-up and shutdown as an operator sees them: config errors, signals, the default runtime."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from trio_websocket import ConnectionClosed

from argus.testing import daemon_env
from tests.harness import connect, run_daemon


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "argus", *args],
        env=daemon_env(tmp_path / "home", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        (["serve"], {"ARGUS_PORT": "http"}, "ARGUS_PORT"),
        (["serve", "--port", "99999"], {}, "--port"),
        (["serve"], {"ARGUS_PROVISION_MODE": "kubernetes"}, "ARGUS_PROVISION_MODE"),
        (["serve"], {"ARGUS_CONNECT_TIMEOUT_S": "soon"}, "ARGUS_CONNECT_TIMEOUT_S"),
        (["serve"], {"ARGUS_HOME_HOST_PATH": "relative/dir"}, "ARGUS_HOME_HOST_PATH"),
        (["serve"], {"ARGUS_COALESCE_DELTAS": "maybe"}, "ARGUS_COALESCE_DELTAS"),
        (["serve", "--host", "0.0.0.0"], {}, "--host"),
    ],
)
def test_bad_configuration_exits_2_naming_the_setting(tmp_path, args, env, names) -> None:
    result = run_cli(tmp_path, *args, **env)
    assert result.returncode == 2, result.stderr
    assert names in result.stderr
    assert "Traceback" not in result.stderr


def test_token_allows_public_bind_and_never_shows(tmp_path) -> None:
    # Refused without a token; with one, the bad value elsewhere is named and the token is not.
    result = run_cli(
        tmp_path, "serve", "--host", "0.0.0.0", ARGUS_TOKEN="t0ken-Value", ARGUS_PORT="x"
    )
    assert result.returncode == 2
    assert "ARGUS_PORT" in result.stderr and "t0ken-Value" not in result.stderr


def test_help_documents_every_option(tmp_path) -> None:
    top = run_cli(tmp_path, "--help")
    assert top.returncode == 0 and "serve" in top.stdout and "demo-runtime" in top.stdout
    serve = run_cli(tmp_path, "serve", "--help")
    assert serve.returncode == 0
    for option in ("--host", "--port", "--insecure", "--provision-mode", "--runtime-cmd", "--home"):
        assert option in serve.stdout
    for variable in (
        "ARGUS_TOKEN",
        "ARGUS_HOST",
        "ARGUS_PORT",
        "ARGUS_RUNTIME_CMD",
        "ARGUS_JSONL_LINE_LIMIT_BYTES",
        "ARGUS_REPLAY_BUFFER_BYTES",
        "ARGUS_ALLOWED_ORIGINS",
        "ARGUS_TCP_HOST",
        "ARGUS_CONNECT_TIMEOUT_S",
    ):
        assert variable in serve.stdout
    demo = run_cli(tmp_path, "demo-runtime", "--help")
    assert demo.returncode == 0 and "--home" in demo.stdout


async def test_default_runtime_is_announced_once(daemon) -> None:
    lines = [line for line in daemon.log_lines if "demo runtime" in line]
    assert len(lines) == 1
    assert "ARGUS_RUNTIME_CMD" in lines[0]


async def test_runtime_cmd_is_used(daemon_factory) -> None:
    command = f"{sys.executable} -m argus.demo_runtime --home runtime-state"
    with trio.fail_after(30):
        async with daemon_factory(ARGUS_RUNTIME_CMD=command) as daemon:
            assert not [line for line in daemon.log_lines if "demo runtime" in line]
            async with connect(daemon) as client:
                await client.handshake()
                await client.start_thread()
            workspace = daemon.home / "sessions" / client.id / "workspace"
            assert list((workspace / "runtime-state" / "threads").glob("*.json"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_shuts_down_gracefully(daemon_factory, sig) -> None:
    """A plain child runtime is stopped with the gateway (ARGUS_LOCAL_DETACH=0)."""
    with trio.fail_after(60):
        async with daemon_factory(ARGUS_LOCAL_DETACH="0") as daemon:
            async with connect(daemon) as a, connect(daemon, session=a.id) as b:
                await a.handshake()
                async with daemon.http() as http:
                    pid = (await http.get("/sessions")).json()["sessions"][0]["pid"]
                daemon.process.send_signal(sig)
                for client in (a, b):
                    with pytest.raises(ConnectionClosed) as closed:
                        while True:
                            await client.recv()
                    assert closed.value.reason.code == 1001
                assert await daemon.stop() == 0
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


async def test_shutdown_leaves_a_bridged_runtime_running_for_the_next_gateway(
    daemon_factory,
) -> None:
    with trio.fail_after(60):
        async with daemon_factory() as daemon:
            async with connect(daemon) as client:
                await client.handshake()
                thread_id = await client.start_thread()
                async with daemon.http() as http:
                    pid = (await http.get("/sessions")).json()["sessions"][0]["pid"]
            assert await daemon.stop() == 0
            os.kill(pid, 0)  # still running: no ProcessLookupError
            async with run_daemon(daemon.home) as again:
                async with connect(again, session=client.id) as back:
                    # Adopted, not restarted: the same process, initialized, thread loaded.
                    async with again.http() as http:
                        info = (await http.get("/sessions")).json()["sessions"][0]
                    assert info["pid"] == pid and info["state"] == "running"
                    result = await back.handshake()
                    assert result["platformFamily"] == "unix"
                    turn = await back.start_turn(thread_id, "still here")
                    assert "result" in turn

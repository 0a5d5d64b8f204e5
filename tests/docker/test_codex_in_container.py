"""The real ``codex app-server``, installed by the runtime image's install command, in a
session container, driven offline by the fake model server.

The container uses host networking so that codex reaches the fake model on 127.0.0.1 (and
the gateway reaches the container's bridge on 127.0.0.1:7777): no other address is used.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.docker.test_docker_sessions import docker_env
from tests.harness import connect, daemon_env, run_daemon
from tests.realpeer.codex_home import CONFIG
from tests.realpeer.fake_model import FakeModel

pytestmark = [pytest.mark.docker, pytest.mark.codex]
SESSION = "codexbox"


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def test_codex_in_the_runtime_image(
    tmp_path: Path, docker_client: Any, runtime_image: str, gateway_id: str
) -> None:
    if not port_free(7777):
        pytest.fail("port 7777 is taken; this test needs it for the host-network bridge")
    home = tmp_path / "home"
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"version": 1, "sessions": {SESSION: {}}}))
    with trio.fail_after(60):
        imported = await trio.run_process(
            [sys.executable, "-m", "argus", "import-state", str(state)],
            env=daemon_env(home),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert imported.returncode == 0, imported.stderr
    with FakeModel() as model:
        codex_home = home / "sessions" / SESSION / ".codex"
        codex_home.mkdir(parents=True)
        config = CONFIG.format(
            base_url=model.base_url, approval_policy="never", sandbox_mode="read-only"
        )
        (codex_home / "config.toml").write_text(config)
        for path in (home / "sessions" / SESSION, codex_home):
            os.chmod(path, 0o777)  # the container's user (uid 10001) writes there
        env = docker_env(
            runtime_image,
            gateway_id,
            ARGUS_RUNTIME_CMD="FAKE_LLM_API_KEY=offline codex app-server",
            ARGUS_DOCKER_NETWORK="host",
        )
        model.queue_text("hello from codex in a container", chunks=4)
        with trio.fail_after(180):
            async with run_daemon(home, env=env) as daemon:
                async with connect(daemon, session=SESSION) as client:
                    result = await client.handshake()
                    assert result["platformFamily"] == "unix"
                    thread_id = await client.start_thread()
                    await client.start_turn(thread_id, "say hello")
                    done = await client.recv_until(
                        lambda m: m.get("method") == "turn/completed", timeout=120
                    )
        text = "".join(
            m["params"]["delta"]
            for m in client.seen
            if m.get("method") == "item/agentMessage/delta"
        )
        assert done["params"]["turn"]["status"] == "completed"
        assert text == "hello from codex in a container"
        assert "say hello" in json.dumps(model.requests[-1]["input"])

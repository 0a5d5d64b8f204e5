"""The real ``codex app-server`` in a swarm service, driven offline by the fake model server.

The service uses host networking so that codex reaches the fake model on 127.0.0.1; its
bridge listens on a free port of the node (``ARGUS_SWARM_BRIDGE_PORT``), which the gateway
reaches at the node's address (127.0.0.1 in the test swarm). The session home is the
service's volume, so the runtime command writes codex's offline config there first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.harness import connect, run_daemon
from tests.nodes_helpers import free_port
from tests.realpeer.codex_home import CONFIG
from tests.realpeer.fake_model import FakeModel
from tests.swarm.conftest import swarm_env

pytestmark = [pytest.mark.docker, pytest.mark.codex]


def runtime_cmd(base_url: str) -> str:
    """Write ``~/.codex/config.toml`` (into the session's volume), then run codex."""
    config = CONFIG.format(base_url=base_url, approval_policy="never", sandbox_mode="read-only")
    return (
        'mkdir -p "$HOME/.codex" && cat > "$HOME/.codex/config.toml" <<\'EOF\'\n'
        f"{config}EOF\n"
        "FAKE_LLM_API_KEY=offline exec codex app-server"
    )


async def test_codex_in_a_swarm_service(
    tmp_path: Path, docker_client: Any, runtime_image: str, gateway_id: str, swarm_node: str
) -> None:
    with FakeModel() as model:
        env = swarm_env(
            runtime_image,
            gateway_id,
            ARGUS_RUNTIME_CMD=runtime_cmd(model.base_url),
            ARGUS_SWARM_NETWORK="host",
            ARGUS_SWARM_BRIDGE_PORT=str(free_port()),
        )
        model.queue_text("hello from codex in a swarm service", chunks=4)
        with trio.fail_after(180):
            async with run_daemon(tmp_path / "home", env=env) as daemon:
                async with connect(daemon) as client:
                    result = await client.handshake()
                    assert result["platformFamily"] == "unix"
                    thread_id = await client.start_thread()
                    await client.start_turn(thread_id, "say hello")
                    done = await client.recv_until(
                        lambda m: m.get("method") == "turn/completed", timeout=120
                    )
                label = f"io.argus.gateway={gateway_id}"
                [service] = await trio.to_thread.run_sync(
                    lambda: docker_client.services.list(filters={"label": label})
                )
                by_service = {"label": f"com.docker.swarm.service.id={service.id}"}
                [container] = await trio.to_thread.run_sync(
                    lambda: docker_client.containers.list(filters=by_service)
                )
                assert container.attrs["HostConfig"]["NetworkMode"] == "host"
        text = "".join(
            m["params"]["delta"]
            for m in client.seen
            if m.get("method") == "item/agentMessage/delta"
        )
        assert done["params"]["turn"]["status"] == "completed"
        assert text == "hello from codex in a swarm service"
        assert "say hello" in json.dumps(model.requests[-1]["input"])

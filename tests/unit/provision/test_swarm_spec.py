"""The service spec the swarm provisioner sends, checked without an engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from argus.config import ConfigError, load_settings
from argus.provision.base import GatewayLink
from argus.provision.swarm import SECRET_PATH, SwarmProvisioner


def provisioner(tmp_path: Path, **env: str) -> SwarmProvisioner:
    environ = {"ARGUS_HOME_HOST_PATH": str(tmp_path), "ARGUS_PROVISION_MODE": "swarm", **env}
    p = SwarmProvisioner(load_settings(environ=environ))
    p.gateway = GatewayLink("http://127.0.0.1:8080", "k" * 32)
    return p


def test_the_service_spec_holds_no_token(tmp_path: Path) -> None:
    """No token anywhere in what the engine is told: it would show in ``inspect``."""
    p = provisioner(tmp_path, ARGUS_DOCKER_GATEWAY_URL="http://gateway:8080")
    token = p.session_token("abc")
    env = p.runtime_env("abc", with_token=False)
    kwargs = p.service_kwargs("abc", "sha256:00", "secretid", env)
    assert token not in json.dumps(kwargs, default=str)
    assert kwargs["args"][-2:] == ["--token-file", SECRET_PATH]
    assert "ARGUS_MCP_URL=http://gateway:8080/mcp" in kwargs["env"]
    [secret] = kwargs["secrets"]
    assert secret["File"] == {
        "Name": "argus-session-token",
        "UID": "10001",
        "GID": "10001",
        "Mode": 0o400,
    }


def test_reach_and_network(tmp_path: Path) -> None:
    """Host-mode publishing by default; dnsrr on an overlay; host networking on its own port."""
    env = {}
    kwargs = provisioner(tmp_path).service_kwargs("abc", "img", "s", env)
    assert kwargs["endpoint_spec"]["Ports"] == [
        {"Protocol": "tcp", "TargetPort": 7777, "PublishMode": "host"}
    ]
    overlay = provisioner(tmp_path, ARGUS_SWARM_NETWORK="argus-net", ARGUS_DOCKER_REACH="network")
    assert overlay.reach == "network"
    kwargs = overlay.service_kwargs("abc", "img", "s", env)
    assert kwargs["endpoint_spec"]["Mode"] == "dnsrr"
    assert kwargs["networks"][0]["Target"] == "argus-net"
    host = provisioner(tmp_path, ARGUS_SWARM_NETWORK="host", ARGUS_SWARM_BRIDGE_PORT="7801")
    kwargs = host.service_kwargs("abc", "img", "s", env)
    assert host.reach == "host" and "endpoint_spec" not in kwargs
    assert kwargs["args"][-2:] == ["--listen", "tcp:0.0.0.0:7801"]


def test_constraints_are_checked_at_start_up(tmp_path: Path) -> None:
    p = provisioner(tmp_path, ARGUS_SWARM_CONSTRAINTS="node.role==worker, node.labels.argus==1")
    assert p.settings.swarm_constraints == ("node.role==worker", "node.labels.argus==1")
    with pytest.raises(ConfigError, match="ARGUS_SWARM_CONSTRAINTS"):
        provisioner(tmp_path, ARGUS_SWARM_CONSTRAINTS="node.role")


async def test_engine_errors_become_reasons_a_client_can_read() -> None:
    import docker.errors

    from argus.provision.base import ProvisionError
    from argus.provision.container import DockerEngine

    engine = DockerEngine("argus-runtime")
    engine._client = object()  # no engine is called: the functions below raise

    def not_a_manager(_client: object) -> None:
        raise docker.errors.APIError(
            "503 Server Error",
            explanation="This node is not a swarm manager. Use docker swarm init",
        )

    with pytest.raises(ProvisionError, match="not a swarm manager \\(run `docker swarm init`"):
        await engine.call(not_a_manager)

    def missing(_client: object) -> None:
        raise docker.errors.ImageNotFound("no such image")

    with pytest.raises(ProvisionError, match="runtime image not found: argus-runtime"):
        await engine.call(missing)

"""The gateway as a swarm service itself, reaching session tasks over an overlay network.

This is the production shape (``ARGUS_SWARM_NETWORK`` + ``ARGUS_DOCKER_REACH=network``):
nothing of a session is published; the gateway connects to the task's address on the
attachable overlay. The gateway runs from the runtime image (it has Argus installed) with
the engine's socket, and publishes only its own port in host mode, which the test reaches
on 127.0.0.1 with an admin token.
"""

from __future__ import annotations

import secrets
import types
from typing import Any

import httpx
import pytest
import trio

from tests.harness import connect

pytestmark = pytest.mark.docker


def start_gateway(client: Any, image: str, gateway_id: str, network: str, token: str) -> Any:
    """The gateway service (labelled apart from sessions, so it is never its own orphan)."""
    from docker.types import (
        EndpointSpec,
        Healthcheck,
        Mount,
        NetworkAttachmentConfig,
        RestartPolicy,
    )

    env = {
        "ARGUS_TOKEN": token,
        "ARGUS_PROVISION_MODE": "swarm",
        "ARGUS_RUNTIME_IMAGE": image,
        "ARGUS_RUNTIME_CMD": "argus demo-runtime",
        "ARGUS_GATEWAY_ID": gateway_id,
        "ARGUS_CONTAINER_PREFIX": f"argus-{gateway_id}",
        "ARGUS_SWARM_NETWORK": network,
        "ARGUS_DOCKER_REACH": "network",
        "ARGUS_HOME_HOST_PATH": "/tmp/argus-home",
        "ARGUS_CONNECT_TIMEOUT_S": "60",
    }
    return client.services.create(
        image,
        command=["/opt/argus/bin/argus", "serve", "--host", "0.0.0.0", "--port", "8080"],
        name=f"argus-{gateway_id}-gateway",
        user="0:0",  # the engine's socket is root's
        env=[f"{k}={v}" for k, v in env.items()],
        labels={"io.argus.test-gateway": gateway_id},
        mounts=[Mount("/var/run/docker.sock", "/var/run/docker.sock", type="bind")],
        networks=[NetworkAttachmentConfig(network)],
        restart_policy=RestartPolicy(condition="none"),
        healthcheck=Healthcheck(test=["NONE"]),  # the image's checks the bridge port
        endpoint_spec=EndpointSpec(
            ports=[{"Protocol": "tcp", "TargetPort": 8080, "PublishMode": "host"}]
        ),
    )


async def published_port(service: Any) -> int:
    with trio.fail_after(60):
        while True:
            tasks = await trio.to_thread.run_sync(service.tasks)
            for task in tasks:
                if task["Status"]["State"] == "running":
                    return int(task["Status"]["PortStatus"]["Ports"][0]["PublishedPort"])
                if task["Status"]["State"] in ("failed", "rejected", "complete"):
                    raise AssertionError(f"gateway task ended: {task['Status']}")
            await trio.sleep(0.2)


async def test_gateway_service_reaches_sessions_over_an_overlay(
    docker_client: Any, runtime_image: str, gateway_id: str, swarm_node: str
) -> None:
    token = secrets.token_hex(16)
    net_name = f"argus-{gateway_id}-net"
    network = await trio.to_thread.run_sync(
        lambda: docker_client.networks.create(net_name, driver="overlay", attachable=True)
    )
    gateway = None
    try:
        gateway = await trio.to_thread.run_sync(
            start_gateway, docker_client, runtime_image, gateway_id, net_name, token
        )
        port = await published_port(gateway)
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=10) as http:
            with trio.fail_after(60):
                while True:
                    try:
                        if (await http.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await trio.sleep(0.3)
            where = types.SimpleNamespace(ws_url=f"ws://127.0.0.1:{port}")
            headers = [("Authorization", f"Bearer {token}")]
            with trio.fail_after(120):
                async with connect(where, headers=headers) as client:  # type: ignore[arg-type]
                    await client.handshake()
                    thread_id = await client.start_thread()
                    await client.start_turn(thread_id, "/slow 6 10")
                    await client.recv_until(lambda m: m.get("method") == "turn/completed", 30)
                deltas = [
                    m["params"]["delta"]
                    for m in client.seen
                    if m.get("method") == "item/agentMessage/delta"
                ]
                # (A client that lags gets consecutive deltas joined: compare the text.)
                assert "".join(deltas) == "".join(f"{i:08d}" for i in range(6))
                label = {"label": f"io.argus.gateway={gateway_id}"}
                [service] = await trio.to_thread.run_sync(
                    lambda: docker_client.services.list(filters=label)
                )
                spec = service.attrs["Spec"]
                assert spec["EndpointSpec"]["Mode"] == "dnsrr"
                assert "Ports" not in spec["EndpointSpec"]  # nothing of a session published
                assert [n["Target"] for n in spec["TaskTemplate"]["Networks"]] == [network.id]
                assert (await http.delete(f"/sessions/{client.id}")).status_code == 200
                left = await trio.to_thread.run_sync(
                    lambda: docker_client.services.list(filters=label)
                )
                assert left == []
    finally:

        def cleanup() -> None:
            import time

            if gateway is not None:
                gateway.remove()
            for _ in range(100):  # the network is in use until the tasks are gone
                try:
                    network.remove()
                    return
                except Exception:
                    time.sleep(0.2)

        await trio.to_thread.run_sync(cleanup)

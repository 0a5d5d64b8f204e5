"""The swarm tier: a real engine in swarm mode, the locally built runtime image, real gateways.

The engine joins a single-manager swarm on 127.0.0.1 for the session if it is not in one
(``argus.testing.swarm_manager``), and is left as it was found afterwards: the swarm the
tests created is left, and the ``docker_gwbridge`` network it made is removed.

Other test runs may use the same engine at the same time (the docker tier): every test has
its own gateway id and name prefix, and removes only what carries its label.

Without Docker these tests skip with a reason; ``ARGUS_REQUIRE_REAL_PEERS=1`` (set by
``.ci/run``) turns that into a failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from argus.testing import SwarmUnavailable, remove_labelled, swarm_manager
from tests.docker.conftest import docker_client, runtime_image  # noqa: F401 (fixtures)
from tests.realpeer.conftest import require


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """This tier builds images and starts real peers: a longer per-test deadline (900 s)."""
    here = Path(__file__).parent
    for item in items:
        if (
            Path(str(item.fspath)).is_relative_to(here)
            and item.get_closest_marker("timeout") is None
        ):
            item.add_marker(pytest.mark.timeout(900))


@pytest.fixture(scope="session")
def swarm_node(docker_client: Any) -> Iterator[str]:  # noqa: F811
    """The id of this engine's node in a swarm it manages (created for the session if need be)."""
    try:
        with swarm_manager(docker_client) as node_id:
            yield node_id
    except SwarmUnavailable as exc:
        require(f"no swarm manager: {exc}")


@pytest.fixture
def gateway_id(docker_client: Any, swarm_node: str) -> Iterator[str]:  # noqa: F811
    """A gateway id (and name prefix) private to one test; what it labelled goes after it."""
    gid = f"sw{uuid.uuid4().hex[:8]}"
    yield gid
    remove_labelled(docker_client, gid)


def swarm_env(image: str, gateway_id: str, **extra: str) -> dict[str, str]:
    """A gateway in swarm mode with the demo runtime, private to ``gateway_id``."""
    env = {
        "ARGUS_PROVISION_MODE": "swarm",
        "ARGUS_RUNTIME_IMAGE": image,
        "ARGUS_RUNTIME_CMD": "argus demo-runtime",
        "ARGUS_CONTAINER_PREFIX": f"argus-{gateway_id}",
        "ARGUS_GATEWAY_ID": gateway_id,
        "ARGUS_CONNECT_TIMEOUT_S": "60",
    }
    env.update(extra)
    return env

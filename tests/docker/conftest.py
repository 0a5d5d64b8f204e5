"""The Docker tier: a real engine, a locally built base image, the runtime image.

No registry is reachable from CI, so the base image is debootstrapped from the machine's
Debian mirror (``runtime/build-base-image.sh``, ~40 s, cached by tag) and the runtime image
is built on it (``runtime/Dockerfile``), tagged by a hash of what goes into it so an
unchanged tree reuses the image. The machine's extra CA certificates are passed in, as the
image's builds reach npm and PyPI through a TLS-inspecting proxy here.

Without Docker (or debootstrap) these tests skip with a reason; ``ARGUS_REQUIRE_REAL_PEERS=1``
(set by ``.ci/run``) turns that into a failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from argus.testing import ImageBuildError, build_runtime_image
from tests.realpeer.conftest import require

REPO = Path(__file__).resolve().parents[2]
BASE_TAG = "argus-base:bookworm"


def _docker_client() -> Any:
    try:
        import docker

        client = docker.from_env()
        client.ping()
        return client
    except Exception as exc:
        require(
            f"Docker engine not reachable ({type(exc).__name__}); run .ci/run, which starts dockerd"
        )
        raise


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A Docker SDK client for checks made by the tests themselves."""
    client = _docker_client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def runtime_image(docker_client: Any) -> str:
    """The runtime image built from this tree (with codex from npm), cached by content."""
    try:
        return build_runtime_image()
    except ImageBuildError as exc:
        if exc.missing_tool:
            require(f"cannot build the base image: {exc}")
        raise


@pytest.fixture
def gateway_id(docker_client: Any) -> Iterator[str]:
    """A gateway id (and container prefix) private to one test; its containers go after it."""
    gid = f"t{uuid.uuid4().hex[:8]}"
    yield gid
    import docker.errors

    for container in docker_client.containers.list(
        all=True, filters={"label": f"io.argus.gateway={gid}"}
    ):
        try:
            container.remove(force=True)
        except docker.errors.APIError:
            pass  # already gone, or being removed by the gateway


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """This tier builds images and starts real peers: a longer per-test deadline (900 s)."""
    here = Path(__file__).parent
    for item in items:
        if (
            Path(str(item.fspath)).is_relative_to(here)
            and item.get_closest_marker("timeout") is None
        ):
            item.add_marker(pytest.mark.timeout(900))

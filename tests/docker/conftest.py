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

import hashlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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


def _tree_hash() -> str:
    digest = hashlib.sha256()
    files = [REPO / "runtime" / "Dockerfile", REPO / "pyproject.toml"]
    files += sorted((REPO / "argus").rglob("*.py")) + sorted((REPO / "argus").rglob("*.md"))
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def extra_ca_certs() -> str:
    """The machine's extra CA certificates (PEM), for builds behind a TLS-inspecting proxy."""
    certs = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    return "\n".join(c.read_text() for c in certs)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A Docker SDK client for checks made by the tests themselves."""
    client = _docker_client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def runtime_image(docker_client: Any) -> str:
    """The runtime image built from this tree (with codex from npm), cached by content."""
    import docker.errors

    tag = f"argus-runtime:test-{_tree_hash()}"
    try:
        docker_client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    base = subprocess.run(
        [str(REPO / "runtime" / "build-base-image.sh"), BASE_TAG], capture_output=True, text=True
    )
    if base.returncode == 2:
        require(f"cannot build the base image: {base.stderr.strip()}")
    assert base.returncode == 0, base.stderr[-2000:]
    build = subprocess.run(
        [
            "docker",
            "build",
            "-q",
            "-f",
            "runtime/Dockerfile",
            "--build-arg",
            f"BASE_IMAGE={BASE_TAG}",
            "--build-arg",
            f"EXTRA_CA_CERTS={extra_ca_certs()}",
            "-t",
            tag,
            ".",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    return tag


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

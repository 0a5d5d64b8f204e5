"""Run the real daemon as a subprocess: shared by the test suite and the benchmarks.

``run_daemon`` starts ``python -m argus serve --port 0`` exactly as a user would, parses the
``listening on`` log line to learn the port, keeps the daemon's log, and stops it with
SIGTERM (then SIGKILL) afterwards. ``cpu`` pins the daemon to one core, as the benchmarks do.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

from .procs import read_chunks, stop_process

LISTEN_RE = re.compile(r"listening on (http://\S+)")


@dataclass
class Daemon:
    """A running ``argus serve`` process."""

    process: trio.Process
    base_url: str
    home: Path
    log_lines: list[str] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT``."""
        return "ws" + self.base_url[len("http") :]

    @property
    def log_text(self) -> str:
        """Everything the daemon logged so far."""
        return "\n".join(self.log_lines)

    def http(self, token: str | None = None) -> httpx.AsyncClient:
        """An httpx client for the HTTP API."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=10)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Signal the daemon and wait for it to exit; returns the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(sig)
        with trio.fail_after(timeout):
            return await self.process.wait()


def daemon_env(home: Path, **overrides: str) -> dict[str, str]:
    """The environment of a test daemon: no inherited ARGUS_*, a private home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
    env["ARGUS_HOME_HOST_PATH"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


async def _pump_log(stream: trio.abc.ReceiveStream, daemon_lines: list[str]) -> None:
    buf = b""
    async for data in read_chunks(stream):
        buf += data
        *lines, buf = buf.split(b"\n")
        daemon_lines.extend(line.decode("utf-8", "replace") for line in lines)


@asynccontextmanager
async def run_daemon(
    home: Path, *args: str, env: dict[str, str] | None = None, cpu: int | None = None
) -> AsyncIterator[Daemon]:
    """Start ``argus serve --port 0`` and stop it (SIGTERM, then SIGKILL) afterwards."""
    await trio.to_thread.run_sync(lambda: home.mkdir(parents=True, exist_ok=True))
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "argus", "serve", "--port", "0", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=daemon_env(home, **(env or {})),
        preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
    )
    lines: list[str] = []
    try:
        async with trio.open_nursery() as nursery:
            assert process.stderr is not None
            nursery.start_soon(_pump_log, process.stderr, lines)
            with trio.fail_after(30):
                while True:
                    found = [LISTEN_RE.search(line) for line in lines]
                    match = next((f for f in found if f), None)
                    if match:
                        break
                    if process.returncode is not None:
                        raise RuntimeError("daemon exited:\n" + "\n".join(lines))
                    await trio.sleep(0.02)
            daemon = Daemon(process, match.group(1), home, lines)
            try:
                yield daemon
            finally:
                with trio.CancelScope(shield=True):
                    await stop_process(process, 15)  # SIGTERM, then SIGKILL
                nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
        await trio.to_thread.run_sync(kill_bridges, home)


def kill_bridges(home: Path) -> None:
    """Stop the detached runtime bridges a test daemon left under ``home`` (their groups).

    Bridges outlive their gateway by design; a test must not leave them behind.
    """
    for pid_file in home.glob("sessions/*/bridge.json"):
        try:
            info = json.loads(pid_file.read_text())
        except (OSError, ValueError):
            continue
        for key in ("runtimePid", "pid"):
            pid = info.get(key)
            if isinstance(pid, int):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    continue


# -- the runtime image, built locally (tests and benchmarks) ---------------------------------

REPO = Path(__file__).resolve().parents[1]
BASE_IMAGE_TAG = "argus-base:bookworm"


def extra_ca_certs() -> str:
    """The machine's extra CA certificates (PEM), for image builds behind a TLS proxy."""
    certs = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    return "\n".join(c.read_text() for c in certs)


def runtime_image_tag() -> str:
    """``argus-runtime:test-<hash>`` of everything that goes into the runtime image."""
    digest = hashlib.sha256()
    files = [REPO / "runtime" / "Dockerfile", REPO / "pyproject.toml"]
    files += sorted((REPO / "argus").rglob("*.py")) + sorted((REPO / "argus").rglob("*.md"))
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode())
        digest.update(path.read_bytes())
    return f"argus-runtime:test-{digest.hexdigest()[:12]}"


class ImageBuildError(Exception):
    """The base or runtime image could not be built; ``missing_tool`` when a tool is absent."""

    def __init__(self, message: str, missing_tool: bool = False) -> None:
        super().__init__(message)
        self.missing_tool = missing_tool


def build_runtime_image() -> str:
    """Build (or reuse) the runtime image on a debootstrapped base; returns its tag.

    Blocking (minutes on a cold cache): call it from a worker thread or a sync fixture.
    """
    tag = runtime_image_tag()
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0:
        return tag
    base = subprocess.run(
        [str(REPO / "runtime" / "build-base-image.sh"), BASE_IMAGE_TAG],
        capture_output=True,
        text=True,
    )
    if base.returncode != 0:
        raise ImageBuildError(base.stderr.strip()[-2000:], missing_tool=base.returncode == 2)
    build = subprocess.run(
        [
            "docker",
            "build",
            "-q",
            "-f",
            "runtime/Dockerfile",
            "--build-arg",
            f"BASE_IMAGE={BASE_IMAGE_TAG}",
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
    if build.returncode != 0:
        raise ImageBuildError(build.stderr[-3000:])
    return tag


# -- a swarm for the swarm tier and its benchmark ---------------------------------------------


class SwarmUnavailable(Exception):
    """The engine cannot give us a swarm manager (``str()`` says why)."""


@contextmanager
def swarm_manager(client: Any) -> Iterator[str]:
    """A swarm manager on this engine for the duration; yields the local node id.

    An engine already in a swarm is used as it is (it must be a manager) and left so. An
    engine outside one gets ``docker swarm init --advertise-addr 127.0.0.1`` (control port on
    127.0.0.1 only), and afterwards leaves it again, once no service is left (at most 2
    minutes: another run may be using the swarm it found), and loses the
    ``docker_gwbridge`` network the swarm made (``swarm leave`` keeps it): the engine is left
    as it was found.
    """
    import docker.errors

    swarm = client.info().get("Swarm") or {}
    state = swarm.get("LocalNodeState")
    if state == "active":
        if not swarm.get("ControlAvailable"):
            raise SwarmUnavailable("this engine is a swarm worker, not a manager")
        yield swarm["NodeID"]
        return
    if state != "inactive":
        raise SwarmUnavailable(f"the engine's swarm state is {state!r}")
    had_gwbridge = bool(client.networks.list(names=["docker_gwbridge"]))
    try:
        client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    except docker.errors.APIError as exc:
        raise SwarmUnavailable(f"docker swarm init failed: {exc.explanation or exc}") from exc
    try:
        yield client.info()["Swarm"]["NodeID"]
    finally:
        # Another run may have found our swarm and be using it: give its services time to
        # go (bounded) rather than pull the swarm from under it.
        for _ in range(600):
            if not client.services.list():
                break
            time.sleep(0.2)
        client.swarm.leave(force=True)
        if not had_gwbridge:
            for _ in range(50):
                networks = client.networks.list(names=["docker_gwbridge"])
                if not networks:
                    break
                try:
                    networks[0].remove()
                    break
                except docker.errors.APIError:
                    time.sleep(0.2)  # its last endpoints are still being released


def remove_labelled(client: Any, gateway_id: str) -> None:
    """Remove every service, container, volume and secret labelled with ``gateway_id``.

    Only what carries this exact gateway label: other runs on the same engine are safe.
    """
    import docker.errors

    label = f"io.argus.gateway={gateway_id}"
    for service in client.services.list(filters={"label": label}):
        try:
            service.remove()
        except docker.errors.APIError:
            pass
    for _ in range(100):
        containers = client.containers.list(all=True, filters={"label": label})
        if not containers:
            break
        for container in containers:
            try:
                container.remove(force=True)
            except docker.errors.APIError:
                pass
        time.sleep(0.2)
    for _ in range(50):
        left = 0
        for item in client.volumes.list(filters={"label": label}) + client.secrets.list(
            filters={"label": label}
        ):
            try:
                item.remove()
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError:
                left += 1
        if not left:
            break
        time.sleep(0.2)

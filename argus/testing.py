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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

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

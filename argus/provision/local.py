"""The embedded default: one local child process per session.

The runtime command runs through ``sh -c`` in the session's workspace, with ``HOME`` set to
the session's home so runtimes that keep state under ``$HOME`` (codex, the demo runtime)
keep it per session. It gets its own process group so that stopping it reaches whatever
the shell started. Stopping is polite first: close stdin (codex exits on EOF within tens of
milliseconds), then SIGTERM, then SIGKILL, each step bounded.

The child's environment never carries the admin token: every ``ARGUS_*`` variable of the
daemon is removed before the session's own (``ARGUS_SESSION_ID``) are added.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from ..config import Settings
from ..procs import StderrTail, drain_into, exit_code_and_signal, stop_process, supervise
from .base import (
    ExitStatus,
    GatewayLink,
    Provisioner,
    ProvisionError,
    Runtime,
    runtime_environment,
)
from .bridged import bridge_is_live, open_bridged_runtime

log = logging.getLogger(__name__)


def demo_runtime_command() -> str:
    """The command line of the bundled demo runtime, used when ARGUS_RUNTIME_CMD is unset."""
    return f"{shlex.quote(sys.executable)} -m argus.demo_runtime"


def node_host_command(session_id: str, state_dir: Path) -> list[str]:
    """The command line of a session's runtime node (``runtime:<sid>``)."""
    return [
        sys.executable,
        "-m",
        "argus",
        "node-host",
        "--node-id",
        f"runtime:{session_id}",
        "--display-name",
        f"runtime-{session_id}",
        "--state-dir",
        str(state_dir),
    ]


def node_host_environment(session_id: str, home: Path, link: GatewayLink) -> dict[str, str]:
    """The node-host's environment: the session token as its node token, nothing else secret."""
    env = runtime_environment(session_id, home, link)
    env["ARGUS_NODE_TOKEN"] = env["ARGUS_SESSION_TOKEN"]
    return env


async def supervise_node_host(
    session_id: str, home: Path, workspace: Path, link: GatewayLink, stop_timeout: float
) -> None:
    """Run the session's node-host beside its runtime until cancelled (restarted if it dies)."""
    await supervise(
        node_host_command(session_id, home / "node-host"),
        node_host_environment(session_id, home, link),
        workspace,
        home / "node-host.log",
        stop_timeout,
    )


class LocalRuntime(Runtime):
    """A child process reached through its stdin/stdout pipes."""

    def __init__(self, process: trio.Process, tail: StderrTail) -> None:
        self.process = process
        self.tail = tail
        self.info = {"pid": process.pid}
        assert process.stdin is not None and process.stdout is not None
        self._stdin = process.stdin
        self._stdout = process.stdout

    async def receive_some(self, max_bytes: int) -> bytes:
        """Read stdout; a broken pipe counts as EOF."""
        try:
            return await self._stdout.receive_some(max_bytes)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def send_all(self, data: bytes) -> None:
        """Write stdin; raises ``trio.BrokenResourceError`` when the child is gone."""
        try:
            await self._stdin.send_all(data)
        except trio.ClosedResourceError as exc:
            raise trio.BrokenResourceError("runtime stdin is closed") from exc

    async def wait_exit(self) -> ExitStatus:
        """Wait for the process and report code/signal with the stderr tail."""
        rc = await self.process.wait()
        with trio.move_on_after(1.0):
            await self.tail.eof.wait()  # the last stderr lines explain the exit
        code, sig = exit_code_and_signal(rc)
        return ExitStatus(code=code, signal=sig, stderr_tail=self.tail.text())


class LocalProvisioner(Provisioner):
    """Runs ``ARGUS_RUNTIME_CMD`` (or the demo runtime) as a child of the daemon."""

    mode = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.command = settings.runtime_cmd or demo_runtime_command()

    def describe(self) -> str:
        """Say which runtime new sessions run."""
        if self.settings.runtime_cmd is None:
            return "local (ARGUS_RUNTIME_CMD is unset: sessions run the bundled argus demo-runtime)"
        return f"local (runtime: sh -c {self.command!r})"

    def session_home(self, session_id: str) -> Path:
        """Per-session home directory (HOME of the runtime)."""
        return self.settings.home_host_path / "sessions" / session_id

    def workspace(self, session_id: str) -> tuple[Path | None, str | None]:
        """A local runtime sees the same paths as the gateway."""
        path = self.settings.workspace_host_path or self.session_home(session_id) / "workspace"
        return path, str(path)

    @asynccontextmanager
    async def open_runtime(self, session_id: str) -> AsyncIterator[Runtime]:
        """The session's runtime: under a detached bridge, or a plain child process."""
        if self.settings.local_detach and self.gateway is not None:
            async with open_bridged_runtime(self, session_id) as runtime:
                yield runtime
            return
        async with self._open_child(session_id) as runtime:
            yield runtime

    async def live_sessions(self, session_ids: list[str]) -> list[str]:
        """Sessions whose detached bridge is still running (to re-adopt at start-up)."""
        if not self.settings.local_detach:
            return []
        return [sid for sid in session_ids if await bridge_is_live(self, sid)]

    async def destroy(self, session_id: str, purge: bool) -> None:
        """Also remove a bridge socket kept outside the session home (under a long home)."""
        from .bridged import socket_path

        path = socket_path(self, session_id)
        if path.parent != self.session_home(session_id):
            await trio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))
        await super().destroy(session_id, purge)

    @asynccontextmanager
    async def _open_child(self, session_id: str) -> AsyncIterator[Runtime]:
        """Spawn the runtime; on exit stop it (stdin close, SIGTERM, SIGKILL)."""
        home = self.session_home(session_id)
        workspace = self.workspace(session_id)[0]
        assert workspace is not None

        def prepare() -> None:
            home.mkdir(parents=True, exist_ok=True, mode=0o700)
            workspace.mkdir(parents=True, exist_ok=True)

        try:
            await trio.to_thread.run_sync(prepare)
            process = await trio.lowlevel.open_process(
                ["/bin/sh", "-c", self.command],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=str(workspace),
                env=runtime_environment(session_id, home, self.gateway),
                start_new_session=True,
            )
        except OSError as exc:
            raise ProvisionError(f"cannot start runtime: {exc}") from exc
        log.info("runtime started session=%s pid=%s", session_id, process.pid)
        tail = StderrTail(session_id, self.settings.stderr_tail_bytes)
        try:
            async with trio.open_nursery() as nursery:
                assert process.stderr is not None
                nursery.start_soon(drain_into, process.stderr, tail)
                if self.settings.runtime_node and self.gateway is not None:
                    nursery.start_soon(
                        supervise_node_host,
                        session_id,
                        home,
                        workspace,
                        self.gateway,
                        self.settings.stop_timeout_s,
                    )
                try:
                    yield LocalRuntime(process, tail)
                finally:
                    with trio.CancelScope(shield=True):
                        await stop_process(process, self.settings.stop_timeout_s)
                    nursery.cancel_scope.cancel()
        finally:
            log.info(
                "runtime stopped session=%s pid=%s returncode=%s",
                session_id,
                process.pid,
                process.returncode,
            )

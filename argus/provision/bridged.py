"""Local runtimes under a detached ``argus bridge``, reached over a Unix socket.

The bridge is started through ``sh -c '... &'`` in a new session, so it is re-parented to
init at once: it does not die with the gateway and leaves no zombie. It listens on
``<session home>/bridge.sock`` (mode 0600) and writes ``bridge.json`` (pid, instance; no
token). A gateway that finds a live socket adopts the bridge instead of starting another,
so a restarted gateway picks up the running runtime, its turns and the output it produced
meanwhile. The bridge also supervises the session's node-host, so the runtime node lives
as long as the runtime.

Closing the runtime (the session's nursery ends) stops the bridge on ``DELETE`` or a
runtime exit, and leaves it running on a gateway shutdown (``keep_running_on_close``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from .base import ProvisionError, Runtime, runtime_environment
from .bridge_runtime import BridgeRuntime

if TYPE_CHECKING:
    from .local import LocalProvisioner

log = logging.getLogger(__name__)


# An AF_UNIX path holds at most 108 bytes on Linux, the terminating NUL included.
MAX_UNIX_PATH = 107
EXIT_POLL_S = 0.02


def socket_path(provisioner: LocalProvisioner, session_id: str) -> Path:
    """Where the session's bridge listens: a path that always fits AF_UNIX's limit.

    ``<session home>/bridge.sock`` when it fits; under a long home, a name hashed from the
    session home in a short private directory (``$XDG_RUNTIME_DIR/argus`` or
    ``/tmp/argus-<uid>``, mode 0700). The name depends only on the session home, so a
    restarted gateway finds the same socket.
    """
    natural = provisioner.session_home(session_id) / "bridge.sock"
    if len(bytes(natural)) <= MAX_UNIX_PATH:
        return natural
    digest = hashlib.sha256(bytes(natural)).hexdigest()[:24]
    return short_socket_dir() / f"{digest}.sock"


def short_socket_dir() -> Path:
    """A short directory only this user can enter, for sockets under a long home."""
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime_dir) / "argus" if runtime_dir else Path(f"/tmp/argus-{os.getuid()}")
    if len(bytes(base)) > 60:
        base = Path(f"/tmp/argus-{os.getuid()}")
    return base


def prepare_socket_dir(path: Path) -> None:
    """Create the socket's directory if needed; refuse one another user could control."""
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ProvisionError(f"unsafe bridge socket directory {directory} (not ours, or not 0700)")


async def _connect(path: Path) -> trio.SocketStream | None:
    try:
        return await trio.open_unix_socket(str(path))
    except OSError:
        return None


async def bridge_is_live(provisioner: LocalProvisioner, session_id: str) -> bool:
    """Whether a bridge answers on the session's socket."""
    stream = await _connect(socket_path(provisioner, session_id))
    if stream is None:
        return False
    await stream.aclose()
    return True


def bridge_command(provisioner: LocalProvisioner, session_id: str) -> list[str]:
    """The ``argus bridge`` command line of a session."""
    settings = provisioner.settings
    home = provisioner.session_home(session_id)
    cmd = [
        sys.executable,
        "-m",
        "argus",
        "bridge",
        "--listen",
        f"unix:{socket_path(provisioner, session_id)}",
        "--cmd",
        provisioner.command,
        "--stderr-log",
        str(home / "runtime-stderr.log"),
        "--pid-file",
        str(home / "bridge.json"),
        "--ring-bytes",
        str(settings.bridge_ring_bytes),
        "--line-limit",
        str(settings.jsonl_line_limit_bytes),
        "--stop-timeout-s",
        str(settings.stop_timeout_s),
    ]
    if settings.runtime_node:
        cmd += ["--node-id", f"runtime:{session_id}"]
    return cmd


async def _spawn(provisioner: LocalProvisioner, session_id: str, token: str) -> int | None:
    """Start the bridge detached; its pid (to notice an early exit), if the shell said."""
    home = provisioner.session_home(session_id)
    workspace = provisioner.workspace(session_id)[0]
    assert workspace is not None and provisioner.gateway is not None
    env = runtime_environment(session_id, home, provisioner.gateway)
    env["ARGUS_NODE_TOKEN"] = token
    env["ARGUS_NODE_STATE_DIR"] = str(home / "node-host")
    line = " ".join(shlex.quote(a) for a in bridge_command(provisioner, session_id))
    log_path = home / "bridge.log"
    # `sh -c 'cmd &'`: the shell exits at once and the bridge is re-parented to init.
    done = await trio.run_process(
        ["/bin/sh", "-c", f"{line} </dev/null >>{shlex.quote(str(log_path))} 2>&1 & echo $!"],
        cwd=str(workspace),
        env=env,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        capture_stdout=True,
    )
    text = done.stdout.decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _alive(pid: int | None) -> bool:
    """Whether the bridge process still exists (init reaps it once it exits)."""
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _log_tail(log_path: Path) -> str:
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


@asynccontextmanager
async def open_bridged_runtime(
    provisioner: LocalProvisioner, session_id: str
) -> AsyncIterator[Runtime]:
    """Adopt the session's bridge, or start one; close (stop/ack/leave) on exit."""
    settings = provisioner.settings
    link = provisioner.gateway
    assert link is not None
    token = link.session_env(session_id)["ARGUS_SESSION_TOKEN"]
    home = provisioner.session_home(session_id)
    path = socket_path(provisioner, session_id)
    stream = await _connect(path)
    if stream is None:
        workspace = provisioner.workspace(session_id)[0]
        assert workspace is not None

        def prepare() -> None:
            home.mkdir(parents=True, exist_ok=True, mode=0o700)
            workspace.mkdir(parents=True, exist_ok=True)
            if path.parent != home:
                prepare_socket_dir(path)

        try:
            await trio.to_thread.run_sync(prepare)
            pid = await _spawn(provisioner, session_id, token)
        except OSError as exc:
            raise ProvisionError(f"cannot start the runtime bridge: {exc}") from exc
        alive = True
        with trio.move_on_after(settings.connect_timeout_s):
            while stream is None and alive:
                await trio.sleep(EXIT_POLL_S)
                alive = _alive(pid)  # checked before the socket: no race with its exit
                stream = await _connect(path)
        if stream is None:
            log_path = home / "bridge.log"
            tail = await trio.to_thread.run_sync(_log_tail, log_path)
            what = "exited at start" if not alive else "did not come up"
            log.warning("runtime bridge %s session=%s: %s", what, session_id, tail)
            raise ProvisionError(f"the runtime bridge {what}: {tail} (see {log_path})")
        log.info("runtime bridge started session=%s", session_id)
    else:
        log.info("runtime bridge adopted session=%s", session_id)
    runtime = BridgeRuntime(stream, token, {"bridge": str(path)}, settings.jsonl_line_limit_bytes)
    try:
        yield runtime
    finally:
        await runtime.close()

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

import logging
import shlex
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


def socket_path(provisioner: LocalProvisioner, session_id: str) -> Path:
    """Where the session's bridge listens."""
    return provisioner.session_home(session_id) / "bridge.sock"


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
        f"unix:{home / 'bridge.sock'}",
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


async def _spawn(provisioner: LocalProvisioner, session_id: str, token: str) -> None:
    home = provisioner.session_home(session_id)
    workspace = provisioner.workspace(session_id)[0]
    assert workspace is not None and provisioner.gateway is not None
    env = runtime_environment(session_id, home, provisioner.gateway)
    env["ARGUS_NODE_TOKEN"] = token
    env["ARGUS_NODE_STATE_DIR"] = str(home / "node-host")
    line = " ".join(shlex.quote(a) for a in bridge_command(provisioner, session_id))
    log_path = home / "bridge.log"
    # `sh -c 'cmd &'`: the shell exits at once and the bridge is re-parented to init.
    await trio.run_process(
        ["/bin/sh", "-c", f"{line} </dev/null >>{shlex.quote(str(log_path))} 2>&1 &"],
        cwd=str(workspace),
        env=env,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )


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

        await trio.to_thread.run_sync(prepare)
        try:
            await _spawn(provisioner, session_id, token)
        except OSError as exc:
            raise ProvisionError(f"cannot start the runtime bridge: {exc}") from exc
        with trio.move_on_after(settings.connect_timeout_s):
            while stream is None:
                await trio.sleep(0.02)
                stream = await _connect(path)
        if stream is None:
            raise ProvisionError(f"the runtime bridge did not come up (see {home / 'bridge.log'})")
        log.info("runtime bridge started session=%s", session_id)
    else:
        log.info("runtime bridge adopted session=%s", session_id)
    runtime = BridgeRuntime(stream, token, {"bridge": str(path)}, settings.jsonl_line_limit_bytes)
    try:
        yield runtime
    finally:
        await runtime.close()

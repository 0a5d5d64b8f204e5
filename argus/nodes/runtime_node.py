"""Runtime nodes: an ``argus node-host`` beside each local session's runtime.

Why a separate small module: the provisioners (local today, the bridge and docker helpers
later) change how runtimes start, but the node beside them is the same everywhere: node id
``runtime:<sid>``, authenticated with the session's derived token, gateway URL in the env.
``node_host_command`` gives any provisioner that command line and environment;
``serve_runtime_node`` runs it for a local session, supervised by the session's nursery (it
is started when the runtime starts and cancelled when the runtime ends).

The admin token never appears here: the environment is the daemon's minus every ``ARGUS_*``
variable, plus the node's own settings.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import trio

from .host import safe_name

log = logging.getLogger(__name__)

RESTART_DELAY_S = 2.0
STOP_GRACE_S = 3.0


def node_host_command(
    *, session_id: str, url: str, token: str, state_dir: Path, python: str = sys.executable
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of the node-host for ``session_id``'s runtime."""
    argv = [python, "-m", "argus", "node-host"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
    env.update(
        ARGUS_NODE_WS_URL=url,
        ARGUS_NODE_TOKEN=token,
        ARGUS_NODE_ID=f"runtime:{session_id}",
        ARGUS_NODE_DISPLAY_NAME=f"runtime-{session_id}",
        ARGUS_SESSION_ID=session_id,
        ARGUS_NODE_STATE_DIR=str(state_dir),
    )
    return argv, env


class RuntimeNodes:
    """Starts runtime nodes for local sessions once the daemon knows its own URL."""

    def __init__(self, home: Path, workspace: Path | None, token_for: Callable[[str], str]) -> None:
        self.home = home
        self.workspace = workspace
        self.token_for = token_for
        self.url: str | None = None  # set by the daemon once hypercorn is bound

    async def serve_runtime_node(self, session_id: str) -> None:
        """Run (and restart on exit) the session's node-host until cancelled."""
        if self.url is None:
            return
        state_dir = self.home / "node-host" / safe_name(f"runtime:{session_id}")
        argv, env = node_host_command(
            session_id=session_id,
            url=self.url,
            token=self.token_for(session_id),
            state_dir=state_dir,
        )
        cwd = self.workspace if self.workspace is not None else None
        while True:
            process = await trio.lowlevel.open_process(
                argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, start_new_session=True
            )
            try:
                code = await process.wait()
            finally:
                if process.returncode is None:
                    process.terminate()
                    with trio.move_on_after(STOP_GRACE_S) as scope:
                        scope.shield = True
                        await process.wait()
                    if process.returncode is None:
                        process.kill()
            log.warning("runtime node of session=%s exited with %s; restarting", session_id, code)
            await trio.sleep(RESTART_DELAY_S)

"""Supervising a node-host process: run it, restart it with backoff when it dies.

Used by the gateway for plain local runtimes and by ``argus bridge`` for detached ones and
containers, so a runtime's node lives exactly as long as its runtime.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import trio

log = logging.getLogger(__name__)

BACKOFF_MIN_S, BACKOFF_MAX_S = 1.0, 30.0


async def supervise(
    cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path | None, stop_timeout: float
) -> None:
    """Run ``cmd`` until cancelled, restarting it (1 s doubling to 30 s) whenever it exits.

    Its stderr goes to ``log_path``, truncated at each start (bounded by one run's output).
    """
    import os

    from .local import stop_process

    cmd = [*cmd, "--parent-pid", str(os.getpid())]  # it exits if we are gone
    delay = BACKOFF_MIN_S
    while True:
        started = trio.current_time()
        out = None
        if log_path is not None:
            out = await trio.to_thread.run_sync(lambda: open(log_path, "wb"))
        try:
            process = await trio.lowlevel.open_process(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=out if out is not None else subprocess.DEVNULL,
                cwd=str(cwd),
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            log.warning("cannot start node-host: %s", exc)
            process = None
        finally:
            if out is not None:
                await trio.to_thread.run_sync(out.close)
        if process is not None:
            try:
                await process.wait()
            finally:
                with trio.CancelScope(shield=True):
                    await stop_process(process, stop_timeout)
            log.warning("node-host exited code=%s; restarting", process.returncode)
        if trio.current_time() - started > 30:
            delay = BACKOFF_MIN_S
        await trio.sleep(delay)
        delay = min(BACKOFF_MAX_S, delay * 2)

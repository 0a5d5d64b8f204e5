"""The codex TUI's start-up: from launching ``codex --remote`` to its first prompt.

What a user waits for each time they open their terminal UI on a remote agent. The real
TUI (0.169.0) runs in tmux, offline against the fake model server; the clock stops when its
prompt line ("Ask Codex to do anything") is on the screen. Three cases:

* ``direct``: ``codex app-server --listen ws://127.0.0.1:PORT``, already running;
* ``argus``: Argus serving ``codex app-server``, its runtime already running (a warm
  session: the everyday case, the agent keeps running between TUIs);
* ``argus cold``: the first TUI of a fresh gateway, which creates the default session and
  starts ``codex app-server`` while the TUI waits.

The screen is polled every 20 ms, which bounds the resolution. Medians of 5 runs (2 with
``--quick``). Skipped, with a line saying why, when codex or tmux is missing.
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from argus.testing import run_daemon

Row = dict[str, Any]
PROMPT = "Ask Codex to do anything"
POLL_S = 0.02


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def time_to_prompt(tmux: Any, name: str, argv: list[str], env: dict, cwd: str) -> float:
    """Seconds from starting the TUI to its prompt on screen; the TUI is then killed."""
    started = time.perf_counter()
    pane = await tmux.start(name, argv, env, cwd)
    with trio.fail_after(60):
        while PROMPT not in await pane.screen():
            await trio.sleep(POLL_S)
    elapsed = time.perf_counter() - started
    await tmux._tmux("kill-session", "-t", name)
    return elapsed


async def wait_listening(port: int) -> None:
    """Until something accepts TCP connections on 127.0.0.1:port."""
    with trio.fail_after(30):
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.05)
                continue
            await stream.aclose()
            return


async def run_all(quick: bool = False) -> list[Row]:
    """Measure the three cases; rows in seconds."""
    from tests.realpeer.codex_home import codex_process_env, find_codex, make_codex_home
    from tests.realpeer.fake_model import FakeModel
    from tests.realpeer.tui import TmuxServer

    codex = find_codex()
    if codex is None or shutil.which("tmux") is None:
        print("tui bench skipped: needs codex (.ci/run installs it) and tmux")
        return []
    runs = 2 if quick else 5
    rows: list[Row] = []
    tmux = TmuxServer()
    with tempfile.TemporaryDirectory(prefix="argus-bench-tui-") as tmp, FakeModel() as model:
        root = Path(tmp)
        codex_env = make_codex_home(root, model.base_url)
        tui_env = codex_process_env({**codex_env, "TERM": "xterm-256color"})
        try:
            # A session that outlives the measured ones: tmux exits when its last session
            # ends, and a new-session racing that exit fails.
            await tmux.start("keeper", ["sleep", "3600"], tui_env, tmp)
            # Direct: codex's own WebSocket listener.
            port = _free_port()
            server = await trio.lowlevel.open_process(
                [codex, "app-server", "--listen", f"ws://127.0.0.1:{port}"],
                env=codex_process_env(codex_env),
                cwd=tmp,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                await wait_listening(port)
                argv = [codex, "--remote", f"ws://127.0.0.1:{port}"]
                direct = [
                    await time_to_prompt(tmux, f"direct{i}", argv, tui_env, tmp)
                    for i in range(runs + 1)
                ][1:]  # the first run warms the app-server's caches, as Argus's cold run does
            finally:
                server.kill()
                await server.wait()
            rows.append(_row("direct (codex app-server --listen)", direct))

            # Through Argus: a fresh gateway (cold), then the warm session.
            daemon_env = {**codex_env, "ARGUS_RUNTIME_CMD": f"{codex} app-server"}
            port = _free_port()
            async with run_daemon(
                root / "argus-home", "--port", str(port), "--log-level", "warning", env=daemon_env
            ):
                argv = [codex, "--remote", f"ws://127.0.0.1:{port}"]
                cold = await time_to_prompt(tmux, "cold", argv, tui_env, tmp)
                warm = [
                    await time_to_prompt(tmux, f"argus{i}", argv, tui_env, tmp) for i in range(runs)
                ]
            rows.append(_row("through Argus (warm session)", warm))
            rows.append(_row("through Argus (cold: starts the runtime)", [cold]))
        finally:
            tmux.kill()
    return rows


def _row(case: str, values: list[float]) -> Row:
    return {"bench": "tui", "case": case, "value": statistics.median(values) * 1e3, "unit": "ms"}


def run(quick: bool = False) -> list[Row]:
    """Synchronous entry point for ``python -m bench``."""
    return trio.run(run_all, quick)


if __name__ == "__main__":
    for row in run():
        print(f"{row['case']:<44} {row['value']:8.0f} {row['unit']}")

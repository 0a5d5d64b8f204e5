"""Driving the real codex TUI in tmux: start it, type into it, read its screen.

Each ``TmuxServer`` is a private tmux server (``tmux -L <unique socket>``), so tests never
touch a developer's own tmux or another test's, and ``kill`` removes every pane it made.
Screens are read with ``capture-pane -J`` (wrapped lines joined) including scrollback, so a
long answer can be checked as one string.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import uuid
from collections.abc import Callable

import trio

SCREEN_POLL_S = 0.2


def tmux_available() -> bool:
    """Whether the ``tmux`` binary is on PATH (.ci/run installs it from Debian)."""
    return shutil.which("tmux") is not None


class TmuxServer:
    """A private tmux server for one test."""

    def __init__(self) -> None:
        self.socket = f"argus-test-{uuid.uuid4().hex[:10]}"

    async def _tmux(self, *args: str) -> str:
        result = await trio.run_process(
            ["tmux", "-L", self.socket, *args], capture_stdout=True, capture_stderr=True
        )
        return result.stdout.decode("utf-8", "replace")

    async def start(self, name: str, argv: list[str], env: dict[str, str], cwd: str) -> Pane:
        """Run ``argv`` in a new 160x50 window named ``name``; the pane stays after it exits."""
        command = " ".join(
            ["env", "-i", *(shlex.quote(f"{k}={v}") for k, v in env.items()), shlex.join(argv)]
        )
        await self._tmux(
            "new-session", "-d", "-s", name, "-x", "160", "-y", "50", "-c", cwd, command
        )
        await self._tmux("set-option", "-t", name, "remain-on-exit", "on")
        return Pane(self, name)

    def kill(self) -> None:
        """Stop the server and every program in it (blocking, for ``finally`` blocks)."""
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


class Pane:
    """One TUI in a tmux window."""

    def __init__(self, server: TmuxServer, name: str) -> None:
        self.server = server
        self.name = name

    async def screen(self) -> str:
        """The visible screen and its scrollback, wrapped lines joined."""
        return await self.server._tmux("capture-pane", "-p", "-J", "-S", "-500", "-t", self.name)

    async def type(self, text: str) -> None:
        """Type ``text`` literally, then press Enter."""
        await self.server._tmux("send-keys", "-t", self.name, "-l", text)
        await trio.sleep(0.3)  # the TUI treats a paste-speed Enter as part of the paste
        await self.server._tmux("send-keys", "-t", self.name, "Enter")

    async def press(self, key: str) -> None:
        """Press one key (tmux key name, e.g. ``y`` or ``Escape``)."""
        await self.server._tmux("send-keys", "-t", self.name, key)

    async def wait_for(self, check: Callable[[str], bool] | str, timeout: float = 60) -> str:
        """Poll the screen until ``check`` (a predicate, or text to find) holds; the screen.

        On timeout the last screen is in the error, which is what one needs to see.
        """
        predicate = (lambda s: check in s) if isinstance(check, str) else check
        screen = ""
        with trio.move_on_after(timeout):
            while True:
                screen = await self.screen()
                if predicate(screen):
                    return screen
                await trio.sleep(SCREEN_POLL_S)
        raise AssertionError(f"timed out waiting for {check!r} on the TUI; screen:\n{screen}")

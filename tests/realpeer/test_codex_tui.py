"""The real codex TUI (``codex --remote``) in tmux against Argus serving ``codex app-server``.

What a user of ``codex --remote ws://server:8080`` notices: the prompt they type is answered
on their screen; the gateway dying mid-turn (``kill -9``) costs them a "Reconnecting" line,
not the answer; and a second terminal on the same (default) session lists the first one's
conversation. Everything is offline: codex talks to the fake model server on 127.0.0.1.
"""

from __future__ import annotations

import re
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from argus.testing import run_daemon
from tests.realpeer.codex_home import codex_process_env, make_codex_home
from tests.realpeer.conftest import require
from tests.realpeer.fake_model import FakeModel
from tests.realpeer.tui import TmuxServer, tmux_available
from tests.tls_cert import make_self_signed

pytestmark = pytest.mark.codex

PROMPT_READY = "Ask Codex to do anything"


@pytest.fixture
def tmux() -> Iterator[TmuxServer]:
    """A private tmux server, killed (with every TUI in it) after the test."""
    if not tmux_available():
        require("tmux not installed: run .ci/run or apt-get install tmux")
    server = TmuxServer()
    try:
        yield server
    finally:
        server.kill()


def free_port() -> int:
    """A port nothing listens on now (the gateway must come back on the same one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def flat(screen: str) -> str:
    """The screen with all whitespace runs as one space (answers wrap across lines)."""
    return re.sub(r"\s+", " ", screen)


class Setup:
    """Env of the daemon and of the TUIs for one test."""

    def __init__(self, tmp_path: Path, codex_bin: str, fake_model: FakeModel) -> None:
        self.codex_bin = codex_bin
        self.home = tmp_path / "argus-home"
        self.port = free_port()
        codex_env = make_codex_home(tmp_path, fake_model.base_url)
        self.daemon_env = {**codex_env, "ARGUS_RUNTIME_CMD": f"{codex_bin} app-server"}
        self.tui_env = codex_process_env({**codex_env, "TERM": "xterm-256color"})
        self.cwd = str(tmp_path)

    def daemon(self, *args: str, **env: str):
        """``argus serve`` on the fixed port (a restart must come back where the TUI looks)."""
        return run_daemon(
            self.home, "--port", str(self.port), *args, env={**self.daemon_env, **env}
        )

    def tui(
        self,
        tmux: TmuxServer,
        name: str,
        *extra: str,
        scheme: str = "ws",
        env: dict[str, str] | None = None,
    ):
        """Start ``codex [extra] --remote ws://127.0.0.1:PORT`` in tmux."""
        argv = [self.codex_bin, *extra, "--remote", f"{scheme}://127.0.0.1:{self.port}"]
        return tmux.start(name, argv, {**self.tui_env, **(env or {})}, self.cwd)


async def wait_requests(fake_model: FakeModel, count: int, timeout: float = 30) -> None:
    """Until the fake model has served ``count`` requests (the title request comes late)."""
    with trio.fail_after(timeout):
        while len(fake_model.requests) < count:
            await trio.sleep(0.1)


async def test_prompt_answered_and_second_tui_lists_the_thread(
    tmp_path: Path, codex_bin: str, fake_model: FakeModel, tmux: TmuxServer
) -> None:
    setup = Setup(tmp_path, codex_bin, fake_model)
    answer = "Tomatoes like sun, basil likes company, and weeds like neither of us."
    with trio.fail_after(180):
        async with setup.daemon() as daemon:
            first = await setup.tui(tmux, "first")
            await first.wait_for(PROMPT_READY)
            fake_model.queue_text(answer, chunks=6)
            await first.type("what should I plant in the garden party bed")
            screen = await first.wait_for(lambda s: answer in flat(s))
            assert "what should I plant in the garden party bed" in screen
            # It really went through Argus: the default session, with the TUI attached.
            async with httpx.AsyncClient(base_url=daemon.base_url) as http:
                sessions = (await http.get("/sessions")).json()["sessions"]
            default = next(s for s in sessions if s["default"])
            assert default["sessionId"] == "default" and default["clients"] >= 1
            await wait_requests(fake_model, 2)  # the title request of the first turn

            second = await setup.tui(tmux, "second", "resume")
            listing = await second.wait_for("garden party bed")
            assert "Resume a previous session" in listing


async def test_gateway_killed_mid_turn_tui_reconnects_with_the_whole_answer(
    tmp_path: Path, codex_bin: str, fake_model: FakeModel, tmux: TmuxServer
) -> None:
    setup = Setup(tmp_path, codex_bin, fake_model)
    words = [f"word{i:02d}" for i in range(40)] + ["END"]
    with trio.fail_after(240):
        async with setup.daemon() as daemon:
            tui = await setup.tui(tmux, "tui")
            await tui.wait_for(PROMPT_READY)
            # A first turn, so the thread has a rollout (a thread with no turn cannot be
            # resumed) and the title request is out of the way.
            await tui.type("warm up")
            await tui.wait_for(lambda s: "warm up" in s and s.count(PROMPT_READY) >= 1)
            await wait_requests(fake_model, 2)
            fake_model.queue_text(" ".join(words), chunks=len(words), delay=0.15)
            await tui.type("stream slowly")
            await tui.wait_for("word03")
            daemon.process.send_signal(signal.SIGKILL)
            await daemon.process.wait()
            await tui.wait_for("Reconnecting")
            async with setup.daemon():
                # While it still streams, the words before the reconnect are there too
                # (Argus gives the open message back after the TUI's thread/items/list).
                screen = flat(await tui.wait_for(lambda s: "word3" in s or "END" in s))
                shown = max(i for i, word in enumerate(words) if word in screen)
                assert " ".join(words[: shown + 1]) in screen, screen
                # The turn ends ("Worked for" under its answer) with every word on screen.
                screen = await tui.wait_for(
                    lambda s: flat(s).count("Worked for") >= 2 and " ".join(words) in flat(s),
                    timeout=120,
                )
                assert screen.count("word05") == 1  # nothing shown twice


async def test_tui_over_wss_with_a_self_signed_certificate_and_a_token(
    tmp_path: Path, codex_bin: str, fake_model: FakeModel, tmux: TmuxServer
) -> None:
    # What docs/operations.md tells a user: a self-signed certificate (CA:FALSE), trusted
    # by the TUI through SSL_CERT_FILE, and the token handed over by environment variable.
    setup = Setup(tmp_path, codex_bin, fake_model)
    cert, key = make_self_signed(tmp_path / "tls")
    token = "tui-over-wss-token"
    answer = "Answered over TLS, with a token, through Argus."
    with trio.fail_after(120):
        async with setup.daemon("--certfile", str(cert), "--keyfile", str(key), ARGUS_TOKEN=token):
            tui = await setup.tui(
                tmux,
                "wss",
                "--remote-auth-token-env",
                "ARGUS_TOKEN",
                scheme="wss",
                env={"SSL_CERT_FILE": str(cert), "ARGUS_TOKEN": token},
            )
            await tui.wait_for(PROMPT_READY)
            fake_model.queue_text(answer, chunks=4)
            await tui.type("are you encrypted")
            await tui.wait_for(lambda s: answer in flat(s))


async def test_tui_approves_a_command_through_argus(
    tmp_path: Path, codex_bin: str, fake_model: FakeModel, tmux: TmuxServer
) -> None:
    # The runtime's approval request reaches the TUI through Argus, the user's "yes" goes
    # back, and the command really runs in the session's workspace.
    setup = Setup(tmp_path, codex_bin, fake_model)
    with trio.fail_after(180):
        async with setup.daemon():
            tui = await setup.tui(tmux, "tui")
            await tui.wait_for(PROMPT_READY)
            await tui.type("warm up")
            await wait_requests(fake_model, 2)
            fake_model.queue_exec_command(
                "touch approved-through-argus.txt",
                sandbox_permissions="require_escalated",
                justification="the test wants a file",
            )
            await tui.type("make the file please")
            await tui.wait_for(lambda s: "approved-through-argus.txt" in s and "Yes" in s)
            await tui.press("y")
            await tui.wait_for("You approved codex to run touch approved-through-argus.txt")
            await tui.wait_for("Ran touch approved-through-argus.txt")
            workspace = setup.home / "sessions" / "default" / "workspace"
            assert (workspace / "approved-through-argus.txt").exists()


async def test_second_tui_opening_a_streaming_thread_sees_the_whole_message(
    tmp_path: Path, codex_bin: str, fake_model: FakeModel, tmux: TmuxServer
) -> None:
    setup = Setup(tmp_path, codex_bin, fake_model)
    words = [f"part{i:02d}" for i in range(50)] + ["FIN"]
    with trio.fail_after(180):
        async with setup.daemon():
            first = await setup.tui(tmux, "first")
            await first.wait_for(PROMPT_READY)
            await first.type("warm up the thread")
            await wait_requests(fake_model, 2)
            fake_model.queue_text(" ".join(words), chunks=len(words), delay=0.15)
            await first.type("tell a long story")
            await first.wait_for("part05")
            second = await setup.tui(tmux, "second", "resume")
            await second.wait_for("warm up the thread")
            await second.press("Enter")  # the newest thread: the one streaming
            screen = flat(await second.wait_for(lambda s: "part4" in s or "FIN" in s))
            shown = max(i for i, word in enumerate(words) if word in screen)
            assert " ".join(words[: shown + 1]) in screen, screen
            assert screen.count("part03") == 1

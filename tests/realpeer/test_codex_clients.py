"""``argus send`` and ``argus.client`` with the real ``codex app-server`` behind Argus.

The same commands a user runs against the demo runtime, against codex (offline, the fake
model): the reply is the model's text, and an approval codex asks for is answered.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from argus.client import open_session
from argus.testing import run_daemon
from tests.realpeer.codex_home import make_codex_home
from tests.realpeer.fake_model import FakeModel

pytestmark = pytest.mark.codex


def codex_daemon(tmp_path: Path, codex_bin: str, fake_model: FakeModel):
    env = make_codex_home(tmp_path, fake_model.base_url)
    env["ARGUS_RUNTIME_CMD"] = f"{codex_bin} app-server"
    return run_daemon(tmp_path / "home", env=env)


async def test_argus_send_prints_the_models_reply(
    tmp_path: Path, codex_bin: str, fake_model: FakeModel
) -> None:
    reply = "Hello from codex, through Argus, on your terminal."
    with trio.fail_after(120):
        async with codex_daemon(tmp_path, codex_bin, fake_model) as daemon:
            fake_model.queue_text(reply, chunks=5)
            env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
            env["ARGUS_URL"] = daemon.base_url
            done = await trio.run_process(
                [sys.executable, "-m", "argus", "send", "hello"],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                env=env,
            )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == reply + "\n"


async def test_library_answers_a_codex_approval(
    tmp_path: Path, codex_bin: str, fake_model: FakeModel
) -> None:
    asked: list[str] = []

    async def approve(method: str, params: dict[str, Any]) -> dict[str, Any]:
        asked.append(method)
        return {"decision": "accept"}

    with trio.fail_after(120):
        async with codex_daemon(tmp_path, codex_bin, fake_model) as daemon:
            async with open_session(daemon.base_url, on_approval=approve) as session:
                started = await session.request(
                    "thread/start", {"approvalPolicy": "untrusted", "sandbox": "workspace-write"}
                )
                thread = started["thread"]["id"]
                cwd = Path(started["cwd"])
                fake_model.queue_exec_command("touch via-library.txt")
                fake_model.queue_text("touched it", chunks=2)
                result = await session.run_turn(thread, "touch a file please")
    assert result.ok and result.text == "touched it"
    assert asked == ["item/commandExecution/requestApproval"]
    assert (cwd / "via-library.txt").exists()

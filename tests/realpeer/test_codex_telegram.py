"""The whole Telegram path with the real ``codex app-server`` and the fake model.

A user writes to the bot (the Bot API stand-in on 127.0.0.1), codex answers through the
gateway, the reply arrives in the chat; then codex asks to run a command, the approval
appears in the chat with buttons, the button press runs it, and the final answer arrives.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from argus.testing import run_daemon
from tests.realpeer.codex_home import make_codex_home
from tests.realpeer.fake_model import FakeModel
from tests.telegram.conftest import OWNER, tg_env, wait_for
from tests.telegram.standin import BotApiStandIn

pytestmark = pytest.mark.codex


async def test_telegram_chat_with_codex(
    tmp_path: Path, codex_bin: str, fake_model: FakeModel, nursery: trio.Nursery
) -> None:
    api = BotApiStandIn()
    api.add_chat(OWNER, "private")
    await nursery.start(api.serve)
    env = make_codex_home(tmp_path, fake_model.base_url)
    env["ARGUS_RUNTIME_CMD"] = f"{codex_bin} app-server"
    env["ARGUS_AUTOMATION_APPROVAL_POLICY"] = "untrusted"
    env.update(tg_env(api, ARGUS_TELEGRAM_STREAM="off"))
    owner = api.user(OWNER, "owner")

    def replies() -> list[str]:
        return [m.text for m in api.in_chat(OWNER) if not m.reply_markup]

    fake_model.queue_text("**Hello** from codex", chunks=4)
    with trio.fail_after(240):
        async with run_daemon(tmp_path / "home", env=env) as daemon:
            await wait_for(lambda: api.active_polls > 0, 30)
            api.text(OWNER, owner, "say hello")
            await wait_for(replies, 120)
            first = api.in_chat(OWNER)[0]
            assert first.text == "Hello from codex" and first.html == "<b>Hello</b> from codex"
            assert "say hello" in str(fake_model.requests[-1]["input"])
            fake_model.queue_exec_command("touch approved.txt && echo hi-from-shell")
            fake_model.queue_text("ran it", chunks=2)
            api.text(OWNER, owner, "please touch a file")
            prompt = (
                await wait_for(lambda: [m for m in api.in_chat(OWNER) if m.reply_markup], 120)
            )[0]
            assert "touch approved.txt" in prompt.text
            assert not list((tmp_path / "home").rglob("approved.txt")), "ran before approval"
            buttons = [row[0] for row in prompt.reply_markup["inline_keyboard"]]
            accept = next(b for b in buttons if b["text"].endswith("Approve"))
            api.press(owner, prompt, accept["callback_data"])
            await wait_for(lambda: "ran it" in replies(), 120)
            assert list((tmp_path / "home").rglob("approved.txt"))
            await wait_for(lambda: "→ accept by" in prompt.text, 30)
            assert "token" not in daemon.log_text.lower() or api.token not in daemon.log_text

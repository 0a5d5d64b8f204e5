"""``argus import-state`` with the original bot's state.json, and the store's exactly-once rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import trio

from argus.store import telegram_records as tgr
from argus.store.db import open_store
from tests.harness import daemon_env
from tests.telegram.conftest import GROUP, OWNER, wait_for
from tests.telegram.standin import BotApiStandIn


async def test_bot_state_v2_is_imported_and_used(
    api: BotApiStandIn, gateway, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    state = {
        "version": 2,
        "defaultSessionId": "ab12cd34ef56",
        "lastUpdateId": api.next_update_id + 1,
        "threads": {
            f"{GROUP}": {"threadId": "thr_gone"},
            f"{OWNER}": {"threadId": "thr_private"},
        },
        "lastActiveByThread": {"thr_gone": {"chatKey": f"{GROUP}", "atMs": 1732500000000}},
    }
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state, indent=2) + "\n")
    done = await trio.run_process(
        [sys.executable, "-m", "argus", "import-state", str(path)],
        env=daemon_env(home),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["imported"] == {
        "defaultSession": 1,
        "lastUpdateId": 1,
        "chats": 1,
        "bindings": 1,
    }
    assert any("private chat" in w for w in summary["warnings"])
    bob = api.user(5, "bob", "Bob")
    api.text(GROUP, bob, "@argus_test_bot /quiet already handled by the old bot")
    async with gateway():
        api.text(GROUP, bob, "/where@argus_test_bot")
        api.text(GROUP, bob, "@argus_test_bot hello again")
        await wait_for(lambda: len(api.in_chat(GROUP)) >= 2, 30)
        where, echo = (m.text for m in api.in_chat(GROUP))
        assert "sessionId: ab12cd34ef56" in where and "threadId: thr_gone" in where
        assert "hello again" in echo  # the gone thread was recreated and remapped
        assert "already handled" not in echo
        api.text(GROUP, bob, "/where@argus_test_bot")
        await wait_for(lambda: len(api.in_chat(GROUP)) >= 3)
        assert "thr_gone" not in api.in_chat(GROUP)[2].text


async def test_page_commit_is_exactly_once_and_per_bot(tmp_path: Path) -> None:
    store = await open_store(tmp_path, inline=True)
    try:
        assert await store.run(tgr.get_offset, 1) is None
        page = [(10, "5", {"kind": "message", "text": "a"}), (11, None, None)]
        assert await store.run(tgr.record_updates, 1, page, 12, 0) == 1
        assert await store.run(tgr.record_updates, 1, page, 12, 0) == 0  # ledger: no repeat
        assert await store.run(tgr.get_offset, 1) == 12
        await store.run(tgr.set_offset, 1, 3, 0)
        assert await store.run(tgr.get_offset, 1) == 12  # never backwards
        assert await store.run(tgr.get_offset, 2) is None  # a new token starts clean
        row = (await store.run(tgr.due_inbox, 10**15))[0]
        await store.run(
            lambda c: c.execute("INSERT INTO sessions VALUES ('s', 'local', 0, NULL, 0)")
        )
        args = (row.id, "s", "t", "a", "5", None, 0, 100)
        assert await store.run(tgr.enqueue_from_inbox, *args) is not None
        assert await store.run(tgr.enqueue_from_inbox, *args) is None  # taken once
        assert await store.run(tgr.due_inbox, 10**15) == []
        first = await store.run(tgr.add_outbox, "turn:s:T:0000", "5", "text", {"plain": "x"}, 0)
        assert first is not None
        assert (
            await store.run(tgr.add_outbox, "turn:s:T:0000", "5", "text", {"plain": "x"}, 0) is None
        )
        assert await store.run(tgr.has_dedupe, "turn:s:T:")
        await store.run(tgr.mark_outbox, first, "sending", 0)
        assert await store.run(tgr.recover_outbox, 0) == 1
        assert [r.state for r in await store.run(tgr.due_outbox, 10)] == ["unknown"]
    finally:
        await store.aclose()


def test_one_poller_per_token_lock(tmp_path: Path) -> None:
    from argus.channels.telegram.poller import try_lock

    lock = tmp_path / "telegram-1.lock"
    fd = try_lock(lock)
    assert fd is not None
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from argus.channels.telegram.poller import try_lock;"
            f"sys.exit(0 if try_lock(__import__('pathlib').Path({str(lock)!r})) is None else 1)",
        ],
        check=False,
    )
    assert other.returncode == 0  # another process cannot take it
    import os

    os.close(fd)

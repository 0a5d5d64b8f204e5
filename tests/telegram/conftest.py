"""Fixtures: the Bot API stand-in and a gateway pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.harness import Daemon, run_daemon
from tests.telegram.standin import BotApiStandIn

OWNER = 111
FRIEND = 222
STRANGER = 999
GROUP = -100500


@pytest.fixture
async def api(nursery: trio.Nursery) -> BotApiStandIn:
    """A stand-in with the owner's, a friend's and a stranger's private chats and a group."""
    standin = BotApiStandIn()
    for chat in (OWNER, FRIEND, STRANGER):
        standin.add_chat(chat, "private")
    standin.add_chat(GROUP, "supergroup", topics={1, 7})
    await nursery.start(standin.serve)
    return standin


def tg_env(api: BotApiStandIn, **extra: str) -> dict[str, str]:
    """The environment of a gateway with the channel on, talking to ``api``."""
    env = {
        "ARGUS_TELEGRAM_BOT_TOKEN": api.token,
        "ARGUS_TELEGRAM_API_URL": api.url,
        "ARGUS_TELEGRAM_ALLOW": f"{OWNER},@friend",
        "ARGUS_TELEGRAM_ALLOW_CHATS": str(GROUP),
        "ARGUS_TELEGRAM_POLL_TIMEOUT_S": "50",
        "ARGUS_TELEGRAM_CHAT_INTERVAL_S": "0.05",
    }
    env.update(extra)
    return env


@pytest.fixture
def gateway(tmp_path: Path, api: BotApiStandIn) -> Callable[..., Any]:
    """``async with gateway(**env) as d``: a daemon with the channel on (same home each time)."""
    home = tmp_path / "home"

    @asynccontextmanager
    async def start(**env: str) -> AsyncIterator[Daemon]:
        async with run_daemon(home, env=tg_env(api, **env)) as daemon:
            try:
                await wait_for(lambda: api.active_polls > 0, what="the gateway's long poll")
                yield daemon
            except BaseException:
                print("---- gateway log ----\n" + daemon.log_text[-20000:])
                raise

    return start


async def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll ``predicate`` until it is truthy (fails the test after ``timeout``)."""
    with trio.fail_after(timeout):
        while True:
            value = predicate()
            if value:
                return value
            await trio.sleep(0.02)

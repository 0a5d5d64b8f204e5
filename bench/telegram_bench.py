"""Telegram channel: replies under random kill -9, and turn/completed -> sendMessage delay.

``python -m bench --only telegram``. Against the Bot API stand-in (tests/telegram/standin.py)
on 127.0.0.1, with the bundled demo runtime under detached bridges:

* chaos: 200 random ``kill -9`` of the gateway (at 0.05-1 s after each start) while four
  users write 600 messages; afterwards every message must have exactly one reply. Reports
  lost replies, silent duplicates (two unmarked replies to one message) and replies marked
  as possible repeats (a send cut by the kill, docs/telegram.md).
* delay: a /ws client attached to the default session notes when ``turn/completed``
  arrives; the stand-in notes when the reply's ``sendMessage`` arrives. p50/p99 of the
  difference over ``TURNS`` turns (one message every 50 ms from two users).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from argus.testing import kill_bridges
from tests.telegram.chaos import _drain, run_chaos, start_gateway
from tests.telegram.conftest import tg_env
from tests.telegram.standin import BotApiStandIn

Row = dict[str, Any]
USERS = [111, 112, 113, 114]


async def chaos(kills: int, messages: int) -> list[Row]:
    """The kill -9 run."""
    api = BotApiStandIn()
    for user in USERS:
        api.add_chat(user)
    async with trio.open_nursery() as nursery:
        await nursery.start(api.serve)
        with tempfile.TemporaryDirectory() as tmp:
            env = tg_env(api, ARGUS_TELEGRAM_ALLOW=",".join(map(str, USERS)))
            report = await run_chaos(
                api,
                Path(tmp) / "home",
                env,
                USERS,
                messages=messages,
                kills=kills,
                seed=12,
                max_up_s=1.0,
                settle_s=300,
                max_gap_s=0.8,
            )
        nursery.cancel_scope.cancel()
    print("telegram chaos:", report.line(), file=sys.stderr)
    case = f"{report.kills} kill -9s, {report.messages} msgs"

    def row(what: str, value: int) -> Row:
        return {"bench": "telegram", "case": f"{what} ({case})", "value": value, "unit": "replies"}

    return [
        row("lost replies", len(report.lost)),
        row("silent duplicate replies", len(report.silent_duplicates)),
        row("marked possible repeats", report.marked),
    ]


async def delay(turns: int) -> list[Row]:
    """p50/p99 of turn/completed (seen on /ws) -> sendMessage (seen by the stand-in)."""
    api = BotApiStandIn()
    users = USERS[:2]
    for user in users:
        api.add_chat(user)
    sent_at: dict[str, float] = {}
    api.store_hook = lambda m: sent_at.setdefault(m.text.strip(), trio.current_time())
    completed_at: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        async with trio.open_nursery() as nursery:
            await nursery.start(api.serve)
            env = tg_env(
                api, ARGUS_TELEGRAM_ALLOW=",".join(map(str, users)), ARGUS_TELEGRAM_STREAM="off"
            )
            process = await start_gateway(home, env)
            nursery.start_soon(_drain, process, [])
            try:
                with trio.fail_after(30):
                    while api.active_polls == 0:
                        await trio.sleep(0.01)
                api.text(users[0], api.user(users[0]), "/quiet warm-up")
                with trio.fail_after(30):
                    while "warm-up" not in sent_at:
                        await trio.sleep(0.01)
                async with httpx.AsyncClient(base_url=process.url) as http:  # type: ignore[attr-defined]
                    session_id = (await http.get("/sessions")).json()["sessions"][0]["sessionId"]
                ws_url = "ws" + process.url[4:] + f"/ws?session={session_id}"  # type: ignore[attr-defined]
                async with open_websocket_url(ws_url, message_queue_size=100_000) as ws:
                    await ws.get_message()

                    async def watch() -> None:
                        while True:
                            try:
                                msg = json.loads(await ws.get_message())
                            except ConnectionClosed:
                                return
                            if msg.get("method") == "turn/completed":
                                items = msg["params"]["turn"].get("items") or []
                                text = (items[-1].get("text") or "").strip() if items else ""
                                completed_at.setdefault(text, trio.current_time())

                    nursery.start_soon(watch)
                    for n in range(turns):
                        user = users[n % 2]
                        api.text(user, api.user(user), f"/quiet d-{n}")
                        await trio.sleep(0.05)
                    with trio.move_on_after(60):
                        while not all(f"d-{n}" in sent_at for n in range(turns)):
                            await trio.sleep(0.05)
            finally:
                process.kill()
                await process.wait()
                await trio.to_thread.run_sync(kill_bridges, home)
                nursery.cancel_scope.cancel()
    delays = sorted(
        (sent_at[t] - completed_at[t]) * 1000
        for t in (f"d-{n}" for n in range(turns))
        if t in sent_at and t in completed_at
    )
    if not delays:
        return []
    p50 = statistics.median(delays)
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    return [
        {
            "bench": "telegram",
            "case": f"turn/completed -> sendMessage p50 ({len(delays)} turns)",
            "value": p50,
            "unit": "ms",
        },
        {
            "bench": "telegram",
            "case": f"turn/completed -> sendMessage p99 ({len(delays)} turns)",
            "value": p99,
            "unit": "ms",
        },
    ]


async def run_all(quick: bool) -> list[Row]:
    """Both measurements."""
    rows = await delay(60 if quick else 200)
    rows += await chaos(20 if quick else 200, 80 if quick else 600)
    return rows


def run(quick: bool = False) -> list[Row]:
    """Synchronous entry point."""
    return trio.run(run_all, quick)

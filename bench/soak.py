"""Soak: clients that disconnect at random points must still see every delta exactly once.

``python -m bench.soak [--long] [--seed N]`` (also part of ``make bench``). Several sessions
stream long turns through the default mode (a bridged local demo runtime). Per session a
*driver* client starts turn after turn and never disconnects; *watcher* clients (half with
coalescing, half with ``coalesce=0``) read a random number of messages, drop the connection
(half of the time abruptly, without a close frame), wait a random moment and resume with
``since=<last argusSeq>``. Turns alternate between bursts (``/stream``) and paced deltas
(``/slow``), so disconnects land both in a backlog and in a live stream.

Each watcher checks, per agent message, that the concatenation of the deltas it received
equals the runtime's own text (``item/completed`` carries it), that ``argusSeq`` only ever
increases (no duplicate, no reordering) and that no ``argus/replay/gap`` came. The driver
keeps starting turns until the watchers together disconnected ``target`` times.

The same functions run shortened in ``tests/integration/test_soak.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from argus.testing import Daemon, run_daemon
from bench.rawws import RawWs, WsClosed, port_of

TIMEOUT_S = 60.0
MAX_TURNS_AHEAD = 2


@dataclass
class SoakStats:
    """What the watchers saw, summed over all of them."""

    disconnects: int = 0
    abrupt: int = 0
    lagging_closed: int = 0  # closed by the daemon with 1013 (too slow), then resumed
    merged: int = 0  # merged deltas received (coalescing watchers only)
    messages: int = 0
    items_checked: int = 0
    items_lost: int = 0  # an item whose text differs from the runtime's, or never completed
    duplicates: int = 0  # a message whose argusSeq was not above the last one
    gaps: int = 0
    turns: int = 0
    clients: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """No delta lost, duplicated or reordered."""
        return not (self.items_lost or self.duplicates or self.gaps or self.problems)


class ItemTexts:
    """Delta text per item, and the text the runtime reported when the item completed."""

    def __init__(self) -> None:
        self.deltas: dict[str, list[str]] = {}
        self.final: dict[str, str] = {}
        self.turns_done: set[str] = set()

    def feed(self, msg: dict[str, Any]) -> None:
        """Account for one message."""
        method = msg.get("method")
        params = msg.get("params") or {}
        if method == "item/agentMessage/delta":
            self.deltas.setdefault(params["itemId"], []).append(params["delta"])
        elif method == "item/completed":
            item = params.get("item") or {}
            if item.get("type") == "agentMessage":
                self.final[item["id"]] = item.get("text", "")
        elif method == "turn/completed":
            self.turns_done.add(params["turn"]["id"])

    def lost_items(self) -> list[str]:
        """Items whose received text is not the runtime's text."""
        return [
            item_id
            for item_id, text in self.final.items()
            if "".join(self.deltas.get(item_id, ())) != text
        ]


async def watcher(
    daemon: Daemon,
    session_id: str,
    coalesce: bool,
    rng: random.Random,
    stats: SoakStats,
    finished: trio.Event,
    turns_started: list[str],
    max_burst: int,
    progress: list[ItemTexts],
) -> None:
    """Read, drop, resume, until every turn the driver started has completed here."""
    texts = ItemTexts()
    progress.append(texts)
    last_seq = 0
    stats.clients += 1
    while not (finished.is_set() and set(turns_started) <= texts.turns_done):
        budget = rng.randint(1, max_burst)
        target = f"/ws?session={session_id}&since={last_seq}&coalesce={int(coalesce)}"
        abrupt = rng.random() < 0.5
        ws = await RawWs.connect(port_of(daemon), target)
        try:
            first = json.loads(await ws.recv_text())
            assert first["method"] == "argus/session", first
            while budget > 0:
                if finished.is_set() and set(turns_started) <= texts.turns_done:
                    break
                with trio.move_on_after(0.2):
                    msg = json.loads(await ws.recv_text())
                    budget -= 1
                    stats.messages += 1
                    seq = msg.get("argusSeq")
                    if msg.get("method") == "argus/replay/gap":
                        stats.gaps += 1
                    if "argusSeqFrom" in msg:
                        stats.merged += 1
                        if not coalesce:
                            stats.problems.append("a coalesce=0 client got a merged delta")
                    if seq is not None:
                        if msg.get("argusSeqFrom", seq) <= last_seq:
                            stats.duplicates += 1
                            continue
                        last_seq = seq
                    texts.feed(msg)
        except WsClosed as exc:
            await ws.abort()
            if exc.code != 1013:
                stats.problems.append(f"watcher closed by the server: {exc}")
                return
            # Too slow for the daemon (it never waits for a client): resume like any other
            # disconnect, from the last message this watcher processed.
            stats.lagging_closed += 1
            continue
        stats.disconnects += 1
        if abrupt:
            stats.abrupt += 1
            await ws.abort()
        else:
            await ws.close()
        await trio.sleep(rng.random() * 0.005)
    lost = texts.lost_items()
    stats.items_checked += len(texts.final)
    stats.items_lost += len(lost)
    missing = set(turns_started) - texts.turns_done
    if missing:
        stats.problems.append(f"turns never completed for a watcher: {sorted(missing)}")


async def driver(
    daemon: Daemon,
    session_id_box: list[str],
    ready: trio.Event,
    finished: trio.Event,
    turns_started: list[str],
    stats: SoakStats,
    target: int,
    deltas: int,
    rng: random.Random,
    progress: list[ItemTexts],
) -> None:
    """Create a session, then run turns until the watchers disconnected ``target`` times."""
    ws = await RawWs.connect(port_of(daemon), "/ws?seq=1")
    try:
        first = json.loads(await ws.recv_text())
        session_id_box.append(first["params"]["id"])
        texts = ItemTexts()
        ids = iter(range(1, 1 << 30))

        async def request(method: str, params: dict[str, Any]) -> dict[str, Any]:
            req_id = next(ids)
            await ws.send_text(json.dumps({"id": req_id, "method": method, "params": params}))
            while True:
                msg = json.loads(await ws.recv_text())
                texts.feed(msg)
                if msg.get("id") == req_id and "method" not in msg:
                    return msg

        await request("initialize", {"clientInfo": {"name": "soak", "version": "1"}})
        await ws.send_text(json.dumps({"method": "initialized"}))
        thread = (await request("thread/start", {}))["result"]["thread"]["id"]
        ready.set()
        turn_no = 0
        while stats.disconnects < target:
            # Watchers may fall behind (and be closed with 1013), but at most
            # MAX_TURNS_AHEAD turns: the soak measures resumption, not an endless backlog.
            while any(len(t.turns_done) < turn_no - MAX_TURNS_AHEAD for t in progress):
                await trio.sleep(0.01)
            turn_no += 1
            text = f"/stream {deltas} 12" if turn_no % 2 else f"/slow {max(10, deltas // 20)} 1"
            params = {
                "threadId": thread,
                "input": [{"type": "text", "text": text, "text_elements": []}],
            }
            response = await request("turn/start", params)
            turn_id = response["result"]["turn"]["id"]
            turns_started.append(turn_id)
            while turn_id not in texts.turns_done:
                texts.feed(json.loads(await ws.recv_text()))
            await trio.sleep(rng.random() * 0.01)
        stats.turns += turn_no
        lost = texts.lost_items()
        stats.items_checked += len(texts.final)
        stats.items_lost += len(lost)
    finally:
        finished.set()
        await ws.close()


async def _run_session(
    daemon: Daemon,
    watchers: int,
    target: int,
    deltas: int,
    max_burst: int,
    rng: random.Random,
    stats: SoakStats,
) -> None:
    """One session: its driver and its watchers, their figures added to ``stats``."""
    box: list[str] = []
    ready, finished = trio.Event(), trio.Event()
    started: list[str] = []
    local = SoakStats()
    progress: list[ItemTexts] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            driver, daemon, box, ready, finished, started, local, target, deltas, rng, progress
        )
        await ready.wait()
        for w in range(watchers):
            nursery.start_soon(
                watcher,
                daemon,
                box[0],
                w % 2 == 0,
                random.Random(rng.random()),
                local,
                finished,
                started,
                max_burst,
                progress,
            )
    for name in ("disconnects", "abrupt", "lagging_closed", "messages", "items_checked"):
        setattr(stats, name, getattr(stats, name) + getattr(local, name))
    for name in ("items_lost", "duplicates", "gaps", "turns", "clients", "merged"):
        setattr(stats, name, getattr(stats, name) + getattr(local, name))
    stats.problems += local.problems


async def run_soak(
    daemon: Daemon,
    *,
    sessions: int = 2,
    watchers: int = 4,
    target: int = 1000,
    deltas: int = 2000,
    max_burst: int = 300,
    seed: int = 1,
) -> SoakStats:
    """The disconnect soak against a running daemon: ``target`` disconnects in all."""
    stats = SoakStats()
    rng = random.Random(seed)
    with trio.fail_after(max(TIMEOUT_S, target * 0.5)):
        async with trio.open_nursery() as nursery:
            for _ in range(sessions):
                nursery.start_soon(
                    _run_session,
                    daemon,
                    watchers,
                    max(1, target // sessions),
                    deltas,
                    max_burst,
                    random.Random(rng.random()),
                    stats,
                )
    return stats


def report(stats: SoakStats, label: str) -> str:
    """One line of figures."""
    return (
        f"soak {label}: {stats.disconnects} disconnects ({stats.abrupt} abrupt, "
        f"{stats.lagging_closed} more closed by the daemon with 1013), "
        f"{stats.clients} watchers, {stats.turns} turns, {stats.messages} messages "
        f"({stats.merged} of them merged deltas), "
        f"{stats.items_checked} items checked: lost {stats.items_lost}, "
        f"duplicated/reordered {stats.duplicates}, gaps {stats.gaps}, "
        f"problems {len(stats.problems)}"
    )


async def main_async(long: bool, seed: int) -> int:
    """Run the soak on a fresh daemon and print the figures."""
    target = 10_000 if long else 1000
    with tempfile.TemporaryDirectory(prefix="argus-soak-") as tmp:
        async with run_daemon(Path(tmp) / "home") as daemon:
            stats = await run_soak(daemon, sessions=3, watchers=4, target=target, seed=seed)
    print(report(stats, "disconnects"))
    for problem in stats.problems[:10]:
        print("  problem:", problem)
    return 0 if stats.clean and stats.disconnects >= target else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.soak [--long] [--seed N]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--long", action="store_true", help="10,000 disconnects, not 1,000")
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args(argv)
    return trio.run(main_async, options.long, options.seed)


if __name__ == "__main__":
    sys.exit(main())

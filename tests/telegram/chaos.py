"""kill -9 of the gateway at random points while messages flow in and replies flow out.

Shared by ``tests/telegram/test_kill9.py`` (a few kills) and ``bench/telegram_bench.py``
(hundreds). Each allowed user writes ``/quiet m-<n>`` in their private chat; the demo
runtime answers ``m-<n>``. The gateway is SIGKILLed at a random moment after it starts
polling and started again on the same home; its runtime bridges survive, as they do in
production. At the end every tag must have exactly one reply: the counts of tags with
none (lost), with more than one (duplicated), with more than one unmarked reply (silent
duplicates) and of replies marked as possible repeats are reported.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import trio

from argus.testing import LISTEN_RE, daemon_env, kill_bridges
from tests.telegram.standin import BotApiStandIn


@dataclass
class ChaosReport:
    """What a chaos run saw."""

    messages: int = 0
    kills: int = 0
    replies: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: dict[str, int] = field(default_factory=dict)
    marked: int = 0
    silent_duplicates: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0

    def line(self) -> str:
        """One line for logs and the benchmark table."""
        return (
            f"messages={self.messages} kills={self.kills} replies={self.replies} "
            f"lost={len(self.lost)} duplicated={len(self.duplicated)} "
            f"(silent={len(self.silent_duplicates)}, marked repeats={self.marked})"
        )


async def start_gateway(home: Path, env: dict[str, str]) -> trio.Process:
    """``argus serve --port 0`` on ``home``; returns once it listens (``process.url`` set)."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "argus", "serve", "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=daemon_env(home, **env),
    )
    assert process.stderr is not None
    buf = b""
    with trio.fail_after(30):
        while not (match := LISTEN_RE.search(buf.decode("utf-8", "replace"))):
            data = await process.stderr.receive_some(65536)
            if not data:
                raise RuntimeError("gateway exited:\n" + buf.decode("utf-8", "replace"))
            buf += data
    process.url = match.group(1)  # type: ignore[attr-defined]
    return process


async def _drain(process: trio.Process, log: list[str]) -> None:
    assert process.stderr is not None
    while True:
        try:
            data = await process.stderr.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        if not data:
            return
        log.append(data.decode("utf-8", "replace"))
        del log[:-200]


def tag_of(text: str) -> str:
    """``m-<n>`` of a reply (a marked repeat has a header line first)."""
    return text.strip().splitlines()[-1].strip()


async def run_chaos(
    api: BotApiStandIn,
    home: Path,
    env: dict[str, str],
    users: list[int],
    *,
    messages: int,
    kills: int,
    seed: int = 1,
    max_up_s: float = 1.5,
    settle_s: float = 90.0,
    max_gap_s: float = 0.05,
) -> ChaosReport:
    """Send ``messages`` while killing the gateway ``kills`` times; count what came back."""
    rng = random.Random(seed)
    report = ChaosReport(messages=messages)
    sent_tags: list[str] = []
    log: list[str] = []
    done_sending = trio.Event()

    async def sender() -> None:
        for n in range(messages):
            user = rng.choice(users)
            tag = f"m-{n}"
            sent_tags.append(tag)
            api.text(user, api.user(user, f"u{user}"), f"/quiet {tag}")
            await trio.sleep(rng.uniform(0.0, max_gap_s))
        done_sending.set()

    async with trio.open_nursery() as nursery:
        process = await start_gateway(home, env)
        nursery.start_soon(_drain, process, log)
        with trio.fail_after(30):
            while api.active_polls == 0:
                await trio.sleep(0.01)
        nursery.start_soon(sender)
        for _ in range(kills):
            await trio.sleep(rng.uniform(0.05, max_up_s))
            process.send_signal(signal.SIGKILL)
            await process.wait()
            report.kills += 1
            process = await start_gateway(home, env)
            nursery.start_soon(_drain, process, log)
        await done_sending.wait()
        with trio.move_on_after(settle_s):
            while True:
                got = {tag_of(m.text) for m in api.sent}
                if all(t in got for t in sent_tags):
                    break
                await trio.sleep(0.1)
        await trio.sleep(1.0)  # let a late duplicate show up
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(15):
            await process.wait()
        if process.returncode is None:
            process.kill()
        nursery.cancel_scope.cancel()
    await trio.to_thread.run_sync(kill_bridges, home)
    counts: dict[str, int] = {}
    replies = [m for m in api.sent if not m.text.endswith("…")]  # previews end with an ellipsis
    unmarked: dict[str, int] = {}
    for message in replies:
        tag = tag_of(message.text)
        counts[tag] = counts.get(tag, 0) + 1
        if message.text.startswith("↻"):
            report.marked += 1
        else:
            unmarked[tag] = unmarked.get(tag, 0) + 1
    report.silent_duplicates = {t: c for t, c in unmarked.items() if c > 1}
    report.replies = len(replies)
    report.lost = [t for t in sent_tags if t not in counts]
    report.duplicated = {t: c for t, c in counts.items() if c > 1}
    report.conflicts = api.conflicts_sent
    if report.lost or report.duplicated:
        sys.stderr.write("".join(log)[-5000:])
    return report


__all__ = ["ChaosReport", "os", "run_chaos", "start_gateway"]

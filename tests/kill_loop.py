"""``kill -9`` of the gateway, again and again, with follow-ups queued behind an approval.

Shared by the integration test (a few kills, in ``make test``) and ``bench/kill9_bench.py``
(20 kills, several runs). Every round enqueues two follow-ups (``/approve m<n>``: each one's
turn asks for an approval and waits for it), waits until a turn waits for its approval,
and then kills the gateway at one of three moments: while the approval is pending, right
after answering it, or a few milliseconds after (while the gateway may be starting the
next follow-up). A new gateway adopts the same runtime each time. At the end every
approval is answered until the queue is empty, and the thread's turns are counted: each
acknowledged follow-up must have run exactly once.
"""

from __future__ import annotations

import random
import signal
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from tests.harness import Client, Daemon, connect, run_daemon

APPROVAL = "item/commandExecution/requestApproval"
ENV = {"ARGUS_FOLLOWUP_MODE": "each", "ARGUS_RUNTIME_NODE": "0"}


@dataclass
class LoopReport:
    """What a kill loop saw: acknowledged markers and how often each one ran."""

    kills: int = 0
    acked: list[str] = field(default_factory=list)
    runs: dict[str, int] = field(default_factory=dict)
    moments: dict[str, int] = field(default_factory=dict)

    @property
    def lost(self) -> list[str]:
        """Acknowledged follow-ups that never ran."""
        return [m for m in self.acked if self.runs.get(m, 0) == 0]

    @property
    def doubled(self) -> list[str]:
        """Follow-ups that ran more than once."""
        return [m for m in self.acked if self.runs.get(m, 0) > 1]


async def _answer(client: Client, request: dict[str, Any]) -> None:
    await client.send({"id": request["id"], "result": {"decision": "accept"}})


async def _next_approval(client: Client) -> dict[str, Any]:
    """The first approval this connection got (the handshake may have read it already).

    A new connection gets every approval still pending, including one answered just
    before the last kill whose answer never reached the runtime.
    """
    for msg in client.seen:
        if msg.get("method") == APPROVAL:
            return msg
    return await client.recv_until(lambda m: m.get("method") == APPROVAL, timeout=60)


async def _state(daemon: Daemon) -> dict[str, Any]:
    async with daemon.http() as http:
        return (await http.get("/automation/state")).json()


async def kill_loop(home: Path, kills: int, *, seed: int = 0) -> LoopReport:
    """Run ``kills`` rounds of enqueue + ``kill -9`` + restart; count what ran."""
    rng = random.Random(seed)
    report = LoopReport()
    count = 0
    # Every daemon stays entered until the end: leaving run_daemon kills the home's bridges.
    async with AsyncExitStack() as daemons:
        daemon = await daemons.enter_async_context(run_daemon(home, env=ENV))
        session_id: str | None = None
        thread_id = ""
        for _ in range(kills):
            async with connect(daemon, session=session_id) as client:
                await client.handshake()
                if session_id is None:
                    session_id = client.id
                    ensure = await client.request("argus/thread/main/ensure", {}, timeout=30)
                    thread_id = ensure["result"]["threadId"]
                for _ in range(2):
                    marker = f"m{count:03d}"
                    count += 1
                    params = {"text": f"/approve {marker}", "threadId": thread_id}
                    reply = await client.request("argus/input/enqueue", params, timeout=60)
                    assert reply.get("result", {}).get("ok") is True, reply
                    report.acked.append(marker)
                approval = await _next_approval(client)
                moment = rng.choice(["pending", "answered", "starting"])
                report.moments[moment] = report.moments.get(moment, 0) + 1
                if moment != "pending":
                    await _answer(client, approval)
                if moment == "starting":
                    await trio.sleep(rng.uniform(0.0, 0.05))
                # The client leaves as the gateway dies: its connection would die anyway.
                daemon.process.send_signal(signal.SIGKILL)
            await daemon.process.wait()
            report.kills += 1
            daemon = await daemons.enter_async_context(run_daemon(home, env=ENV))
        async with connect(daemon, session=session_id) as client:
            await client.handshake()
            for msg in client.seen:
                if msg.get("method") == APPROVAL:
                    await _answer(client, msg)
            await _drain(client, daemon)
            reply = await client.request(
                "thread/read", {"threadId": thread_id, "includeTurns": True}, timeout=30
            )
    texts = [str(turn) for turn in reply["result"]["thread"]["turns"]]
    for marker in report.acked:
        report.runs[marker] = sum(f"/approve {marker}" in t for t in texts)
    return report


async def _drain(client: Client, daemon: Daemon) -> None:
    """Answer every approval until no follow-up is queued and the lane is idle."""
    with trio.fail_after(300):
        while True:
            with trio.move_on_after(1.0):
                while True:
                    msg = await client.recv(timeout=300)
                    if msg.get("method") == APPROVAL:
                        await _answer(client, msg)
            state = await _state(daemon)
            queued = state["persisted"]["followups"]
            busy = [lane for lane in state["runtime"]["lanes"] if lane["busy"]]
            if not queued and not busy:
                return

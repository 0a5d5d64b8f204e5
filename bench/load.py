"""Load: many local sessions, several clients each, all streaming; and one stalled client.

``python -m bench.load [--sessions 100] [--clients 10] [--deltas 100] [--ms 100]`` (in
``make bench``). Each session runs ``/clock N MS`` turns on the demo runtime: every delta is
the wall-clock time it was written, so each client measures the latency of every delta it
receives (same machine, same clock). The default pace (10 deltas/s per session, 10,000
deliveries/s in all) stays below what one client process can read on a small machine, so
the figures are Argus's, not the load generator's. Two phases, interleaved twice:

1. every client reads;
2. one client of the first session stops reading entirely (a stalled peer: its socket
   buffers fill, then Argus cuts it off with 1013 or its send deadline).

Reported per phase: deltas delivered per second to the *other* clients, and p50/p99
latency per delta. The stalled client must change the others' throughput by < 10 %.
``tests/integration/test_load.py`` runs a small version for correctness only (every client
gets every delta; the stalled one harms nobody), without timing assertions.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio

from argus.testing import Daemon, run_daemon
from bench.rawws import RawWs, WsClosed, port_of

ENV = {"ARGUS_RUNTIME_NODE": "0", "ARGUS_WS_SEND_TIMEOUT_S": "5"}
MARK = b'"delta":"'


@dataclass
class Phase:
    """What the reading clients measured in one phase."""

    deltas: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    expected: int = 0  # deltas each reading client should have received
    short: int = 0  # reading clients that got fewer

    @property
    def rate(self) -> float:
        """Deltas per second delivered to the reading clients."""
        return self.deltas / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Latency percentile in milliseconds."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _open_session(daemon: Daemon) -> tuple[str, str]:
    ws = await RawWs.connect(port_of(daemon), "/ws")
    first = json.loads(await ws.recv_text())
    thread = ""
    for req_id, method, params in (
        (1, "initialize", {"clientInfo": {"name": "load", "version": "1"}}),
        (2, "thread/start", {}),
    ):
        await ws.send_text(json.dumps({"id": req_id, "method": method, "params": params}))
        while True:
            msg = json.loads(await ws.recv_text())
            if msg.get("id") == req_id:
                break
        if method == "thread/start":
            thread = msg["result"]["thread"]["id"]
    await ws.send_text(json.dumps({"method": "initialized"}))
    await ws.close()
    return first["params"]["id"], thread


async def _reader(ws: RawWs, phase: Phase, done: trio.Event, sample: bool) -> None:
    """Count the deltas of one client until the turn completes; sample latencies."""
    got = 0
    try:
        while True:
            _opcode, payload = await ws.recv()
            now = time.time()
            at = payload.find(MARK)
            if at >= 0:
                stamps = payload[at + len(MARK) : payload.index(b'"', at + len(MARK))].split()
                got += len(stamps)
                if sample:
                    phase.latencies.extend(now - float(s) for s in stamps)
            elif b'"turn/completed"' in payload:
                break
    except WsClosed:
        pass
    phase.deltas += got
    if got < phase.expected:
        phase.short += 1
    done.set()


async def run_phase(
    daemon: Daemon,
    sessions: list[tuple[str, str]],
    clients: int,
    deltas: int,
    ms: int,
    stalled: bool,
) -> Phase:
    """One turn of ``deltas`` in every session, read by ``clients`` clients each."""
    phase = Phase(expected=deltas)
    port = port_of(daemon)
    conns: list[list[RawWs]] = []
    for session_id, _thread in sessions:
        row = []
        for _ in range(clients):
            ws = await RawWs.connect(port, f"/ws?session={session_id}")
            json.loads(await ws.recv_text())
            row.append(ws)
        conns.append(row)
    stalled_ws = conns[0][-1] if stalled else None
    began = time.monotonic()
    try:
        async with trio.open_nursery() as nursery:
            for (_session_id, thread), row in zip(sessions, conns, strict=True):
                for n, ws in enumerate(row):
                    if ws is stalled_ws:
                        continue  # never reads: its socket fills up
                    nursery.start_soon(_reader, ws, phase, trio.Event(), n < 3)
                turn = {
                    "id": "go",
                    "method": "turn/start",
                    "params": {
                        "threadId": thread,
                        "input": [
                            {"type": "text", "text": f"/clock {deltas} {ms}", "text_elements": []}
                        ],
                    },
                }
                await row[0].send_text(json.dumps(turn))
    finally:
        phase.seconds = time.monotonic() - began
        for row in conns:
            for ws in row:
                await ws.abort()
    return phase


async def run_load(
    daemon: Daemon, sessions: int, clients: int, deltas: int, ms: int, rounds: int = 1
) -> tuple[Phase, Phase]:
    """Both phases on ``sessions`` fresh sessions."""
    opened = []
    for _ in range(sessions):
        opened.append(await _open_session(daemon))
    normal, stalled = Phase(expected=deltas), Phase(expected=deltas)
    # Interleaved (normal, stalled, normal, stalled): drift on a shared machine (other
    # work, warm-up) then falls on both sides alike.
    for _ in range(rounds):
        for total, is_stalled in ((normal, False), (stalled, True)):
            phase = await run_phase(daemon, opened, clients, deltas, ms, stalled=is_stalled)
            total.deltas += phase.deltas
            total.seconds += phase.seconds
            total.short += phase.short
            total.latencies += phase.latencies
    return normal, stalled


def report(normal: Phase, stalled: Phase, sessions: int, clients: int) -> list[str]:
    """Printable figures."""
    change = (stalled.rate - normal.rate) / normal.rate * 100 if normal.rate else 0.0
    lines = []
    for name, phase in (("all reading", normal), ("one stalled", stalled)):
        lines.append(
            f"load {sessions}x{clients} {name}: {phase.rate:,.0f} deltas/s to the readers, "
            f"latency p50 {phase.percentile(0.5):.1f} ms p99 {phase.percentile(0.99):.1f} ms, "
            f"{phase.short} readers short, {phase.seconds:.1f}s"
        )
    lines.append(f"load: the stalled client changed the others' throughput by {change:+.1f} %")
    return lines


async def main_async(sessions: int, clients: int, deltas: int, ms: int) -> int:
    """A fresh daemon under load; figures printed."""
    with tempfile.TemporaryDirectory(prefix="argus-load-") as tmp:
        async with run_daemon(Path(tmp) / "home", env=ENV) as daemon:
            normal, stalled = await run_load(daemon, sessions, clients, deltas, ms, rounds=2)
    for line in report(normal, stalled, sessions, clients):
        print(line)
    ok = normal.short == 0 and stalled.short == 0
    return 0 if ok and abs(stalled.rate - normal.rate) <= 0.1 * normal.rate else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.load``."""
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--deltas", type=int, default=100)
    parser.add_argument("--ms", type=int, default=100, help="pause between deltas")
    o = parser.parse_args(argv)
    return trio.run(main_async, o.sessions, o.clients, o.deltas, o.ms)


if __name__ == "__main__":
    sys.exit(main())

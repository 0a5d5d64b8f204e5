"""Benchmarks of Argus itself: stream, turn, rtt, fan-out, idle memory, attach.

Each measures the real daemon (``argus serve`` pinned to one core) with the bundled demo
runtime, against reading that runtime directly over its stdio pipes (the limit). Figures
are medians of several runs. Every loop is bounded in count and time, and all traffic stays
on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from argus.testing import Daemon, run_daemon
from bench.wsclient import FastWsClient

SERVER_CPU = 1 if (os.cpu_count() or 1) > 1 else 0
CLIENT_CPU = 0
DEADLINE = 120  # seconds, per measurement

Row = dict[str, Any]


def pin_client() -> None:
    """Keep the benchmark client off the daemon's core."""
    try:
        os.sched_setaffinity(0, {CLIENT_CPU})
    except OSError:
        pass


def expected_text(n: int) -> str:
    """The text of a demo-runtime ``/stream n`` turn."""
    return "".join(f"{i:08d}" for i in range(n))


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def input_text(text: str) -> list[dict[str, Any]]:
    """A turn/start input."""
    return [{"type": "text", "text": text, "text_elements": []}]


# -- direct (the limit) ---------------------------------------------------------------


class DirectRuntime:
    """The demo runtime on pipes, read with the same line handling a client would do."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        assert process.stdout is not None and process.stdin is not None
        self.stdout = process.stdout
        self.stdin = process.stdin
        self.buf = b""
        self.ids = 0

    async def send(self, obj: Any) -> None:
        await self.stdin.send_all(json.dumps(obj).encode() + b"\n")

    async def lines(self) -> AsyncIterator[bytes]:
        while True:
            *complete, self.buf = self.buf.split(b"\n")
            for line in complete:
                yield line
            data = await self.stdout.receive_some(1 << 18)
            if not data:
                return
            self.buf += data

    async def request(self, method: str, params: Any) -> dict[str, Any]:
        self.ids += 1
        await self.send({"id": self.ids, "method": method, "params": params})
        async for line in self.lines():
            msg = json.loads(line)
            if msg.get("id") == self.ids and "method" not in msg:
                return msg
        raise RuntimeError("runtime closed")


@asynccontextmanager
async def direct_runtime(home: Path) -> AsyncIterator[DirectRuntime]:
    """Start the demo runtime pinned to the server core, initialized, with a thread."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "argus.demo_runtime", "--home", str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CPU}),
    )
    runtime = DirectRuntime(process)
    try:
        await runtime.request("initialize", {"clientInfo": {"name": "bench", "version": "1"}})
        yield runtime
    finally:
        process.kill()
        await process.wait()


async def direct_stream(home: Path, n: int) -> float:
    """Seconds for the runtime to deliver an n-delta turn to a direct reader."""
    async with direct_runtime(home) as rt:
        thread = (await rt.request("thread/start", {}))["result"]["thread"]["id"]
        count = 0
        start = time.perf_counter()
        await rt.send(
            {
                "id": "t",
                "method": "turn/start",
                "params": {"threadId": thread, "input": input_text(f"/stream {n}")},
            }
        )
        async for line in rt.lines():
            if b'"item/agentMessage/delta"' in line:
                count += 1
            elif b'"turn/completed"' in line:
                break
        elapsed = time.perf_counter() - start
        assert count == n, (count, n)
        return elapsed


async def direct_rtt(home: Path, n: int) -> list[float]:
    """Round-trip times (seconds) of n requests written straight to the runtime."""
    async with direct_runtime(home) as rt:
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            await rt.request("bench/ping", {})
            samples.append(time.perf_counter() - start)
        return samples


# -- through Argus --------------------------------------------------------------------


class WsClient:
    """A thin /ws client for benchmarks."""

    def __init__(self, ws: WebSocketConnection, session: dict[str, Any]) -> None:
        self.ws = ws
        self.session = session
        self.ids = 0

    async def send(self, obj: Any) -> None:
        await self.ws.send_message(json.dumps(obj))

    async def recv(self) -> dict[str, Any]:
        return json.loads(await self.ws.get_message())

    async def request(self, method: str, params: Any) -> dict[str, Any]:
        self.ids += 1
        await self.send({"id": self.ids, "method": method, "params": params})
        while True:
            msg = await self.recv()
            if msg.get("id") == self.ids and "method" not in msg:
                return msg


@asynccontextmanager
async def ws_client(daemon: Daemon, query: str = "") -> AsyncIterator[WsClient]:
    """Open /ws and read the session frame."""
    async with open_websocket_url(daemon.ws_url + "/ws" + query, message_queue_size=1 << 20) as ws:
        first = json.loads(await ws.get_message())
        yield WsClient(ws, first["params"])


async def ready_client(client: WsClient) -> str:
    """Handshake and a thread; returns the thread id."""
    await client.request("initialize", {"clientInfo": {"name": "bench", "version": "1"}})
    await client.send({"method": "initialized"})
    return (await client.request("thread/start", {}))["result"]["thread"]["id"]


async def read_turn(client: WsClient, n: int) -> tuple[int, int]:
    """Read until turn/completed; returns (delta messages, deltas covered) and checks text."""
    parts = []
    frames = 0
    while True:
        msg = await client.recv()
        method = msg.get("method")
        if method == "item/agentMessage/delta":
            frames += 1
            parts.append(msg["params"]["delta"])
        elif method == "turn/completed":
            break
    text = "".join(parts)
    assert text == expected_text(n), f"text mismatch: {len(text)} chars, want {n * 8}"
    return frames, n


async def argus_turn(client: WsClient, thread: str, n: int) -> tuple[float, int]:
    """Seconds from turn/start to turn/completed with the whole text; and frames received."""
    start = time.perf_counter()
    await client.send(
        {
            "id": "t",
            "method": "turn/start",
            "params": {"threadId": thread, "input": input_text(f"/stream {n}")},
        }
    )
    frames, _ = await read_turn(client, n)
    return time.perf_counter() - start, frames


# -- the benchmarks -------------------------------------------------------------------


def fast_client(daemon: Daemon, query: str = "") -> tuple[FastWsClient, str]:
    """A bench.wsclient connection, initialized, with a thread; returns it and the thread."""
    port = int(daemon.base_url.rsplit(":", 1)[1])
    client = FastWsClient(port, "/ws" + query)
    client.recv_frame()  # argus/session
    requests = [
        {
            "id": 1,
            "method": "initialize",
            "params": {"clientInfo": {"name": "bench", "version": "1"}},
        },
        {"id": 2, "method": "thread/start", "params": {}},
    ]
    thread = ""
    for request in requests:
        client.send_text(json.dumps(request))
        while True:
            msg = json.loads(client.recv_frame())
            if msg.get("id") == request["id"]:
                break
        if request["id"] == 2:
            thread = msg["result"]["thread"]["id"]
    return client, thread


def fast_turn(client: FastWsClient, thread: str, n: int) -> tuple[float, int]:
    """A /stream turn read with the fast client: (seconds, frames), text verified."""
    start = time.perf_counter()
    params = {"threadId": thread, "input": input_text(f"/stream {n}")}
    client.send_text(json.dumps({"id": "t", "method": "turn/start", "params": params}))
    parts = []
    frames = 0
    while True:
        raw = client.recv_frame()
        if b'"item/agentMessage/delta"' in raw:
            frames += 1
            parts.append(json.loads(raw)["params"]["delta"])
        elif b'"turn/completed"' in raw:
            break
    elapsed = time.perf_counter() - start
    assert "".join(parts) == expected_text(n)
    return elapsed, frames


async def bench_stream(daemon: Daemon, home: Path, runs: int, n: int) -> list[Row]:
    """Notifications/s: direct pipe, Argus one-to-one (coalesce=0), Argus coalescing."""
    direct = [n / await direct_stream(home / "direct", n) for _ in range(runs)]
    rows: list[Row] = [
        {
            "bench": "stream",
            "case": "direct (runtime stdout)",
            "value": statistics.median(direct),
            "unit": "notif/s",
        }
    ]
    for label, query in (("argus, coalesce=0 (frames)", "?coalesce=0"), ("argus, coalescing", "")):
        client, thread = fast_client(daemon, query)
        try:
            results = [fast_turn(client, thread, n) for _ in range(runs)]
        finally:
            client.close()
        rates = [n / elapsed for elapsed, _ in results]
        frames = [f / elapsed for elapsed, f in results]
        rows.append(
            {
                "bench": "stream",
                "case": label,
                "value": statistics.median(rates),
                "unit": "notif/s",
                "frames_per_s": statistics.median(frames),
            }
        )
    return rows


async def bench_turn(daemon: Daemon, runs: int, sizes: tuple[int, ...]) -> list[Row]:
    """A turn of n deltas delivered complete; per-delta cost across sizes (linearity)."""
    rows: list[Row] = []
    async with ws_client(daemon) as client:
        thread = await ready_client(client)
        await argus_turn(client, thread, 1000)  # warm-up
        for n in sizes:
            times = [(await argus_turn(client, thread, n))[0] for _ in range(runs)]
            median = statistics.median(times)
            rows.append(
                {
                    "bench": "turn",
                    "case": f"{n} deltas",
                    "value": median,
                    "unit": "s",
                    "per_delta_us": median / n * 1e6,
                }
            )
    return rows


async def bench_rtt(daemon: Daemon, home: Path, n: int) -> list[Row]:
    """Request round trip through Argus against the same request written directly."""
    direct = sorted(await direct_rtt(home / "rtt", n))
    client, _ = fast_client(daemon)
    samples = []
    try:
        for i in range(200 + n):
            request = json.dumps({"id": i, "method": "bench/ping", "params": {}})
            start = time.perf_counter()
            client.send_text(request)
            while json.loads(client.recv_frame()).get("id") != i:
                pass
            if i >= 200:  # after a warm-up
                samples.append(time.perf_counter() - start)
    finally:
        client.close()
    samples.sort()

    def pct(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, int(len(values) * p))] * 1e6

    return [
        {"bench": "rtt", "case": "direct p50", "value": pct(direct, 0.5), "unit": "us"},
        {"bench": "rtt", "case": "direct p99", "value": pct(direct, 0.99), "unit": "us"},
        {"bench": "rtt", "case": "argus p50", "value": pct(samples, 0.5), "unit": "us"},
        {"bench": "rtt", "case": "argus p99", "value": pct(samples, 0.99), "unit": "us"},
    ]


async def bench_fanout(daemon: Daemon, runs: int, clients: int, n: int) -> list[Row]:
    """One session, ``clients`` clients: time until every client has the whole turn."""
    times = []
    async with ws_client(daemon) as first:
        thread = await ready_client(first)
        session = first.session["id"]
        async with trio.open_nursery() as nursery:
            others: list[WsClient] = []

            async def join() -> None:
                async with ws_client(daemon, f"?session={session}") as c:
                    others.append(c)
                    await trio.sleep_forever()

            for _ in range(clients - 1):
                nursery.start_soon(join)
            while len(others) < clients - 1:
                await trio.sleep(0.01)
            everyone = [first, *others]
            for _ in range(runs):
                start = time.perf_counter()
                done: list[float] = []

                async def reader(c: WsClient, start: float, done: list[float]) -> None:
                    await read_turn(c, n)
                    done.append(time.perf_counter() - start)

                async with trio.open_nursery() as readers:
                    for c in everyone:
                        readers.start_soon(reader, c, start, done)
                    await first.send(
                        {
                            "id": "t",
                            "method": "turn/start",
                            "params": {"threadId": thread, "input": input_text(f"/stream {n}")},
                        }
                    )
                times.append(max(done))
            nursery.cancel_scope.cancel()
    return [
        {
            "bench": "fan-out",
            "case": f"{clients} clients, {n} deltas",
            "value": statistics.median(times),
            "unit": "s",
        }
    ]


async def bench_idle(daemon: Daemon, sessions: int, clients: int) -> list[Row]:
    """Gateway memory per idle client and per local session."""
    pid = daemon.process.pid
    async with ws_client(daemon) as warm:
        await ready_client(warm)
    await trio.sleep(0.5)
    base = rss_kib(pid)
    session_ids: list[str] = []
    async with trio.open_nursery() as nursery:
        count = 0

        async def hold(query: str) -> None:
            nonlocal count
            async with ws_client(daemon, query) as c:
                if not query:
                    session_ids.append(c.session["id"])
                count += 1
                await trio.sleep_forever()

        for _ in range(sessions):
            nursery.start_soon(hold, "")
        while count < sessions:
            await trio.sleep(0.05)
        await trio.sleep(1.0)
        after_sessions = rss_kib(pid)
        for i in range(clients - sessions):
            nursery.start_soon(hold, f"?session={session_ids[i % sessions]}")
        while count < clients:
            await trio.sleep(0.05)
        await trio.sleep(1.0)
        after_clients = rss_kib(pid)
        nursery.cancel_scope.cancel()
    per_client = (after_clients - after_sessions) / (clients - sessions)
    per_session = (after_sessions - base) / sessions - per_client
    return [
        {
            "bench": "idle",
            "case": f"per client ({clients} clients)",
            "value": per_client,
            "unit": "KiB",
        },
        {
            "bench": "idle",
            "case": f"per local session ({sessions})",
            "value": per_session,
            "unit": "KiB",
        },
    ]


async def bench_attach(daemon: Daemon, runs: int) -> list[Row]:
    """Session creation (connect without ?session) to the first response (initialize)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        async with ws_client(daemon) as client:
            await client.request("initialize", {"clientInfo": {"name": "bench", "version": "1"}})
            times.append(time.perf_counter() - start)
    return [
        {
            "bench": "attach",
            "case": "local session create -> first response",
            "value": statistics.median(times) * 1e3,
            "unit": "ms",
        }
    ]


async def run_all(quick: bool = False) -> list[Row]:
    """Every Argus benchmark; ``quick`` shrinks counts for a smoke run."""
    pin_client()
    runs = 2 if quick else 5
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="argus-bench-") as tmp:
        home = Path(tmp)
        # A one-to-one (coalesce=0) client cannot keep up with a runtime bursting 50,000
        # deltas at full speed; give it room instead of measuring the 1013 cut-off.
        big = {
            "ARGUS_REPLAY_BUFFER_BYTES": str(128 << 20),
            "ARGUS_CLIENT_QUEUE_BYTES": str(64 << 20),
            # The daemon has its core to itself; its runtimes run beside the client, as the
            # direct measurement's runtime runs beside its own reader.
            "ARGUS_RUNTIME_CMD": f"taskset -c {CLIENT_CPU} {sys.executable} -m argus.demo_runtime",
            "ARGUS_RUNTIME_NODE": "0",
        }
        async with run_daemon(
            home / "gw", "--log-level", "warning", env=big, cpu=SERVER_CPU
        ) as daemon:
            with trio.fail_after(DEADLINE * 5):
                rows += await bench_stream(daemon, home, runs, 5000 if quick else 50_000)
                rows += await bench_turn(
                    daemon, runs, (1000, 20_000) if quick else (1000, 20_000, 40_000)
                )
                rows += await bench_rtt(daemon, home, 500 if quick else 5000)
                rows += await bench_fanout(daemon, runs, 10, 5000)
                rows += await bench_attach(daemon, runs)
        # The gateway's own cost per idle session: plain child runtimes, no runtime nodes
        # (a bridge and a node-host are two more processes per session, outside the gateway).
        env = {"ARGUS_MAX_SESSIONS": "2000", "ARGUS_LOCAL_DETACH": "0", "ARGUS_RUNTIME_NODE": "0"}
        async with run_daemon(
            home / "idle", "--log-level", "warning", env=env, cpu=SERVER_CPU
        ) as daemon:
            with trio.fail_after(DEADLINE * 3):
                rows += await bench_idle(daemon, 10 if quick else 100, 100 if quick else 1000)
    return rows


def run(quick: bool = False) -> list[Row]:
    """Synchronous entry point for ``python -m bench``."""
    return trio.run(run_all, quick)

"""Live fuzzer: hostile input on /ws, /nodes/ws, /mcp and the HTTP API of a running daemon.

``python -m bench.fuzz [--cases N] [--seed S]`` (10,000 cases per surface in ``make bench``;
``tests/integration/test_fuzz_soak.py`` runs a few hundred). Cases come from a seeded
generator (``bench/fuzzcases.py``): broken UTF-8 and JSON, huge and deeply nested values,
wrong types in every field, ids of every JSON type, binary and fragmented frames, bad
opcodes, responses to requests that were never made, and slowloris upgrades alongside.

Every case must get a *defined* answer, checked as it happens:

* ``/ws``: a request (an object with an ``id`` and a string ``method``) gets exactly one
  response with that very id; broken JSON, a non-object and a binary frame get one error
  with ``id: null``; a frame the protocol refuses ends the connection with its close code
  (1002, 1007, 1009). After each batch a sentinel request must come back.
* ``/nodes/ws``: malformed frames are ignored and the connection stays: after each batch an
  invoke through ``POST /nodes/invoke`` must make the round trip to the fuzzing node; a
  malformed ``connect`` is closed with 1008 (1007 for invalid UTF-8).
* ``/mcp`` and the HTTP API: a status below 500, and a JSON body on every error.
* slowloris: every half-sent upgrade is closed by the daemon.

Afterwards the daemon must be alive and healthy, every session must still answer, the log
must hold no traceback, and the daemon's memory is compared with where it started: RSS
(the daemon trims freed heap every second here, ``ARGUS_MALLOC_TRIM_S``) and the live Python
allocator blocks (``argus_python_heap_blocks``), which say whether objects pile up.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

from argus.testing import Daemon, run_daemon
from bench import fuzzcases as fc
from bench.rawws import RawWs, WsClosed, port_of

FUZZ_ENV = {
    "ARGUS_WS_MAX_MESSAGE_BYTES": str(fc.WS_LIMIT),
    "ARGUS_RUNTIME_NODE": "0",
    "ARGUS_MCP_SESSION_TTL_S": "30",
    # The smallest replay logs: what they retain (by design) would otherwise dominate the
    # memory comparison; /metrics reports it (argus_replay_log_bytes) before and after.
    "ARGUS_REPLAY_BUFFER_BYTES": str(1024 * 1024),
    "ARGUS_CLIENT_QUEUE_BYTES": str(1024 * 1024),
    # Freed heap back to the OS every second, so RSS is read after a trim (the default is
    # 30 s): what glibc keeps of freed memory is not a leak (see argus/memory.py).
    "ARGUS_MALLOC_TRIM_S": "1",
}
REPLY_TIMEOUT_S = 20.0
WS_CLOSE_CODES = {1002, 1007, 1009}
BODY_LIMIT = 1024 * 1024
WARM_UP_CASES = 1000  # the HTTP API's MAX_CONTENT_LENGTH


@dataclass
class SurfaceStats:
    """The cases one surface got and what came back."""

    cases: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # a case without a defined answer
    stuck: int = 0  # a sentinel or round trip that never came back
    slowest_close_s: float = 0.0  # slowloris: the longest a half-sent upgrade stayed open

    def fail(self, what: str) -> None:
        """Record one case without a defined answer (the first 20 are kept verbatim)."""
        if len(self.failures) < 20:
            self.failures.append(what[:300])
        self.answers["undefined"] += 1


@dataclass
class FuzzReport:
    """Everything a fuzz run measured."""

    surfaces: dict[str, SurfaceStats] = field(default_factory=dict)
    rss_start_kib: int = 0  # right after start-up, before the warm-up
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    replay_before: int = 0
    replay_after: int = 0
    heap_blocks_start: int = 0  # live Python allocator blocks (argus_python_heap_blocks)
    heap_blocks_before: int = 0
    heap_blocks_after: int = 0
    healthy: bool = False
    sessions_answering: int = 0
    sessions: int = 0
    tracebacks: int = 0
    seconds: float = 0.0

    @property
    def memory_ratio(self) -> float:
        """RSS after / before."""
        return self.rss_after_kib / max(1, self.rss_before_kib)

    @property
    def clean(self) -> bool:
        """Every case answered, nothing stuck, daemon healthy, no traceback."""
        return (
            self.healthy
            and self.sessions_answering == self.sessions
            and not self.tracebacks
            and all(not s.failures and not s.stuck for s in self.surfaces.values())
        )


async def gauge(daemon: Daemon, name: str) -> int:
    """One unlabelled gauge from /metrics (0 when absent)."""
    async with httpx.AsyncClient(base_url=daemon.base_url, timeout=REPLY_TIMEOUT_S) as http:
        text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return 0


async def replay_bytes(daemon: Daemon) -> int:
    """``argus_replay_log_bytes`` from /metrics: what the replay logs retain by design."""
    return await gauge(daemon, "argus_replay_log_bytes")


def rss_kib(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# -- /ws ---------------------------------------------------------------------------------


async def _ws_batch(
    port: int, session_id: str, cases: list[fc.WsCase], stats: SurfaceStats, tag: str
) -> None:
    """Send a batch on one connection and check every answer."""
    ws = await RawWs.connect(port, f"/ws?session={session_id}")
    expected: Counter[str] = Counter()
    got: Counter[str] = Counter()
    null_min = null_max = 0
    closing = [c for c in cases if c.close]
    try:
        json.loads(await ws.recv_text())
        for case in cases:
            if case.close:
                continue
            await ws.send_raw(case.data)
            stats.cases += 1
            if case.reply_key is not None:
                expected[case.reply_key] += 1
            null_min += case.null_reply
            null_max += case.null_reply + case.maybe_null
        sentinel = f"sentinel-{tag}"
        await ws.send_text(json.dumps({"id": sentinel, "method": "thread/list", "params": {}}))
        expected[fc.key_of(sentinel)] += 1
        with trio.move_on_after(REPLY_TIMEOUT_S) as waited:
            while not _ws_done(expected, got, null_min):
                _opcode, payload = await ws.recv()
                msg = json.loads(payload)
                if isinstance(msg, dict) and "id" in msg and "method" not in msg:
                    got[fc.key_of(msg["id"])] += 1
        if waited.cancelled_caught:
            stats.stuck += 1
            missing = expected - got
            stats.fail(f"/ws no answer for {sum(missing.values())} cases: {list(missing)[:3]}")
        else:
            null_got = got[fc.key_of(None)] - expected[fc.key_of(None)]
            extra = got - expected - Counter({fc.key_of(None): got[fc.key_of(None)]})
            if extra:
                sent = [c.label for c in cases if c.reply_key in extra]
                stats.fail(f"/ws replies nobody asked for: {list(extra)[:3]} {sent[:2]}")
            if null_got > null_max:
                stats.fail(f"/ws {null_got} null-id errors for at most {null_max} cases")
            stats.answers["reply"] += sum(expected.values()) - 1
            stats.answers["null-id error"] += max(0, null_got)
        for case in closing:
            stats.cases += 1
            await ws.send_raw(case.data)
            try:
                with trio.fail_after(REPLY_TIMEOUT_S):
                    while True:
                        await ws.recv()
            except WsClosed as exc:
                if exc.code in WS_CLOSE_CODES:
                    stats.answers[f"close {exc.code}"] += 1
                else:
                    stats.fail(f"/ws {case.label}: closed with {exc.code} {exc.reason}")
            except trio.TooSlowError:
                stats.fail(f"/ws {case.label}: neither answered nor closed")
            break
    except WsClosed as exc:
        stats.fail(f"/ws closed with {exc.code} {exc.reason} during a batch")
    finally:
        await ws.abort()


def _ws_done(expected: Counter[str], got: Counter[str], null_min: int) -> bool:
    null = fc.key_of(None)
    for key, n in expected.items():
        if got[key] < n + (null_min if key == null else 0):
            return False
    return got[null] >= expected[null] + null_min


async def fuzz_ws(
    daemon: Daemon, sessions: list[str], threads: list[str], n: int, rng: random.Random
) -> SurfaceStats:
    """``n`` cases on /ws, in batches over the given sessions."""
    stats = SurfaceStats()
    gen = fc.WsCases(rng, threads)
    port = port_of(daemon)
    batch_no = 0
    while stats.cases < n:
        batch_no += 1
        size = min(rng.randint(5, 60), n - stats.cases)
        cases = [gen.case() for _ in range(size)]
        await _ws_batch(port, rng.choice(sessions), cases, stats, str(batch_no))
    return stats


# -- /nodes/ws ---------------------------------------------------------------------------


async def fuzz_nodes(daemon: Daemon, n: int, rng: random.Random) -> SurfaceStats:
    """``n`` cases on /nodes/ws: bad connects, then garbage on live node connections."""
    stats = SurfaceStats()
    gen = fc.NodeCases(rng)
    port = port_of(daemon)
    async with httpx.AsyncClient(base_url=daemon.base_url, timeout=REPLY_TIMEOUT_S) as http:
        round_no = 0
        while stats.cases < n:
            round_no += 1
            if rng.random() < 0.25:  # a hostile connect frame
                stats.cases += 1
                data, codes = gen.bad_connect()
                ws = await RawWs.connect(port, "/nodes/ws")
                try:
                    await ws.send_raw(data)
                    with trio.fail_after(REPLY_TIMEOUT_S):
                        while True:
                            await ws.recv()
                except WsClosed as exc:
                    if exc.code in codes:
                        stats.answers[f"close {exc.code}"] += 1
                    else:
                        stats.fail(f"/nodes/ws bad connect closed with {exc.code} {exc.reason}")
                except trio.TooSlowError:
                    stats.fail("/nodes/ws bad connect: not closed")
                finally:
                    await ws.abort()
                continue
            node_id = f"fuzz-{round_no % 7}"
            ws = await RawWs.connect(port, "/nodes/ws")
            try:
                hello = {"type": "connect", "nodeId": node_id, "commands": ["fuzz.echo"]}
                await ws.send_text(json.dumps(hello))
                json.loads(await ws.recv_text())  # node.connected
                for _ in range(min(rng.randint(5, 60), n - stats.cases)):
                    await ws.send_raw(gen.frame())
                    stats.cases += 1
                ok = await _node_round_trip(http, ws, node_id)
                if ok:
                    stats.answers["ignored, connection kept"] += 1
                else:
                    stats.stuck += 1
                    stats.fail(f"/nodes/ws {node_id}: invoke round trip failed after garbage")
            except WsClosed as exc:
                stats.fail(f"/nodes/ws closed with {exc.code} {exc.reason} after garbage")
            finally:
                await ws.abort()
    return stats


async def _node_round_trip(http: httpx.AsyncClient, ws: RawWs, node_id: str) -> bool:
    """Invoke ``fuzz.echo`` on the fuzzing node over HTTP and answer it; True if it worked."""
    result: dict[str, Any] = {}

    async def invoke() -> None:
        body = {"node": node_id, "command": "fuzz.echo", "params": {"x": 1}, "timeoutMs": 10_000}
        result.update((await http.post("/nodes/invoke", json=body)).json())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(invoke)
        with trio.move_on_after(REPLY_TIMEOUT_S):
            while True:
                msg = json.loads(await ws.recv_text())
                if msg.get("event") == "node.invoke.request":
                    payload = msg["payload"]
                    answer = {
                        "type": "event",
                        "event": "node.invoke.result",
                        "payload": {
                            "id": payload["id"],
                            "nodeId": node_id,
                            "ok": True,
                            "payloadJSON": json.dumps({"echo": True}),
                        },
                    }
                    await ws.send_text(json.dumps(answer))
                    break
    return bool(result.get("ok"))


# -- /mcp and HTTP -----------------------------------------------------------------------


def _check_http(stats: SurfaceStats, label: str, response: httpx.Response) -> None:
    if response.status_code >= 500:
        stats.fail(f"{label}: {response.status_code} {response.text[:120]}")
        return
    if response.request.method == "HEAD":
        stats.answers[str(response.status_code)] += 1  # HEAD answers carry no body
        return
    if response.status_code >= 400 or response.content:
        try:
            json.loads(response.content)
        except ValueError:
            if response.status_code >= 400:
                stats.fail(f"{label}: {response.status_code} without a JSON body")
                return
    stats.answers[str(response.status_code)] += 1


async def _send(
    http: httpx.AsyncClient,
    stats: SurfaceStats,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str] | None = None,
) -> httpx.Response | None:
    """One request; a connection closed on an over-long body counts as its answer."""
    try:
        return await http.request(method, path, headers=headers, content=body)
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        if len(body) > BODY_LIMIT:
            # The daemon answers 413 and closes; the close can overtake the answer while
            # the client is still sending the body it will never read.
            stats.answers["closed (body over the limit)"] += 1
        else:
            stats.fail(f"{method} {path[:60]}: connection dropped: {exc}")
        return None


async def fuzz_mcp(daemon: Daemon, n: int, rng: random.Random) -> SurfaceStats:
    """``n`` hostile POST/GET/DELETE requests on /mcp (with and without a live session)."""
    stats = SurfaceStats()
    gen = fc.McpCases(rng)
    async with httpx.AsyncClient(base_url=daemon.base_url, timeout=REPLY_TIMEOUT_S) as http:
        session_id = await _mcp_session(http)
        while stats.cases < n:
            stats.cases += 1
            method, headers, body = gen.request(session_id)
            response = await _send(http, stats, method, "/mcp", body, headers)
            if response is None:
                continue
            _check_http(stats, f"/mcp {method} {body[:60]!r}", response)
            if method == "DELETE" and response.status_code == 200:
                session_id = await _mcp_session(http)
    return stats


async def _mcp_session(http: httpx.AsyncClient) -> str:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "f"},
        },
    }
    response = await http.post("/mcp", json=body, headers={"Accept": "application/json"})
    return response.headers.get("mcp-session-id", "")


async def fuzz_http(daemon: Daemon, n: int, rng: random.Random, keep: set[str]) -> SurfaceStats:
    """``n`` hostile requests on the HTTP API (never deleting the sessions in ``keep``)."""
    stats = SurfaceStats()
    gen = fc.HttpCases(rng, keep)
    async with httpx.AsyncClient(base_url=daemon.base_url, timeout=REPLY_TIMEOUT_S) as http:
        while stats.cases < n:
            stats.cases += 1
            method, path, body = gen.request()
            response = await _send(http, stats, method, path, body)
            if response is None:
                continue
            _check_http(stats, f"{method} {path[:60]} {body[:40]!r}", response)
    return stats


# -- slowloris ---------------------------------------------------------------------------


async def slowloris(daemon: Daemon, connections: int, seconds: float) -> SurfaceStats:
    """Half-sent upgrades, one byte at a time: each must be closed by the daemon."""
    stats = SurfaceStats()
    port = port_of(daemon)
    head = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nX-Slow: "

    async def one() -> None:
        stats.cases += 1
        began = time.monotonic()
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        try:
            await stream.send_all(head)
            with trio.move_on_after(seconds) as waited:
                while True:
                    await stream.send_all(b"a")
                    with trio.move_on_after(0.5):
                        if not await stream.receive_some(4096):
                            break
        except (trio.BrokenResourceError, OSError):
            waited = None
        finally:
            await stream.aclose()
        if waited is not None and waited.cancelled_caught:
            stats.fail(f"slowloris upgrade still open after {seconds:.0f}s")
        else:
            stats.answers["closed by the daemon"] += 1
            stats.slowest_close_s = max(stats.slowest_close_s, time.monotonic() - began)

    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(one)
    return stats


# -- the whole run -----------------------------------------------------------------------


async def _sessions(daemon: Daemon, count: int) -> tuple[list[str], list[str]]:
    """Create ``count`` sessions with a thread each (a real client's handshake)."""
    sessions, threads = [], []
    for _ in range(count):
        ws = await RawWs.connect(port_of(daemon), "/ws")
        first = json.loads(await ws.recv_text())
        sessions.append(first["params"]["id"])
        for req_id, method, params in (
            (1, "initialize", {"clientInfo": {"name": "fuzz", "version": "1"}}),
            (2, "thread/start", {}),
        ):
            await ws.send_text(json.dumps({"id": req_id, "method": method, "params": params}))
            while True:
                msg = json.loads(await ws.recv_text())
                if msg.get("id") == req_id:
                    break
        threads.append(msg["result"]["thread"]["id"])
        await ws.send_text(json.dumps({"method": "initialized"}))
        await ws.close()
    return sessions, threads


async def _answers(daemon: Daemon, session_id: str) -> bool:
    try:
        ws = await RawWs.connect(port_of(daemon), f"/ws?session={session_id}")
        with trio.fail_after(REPLY_TIMEOUT_S):
            json.loads(await ws.recv_text())
            await ws.send_text(json.dumps({"id": "alive", "method": "thread/list", "params": {}}))
            while True:
                msg = json.loads(await ws.recv_text())
                if msg.get("id") == "alive":
                    await ws.close()
                    return "result" in msg
    except (WsClosed, trio.TooSlowError, OSError):
        return False


async def run_fuzz(
    daemon: Daemon, cases: int, *, seed: int = 0, slow_connections: int = 20
) -> FuzzReport:
    """Fuzz every surface with ``cases`` cases each; then check the daemon."""
    random.Random(seed)
    report = FuzzReport()
    began = time.monotonic()
    sessions, threads = await _sessions(daemon, 3)
    report.sessions = len(sessions)
    report.rss_start_kib = rss_kib(daemon.process.pid)
    report.heap_blocks_start = await gauge(daemon, "argus_python_heap_blocks")
    # Warm up with the same mix (first connections, caches, and the allocator's high-water
    # mark for 1 MiB frames) before the baseline: what is compared is growth per case.
    warm = min(cases, WARM_UP_CASES)
    await fuzz_ws(daemon, sessions, threads, warm, random.Random(seed + 1))
    await fuzz_nodes(daemon, warm, random.Random(seed + 7))
    await fuzz_mcp(daemon, warm, random.Random(seed + 8))
    await fuzz_http(daemon, warm, random.Random(seed + 2), set(sessions))
    await trio.sleep(2.0)
    report.rss_before_kib = rss_kib(daemon.process.pid)
    report.replay_before = await replay_bytes(daemon)
    report.heap_blocks_before = await gauge(daemon, "argus_python_heap_blocks")
    # fastws waits 10 s for an upgrade's head, then hypercorn 5 s more (keep-alive timeout).
    slow_for = 30.0
    async with trio.open_nursery() as nursery:

        async def surface(name: str, fn: Any, *args: Any) -> None:
            report.surfaces[name] = await fn(*args)

        nursery.start_soon(surface, "slowloris", slowloris, daemon, slow_connections, slow_for)
        nursery.start_soon(
            surface, "/ws", fuzz_ws, daemon, sessions, threads, cases, random.Random(seed + 3)
        )
        nursery.start_soon(surface, "/nodes/ws", fuzz_nodes, daemon, cases, random.Random(seed + 4))
        nursery.start_soon(surface, "/mcp", fuzz_mcp, daemon, cases, random.Random(seed + 5))
        nursery.start_soon(
            surface, "HTTP API", fuzz_http, daemon, cases, random.Random(seed + 6), set(sessions)
        )
    async with httpx.AsyncClient(base_url=daemon.base_url, timeout=REPLY_TIMEOUT_S) as http:
        report.healthy = daemon.process.returncode is None and (
            await http.get("/healthz")
        ).json() == {"ok": True}
    report.sessions_answering = sum([await _answers(daemon, s) for s in sessions])
    await trio.sleep(2.0)  # let closed connections and finished tasks be freed
    report.rss_after_kib = rss_kib(daemon.process.pid)
    report.replay_after = await replay_bytes(daemon)
    report.heap_blocks_after = await gauge(daemon, "argus_python_heap_blocks")
    report.tracebacks = daemon.log_text.count("Traceback")
    report.seconds = time.monotonic() - began
    return report


def summary(report: FuzzReport) -> list[str]:
    """Printable lines."""
    lines = []
    for name, stats in report.surfaces.items():
        top = ", ".join(f"{k} {v}" for k, v in stats.answers.most_common(6))
        lines.append(
            f"fuzz {name:<10} {stats.cases:>6} cases: undefined {len(stats.failures)}, "
            f"stuck {stats.stuck}  [{top}]"
        )
        if stats.slowest_close_s:
            lines.append(f"    slowest close after {stats.slowest_close_s:.1f}s")
        lines += [f"    {f}" for f in stats.failures[:5]]
    lines.append(
        f"fuzz after: healthy={report.healthy} sessions answering "
        f"{report.sessions_answering}/{report.sessions}, tracebacks {report.tracebacks}, "
        f"RSS {report.rss_start_kib} at start, {report.rss_before_kib} after the warm-up -> "
        f"{report.rss_after_kib} KiB "
        f"({report.memory_ratio:.2f}x; replay logs {report.replay_before // 1024} -> "
        f"{report.replay_after // 1024} KiB; live Python heap blocks "
        f"{report.heap_blocks_start} at start, {report.heap_blocks_before} after the warm-up "
        f"-> {report.heap_blocks_after}), {report.seconds:.0f}s"
    )
    return lines


async def main_async(cases: int, seed: int) -> int:
    """A fresh daemon, fuzzed, figures printed."""
    with tempfile.TemporaryDirectory(prefix="argus-fuzz-") as tmp:
        async with run_daemon(Path(tmp) / "home", env=FUZZ_ENV) as daemon:
            report = await run_fuzz(daemon, cases, seed=seed)
    for line in summary(report):
        print(line)
    return 0 if report.clean and report.memory_ratio <= 1.10 else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.fuzz [--cases N] [--seed S]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz")
    parser.add_argument("--cases", type=int, default=10_000, help="cases per surface")
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    return trio.run(main_async, options.cases, options.seed)


if __name__ == "__main__":
    sys.exit(main())

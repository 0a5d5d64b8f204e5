"""Scaling benchmarks: attach rate against session size, connection rate, idle memory.

An independent client (``bench.wsclient``, blocking sockets, in a worker thread pinned to
the client core) holds thousands of idle connections to the real daemon, whose runtimes
are ``bench.bench_runtime`` (answers at once, so the gateway's own cost is what is seen):

* **attach**: clients join one session in steps of ``STEP``; each reads its
  ``argus/session`` frame and makes one request the runtime answers, then stays idle. The
  rate of each step is reported against how many clients were attached already: it must
  not fall as the session grows (issue 14: it fell from 186/s to 33/s).
* **connect**: new connections each with their own ``tcp`` session (session frame plus one
  answered request), and the gateway's memory per such idle connection.
* **idle attached**: the gateway's memory per idle client attached to one session.

Memory is the daemon's RSS delta over a few thousand connections, read after the senders
of idle clients have exited (``subscriber.IDLE_EXIT_S``). Loops are bounded in count and
time; traffic stays on 127.0.0.1.
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
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from argus.sessions.subscriber import IDLE_EXIT_S
from argus.testing import Daemon, run_daemon
from bench.argus_bench import CLIENT_CPU, SERVER_CPU, pin_client, rss_kib
from bench.wsclient import FastWsClient

Row = dict[str, Any]
STEP = 1000
WORKERS = 8  # connections being opened at once
# By path: a runtime runs in its session's workspace, where ``bench`` is not importable.
RUNTIME_SCRIPT = Path(__file__).with_name("bench_runtime.py")
DEADLINE = 300


def port_of(daemon: Daemon) -> int:
    """The daemon's TCP port."""
    return int(daemon.base_url.rsplit(":", 1)[1])


def open_client(port: int, query: str, request_id: int = 1) -> tuple[FastWsClient, str]:
    """Connect, read ``argus/session``, make one request the runtime answers."""
    client = FastWsClient(port, "/ws" + query)
    session = json.loads(client.recv_frame())["params"]["id"]
    client.send_text(json.dumps({"id": request_id, "method": "bench/ping", "params": {}}))
    while json.loads(client.recv_frame()).get("id") != request_id:
        pass
    return client, session


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_many(port: int, query: str, n: int) -> list[FastWsClient]:
    """``n`` clients opened ``WORKERS`` at a time (as many users connecting at once)."""
    with ThreadPoolExecutor(WORKERS) as pool:
        return [c for c, _ in pool.map(lambda i: open_client(port, query, i), range(n))]


def attach_steps(
    port: int, pid: int, steps: int
) -> tuple[list[float], list[float], list[FastWsClient]]:
    """Per step of ``STEP`` clients joining one session: clients/s and gateway CPU µs each."""
    first, session = open_client(port, "")
    held = [first]
    rates, cpu = [], []
    for _ in range(steps):
        start, used = time.perf_counter(), cpu_s(pid)
        held += open_many(port, f"?session={session}", STEP)
        rates.append(STEP / (time.perf_counter() - start))
        cpu.append((cpu_s(pid) - used) / STEP * 1e6)
    return rates, cpu, held


def connect_own(port: int, pid: int, n: int) -> tuple[float, float, list[FastWsClient]]:
    """``n`` connections each creating its own session: conn/s and gateway CPU µs each."""
    start, used = time.perf_counter(), cpu_s(pid)
    held = open_many(port, "", n)
    return n / (time.perf_counter() - start), (cpu_s(pid) - used) / n * 1e6, held


def close_all(clients: list[FastWsClient]) -> None:
    """Drop every held connection."""
    for client in clients:
        client.close()


@asynccontextmanager
async def tcp_runtime() -> AsyncIterator[int]:
    """``bench.bench_runtime --tcp`` on the client core; yields its port."""
    process = await trio.lowlevel.open_process(
        [sys.executable, str(RUNTIME_SCRIPT), "--tcp", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {CLIENT_CPU}),
    )
    try:
        assert process.stdout is not None
        data = b""
        with trio.fail_after(10):
            while not data.endswith(b"\n"):
                data += await process.stdout.receive_some(64)
        yield int(data)
    finally:
        process.kill()
        await process.wait()


def stdio_runtime_cmd() -> str:
    """ARGUS_RUNTIME_CMD for the stdio bench runtime, on the client core."""
    return f"taskset -c {CLIENT_CPU} {sys.executable} {RUNTIME_SCRIPT}"


async def settle(daemon: Daemon) -> int:
    """RSS once idle senders have exited."""
    await trio.sleep(IDLE_EXIT_S + 1.5)
    return rss_kib(daemon.process.pid)


async def bench_attach(home: Path, runs: int, steps: int) -> list[Row]:
    """Attach rate per step in the default (bridged) mode; memory per attached client."""
    env = {
        "ARGUS_RUNTIME_CMD": stdio_runtime_cmd(),
        "ARGUS_RUNTIME_NODE": "0",
        "ARGUS_MAX_SESSIONS": "100",
    }
    per_step: list[list[float]] = [[] for _ in range(steps)]
    cpu_step: list[list[float]] = [[] for _ in range(steps)]
    memory = []
    for run in range(runs):
        async with run_daemon(
            home / f"attach{run}", "--log-level", "warning", env=env, cpu=SERVER_CPU
        ) as daemon:
            port = port_of(daemon)
            warm, _ = await trio.to_thread.run_sync(open_client, port, "")
            base = await settle(daemon)
            pid = daemon.process.pid
            rates, cpu, held = await trio.to_thread.run_sync(attach_steps, port, pid, steps)
            after = await settle(daemon)
            memory.append((after - base) / (len(held) - 1))
            await trio.to_thread.run_sync(close_all, [warm, *held])
        for i, rate in enumerate(rates):
            per_step[i].append(rate)
            cpu_step[i].append(cpu[i])
    rows: list[Row] = []
    for i, rates in enumerate(per_step):
        rows.append(
            {
                "bench": "scale",
                "case": f"attach, {i * STEP}-{(i + 1) * STEP} attached",
                "value": statistics.median(rates),
                "unit": "clients/s",
                "cpu_us": statistics.median(cpu_step[i]),
            }
        )
    rows.append(
        {
            "bench": "scale",
            "case": f"memory per idle attached client ({steps * STEP})",
            "value": statistics.median(memory),
            "unit": "KiB",
        }
    )
    return rows


async def bench_connect(home: Path, runs: int, n: int) -> list[Row]:
    """New connections with their own ``tcp`` session: rate, and memory per idle one."""
    rates, memory, cpu = [], [], []
    async with tcp_runtime() as runtime_port:
        env = {
            "ARGUS_PROVISION_MODE": "tcp",
            "ARGUS_TCP_HOST": "127.0.0.1",
            "ARGUS_TCP_PORT": str(runtime_port),
            "ARGUS_MAX_SESSIONS": str(n + 10),
        }
        for run in range(runs):
            async with run_daemon(
                home / f"connect{run}", "--log-level", "warning", env=env, cpu=SERVER_CPU
            ) as daemon:
                port = port_of(daemon)
                warm, _ = await trio.to_thread.run_sync(open_client, port, "")
                base = await settle(daemon)
                pid = daemon.process.pid
                rate, used, held = await trio.to_thread.run_sync(connect_own, port, pid, n)
                after = await settle(daemon)
                rates.append(rate)
                cpu.append(used)
                memory.append((after - base) / n)
                await trio.to_thread.run_sync(close_all, [warm, *held])
    return [
        {
            "bench": "scale",
            "case": f"new connection, own tcp session ({n})",
            "value": statistics.median(rates),
            "unit": "conn/s",
            "cpu_us": statistics.median(cpu),
        },
        {
            "bench": "scale",
            "case": f"memory per idle client, own tcp session ({n})",
            "value": statistics.median(memory),
            "unit": "KiB",
        },
    ]


async def run_all(quick: bool = False) -> list[Row]:
    """Every scaling benchmark; ``quick`` shrinks counts."""
    pin_client()
    runs = 1 if quick else 3
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="argus-scale-") as tmp:
        with trio.fail_after(DEADLINE * runs):
            rows += await bench_attach(Path(tmp), runs, 2 if quick else 6)
            rows += await bench_connect(Path(tmp), runs, 1000 if quick else 2000)
    return rows


def run(quick: bool = False) -> list[Row]:
    """Synchronous entry point for ``python -m bench``."""
    return trio.run(run_all, quick)


def main() -> None:
    """``python -m bench.scale_bench [--quick]`` prints its rows."""
    for row in run("--quick" in sys.argv):
        extra = f"  (gateway CPU {row['cpu_us']:.0f} us each)" if "cpu_us" in row else ""
        print(f"{row['case']:<48} {row['value']:>10.1f} {row['unit']}{extra}")


if __name__ == "__main__":
    main()

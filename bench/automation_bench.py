"""Automation benchmarks: enqueue -> turn/start latency, and follow-up throughput.

* ``enqueue latency``: an idle lane; the time from sending ``argus/input/enqueue`` to its
  answer ``started: true`` (which the daemon sends once the runtime accepted ``turn/start``,
  i.e. after the input was stored durably, the turn assembled and started), median and p99
  over many inputs, each after the previous turn completed.
* ``follow-up throughput``: 1,000 inputs queued behind a running turn on one lane, run one
  per turn with the demo runtime answering ``/quiet`` inputs with one delta (a runtime
  that completes at once); inputs/s from
  the first follow-up's start to the last one's ``argus/turn/result``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from argus.testing import run_daemon
from bench.argus_bench import SERVER_CPU, WsClient, pin_client, ws_client

Row = dict[str, Any]


async def wait_result(client: WsClient) -> dict[str, Any]:
    """The next ``argus/turn/result``."""
    while True:
        msg = await client.recv()
        if msg.get("method") == "argus/turn/result":
            return msg["params"]


async def enqueue(client: WsClient, text: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """``argus/input/enqueue``; turn results read while waiting are kept in ``results``."""
    client.ids += 1
    await client.send({"id": client.ids, "method": "argus/input/enqueue", "params": {"text": text}})
    while True:
        msg = await client.recv()
        if msg.get("method") == "argus/turn/result":
            results.append(msg["params"])
        elif msg.get("id") == client.ids and "method" not in msg:
            return msg


async def next_result(client: WsClient, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The oldest turn result not yet taken."""
    if results:
        return results.pop(0)
    return await wait_result(client)


async def bench_enqueue_latency(client: WsClient, n: int) -> list[Row]:
    samples = []
    results: list[dict[str, Any]] = []
    for i in range(n):
        start = time.perf_counter()
        reply = await enqueue(client, f"/quiet ping {i}", results)
        samples.append(time.perf_counter() - start)
        assert reply["result"]["started"] is True, reply
        assert (await next_result(client, results))["text"] == f"ping {i}"
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return [
        {
            "bench": "auto",
            "case": "enqueue -> turn/start p50",
            "value": statistics.median(samples) * 1e3,
            "unit": "ms",
        },
        {"bench": "auto", "case": "enqueue -> turn/start p99", "value": p99 * 1e3, "unit": "ms"},
    ]


async def bench_followups(client: WsClient, n: int) -> list[Row]:
    results: list[dict[str, Any]] = []
    reply = await enqueue(client, "/slow 1 3000", results)
    assert reply["result"]["started"] is True
    for i in range(n):
        reply = await enqueue(client, f"/quiet item {i}", results)
        assert reply["result"]["queued"] is True, reply
    assert "00000000" in (await next_result(client, results))["text"]  # the slow turn
    start = time.perf_counter()
    for i in range(n):
        result = await next_result(client, results)
        assert result["text"] == f"item {i}", (i, result["text"][:80])
    elapsed = time.perf_counter() - start
    return [
        {
            "bench": "auto",
            "case": f"{n} follow-ups, one per turn",
            "value": n / elapsed,
            "unit": "inputs/s",
        }
    ]


async def run_all(quick: bool = False) -> list[Row]:
    """Both automation benchmarks against one daemon."""
    pin_client()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="argus-bench-auto-") as tmp:
        env = {"ARGUS_FOLLOWUP_MAX": "5000"}
        async with run_daemon(
            Path(tmp), "--log-level", "warning", env=env, cpu=SERVER_CPU
        ) as daemon:
            with trio.fail_after(600):
                async with ws_client(daemon) as client:
                    rows += await bench_enqueue_latency(client, 20 if quick else 200)
                async with ws_client(daemon) as client:
                    rows += await bench_followups(client, 100 if quick else 1000)
    return rows


def run(quick: bool = False) -> list[Row]:
    """Synchronous entry point."""
    return trio.run(run_all, quick)

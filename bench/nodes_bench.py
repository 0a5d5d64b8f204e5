"""Node invoke round trip through the gateway.

A real ``argus node-host`` connects to the real daemon; the client times
``POST /nodes/invoke`` of ``system.which`` (a command answered without a process) from
request to response, sequentially. That is the path an agent's ``node_invoke`` takes minus
MCP's JSON-RPC wrapping: HTTP in, registry, WebSocket to the node, the node's answer, back.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trio

from argus.testing import run_daemon
from bench.argus_bench import SERVER_CPU, pin_client

Row = dict[str, Any]
TOKEN = "bench-admin"


async def run_all(quick: bool = False) -> list[Row]:
    """Start a daemon and a node-host, then time invokes."""
    pin_client()
    n = 200 if quick else 2000
    with tempfile.TemporaryDirectory(prefix="argus-bench-nodes-") as tmp:
        env = {"ARGUS_TOKEN": TOKEN, "ARGUS_RUNTIME_NODE": "0"}
        async with run_daemon(
            Path(tmp) / "gw", "--log-level", "warning", env=env, cpu=SERVER_CPU
        ) as daemon:
            node_env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
            node_env["ARGUS_NODE_TOKEN"] = TOKEN
            ws = "ws" + daemon.base_url[len("http") :] + "/nodes/ws"
            cmd = [
                sys.executable,
                "-m",
                "argus",
                "node-host",
                "--url",
                ws,
                "--node-id",
                "bench",
                "--state-dir",
                str(Path(tmp) / "node"),
            ]
            node = await trio.lowlevel.open_process(
                cmd, env=node_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                async with httpx.AsyncClient(
                    base_url=daemon.base_url, headers={"Authorization": f"Bearer {TOKEN}"}
                ) as http:
                    with trio.fail_after(30):
                        while not (await http.get("/nodes")).json()["nodes"]:
                            await trio.sleep(0.05)
                    body = {"node": "bench", "command": "system.which", "params": {"bin": "sh"}}
                    samples = []
                    with trio.fail_after(300):
                        for _ in range(n):
                            start = time.perf_counter()
                            reply = (await http.post("/nodes/invoke", json=body)).json()
                            samples.append(time.perf_counter() - start)
                            assert reply["ok"] is True, reply
            finally:
                node.terminate()
                await node.wait()
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return [
        {
            "bench": "nodes",
            "case": "invoke round trip p50",
            "value": statistics.median(samples) * 1e6,
            "unit": "us",
        },
        {"bench": "nodes", "case": "invoke round trip p99", "value": p99 * 1e6, "unit": "us"},
    ]


def run(quick: bool = False) -> list[Row]:
    """Synchronous entry point."""
    return trio.run(run_all, quick)

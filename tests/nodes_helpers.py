"""Helpers for the node tests: a real ``argus node-host`` subprocess and node polling."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from tests.harness import Daemon

ADMIN = "admin-secret-token"


def free_port() -> int:
    """A port free on 127.0.0.1 right now (for a daemon restarted on the same port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def node_host(
    url: str, node_id: str, state_dir: Path, token: str | None = ADMIN, *args: str
) -> AsyncIterator[trio.Process]:
    """Run ``argus node-host`` until the block ends (SIGTERM, then kill)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
    if token:
        env["ARGUS_NODE_TOKEN"] = token
    argv = [sys.executable, "-m", "argus", "node-host", "--url", url, "--node-id", node_id]
    argv += ["--state-dir", str(state_dir), *args]
    process = await trio.lowlevel.open_process(argv, env=env, stdin=subprocess.DEVNULL)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            with trio.move_on_after(5):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


async def wait_node(http: httpx.AsyncClient, node_id: str, present: bool = True) -> dict[str, Any]:
    """Poll ``GET /nodes`` until ``node_id`` is (or is no longer) listed."""
    while True:
        try:
            nodes = (await http.get("/nodes")).json()["nodes"]
        except httpx.HTTPError:
            nodes = []
        found = [n for n in nodes if n["nodeId"] == node_id]
        if bool(found) == present:
            return found[0] if found else {}
        await trio.sleep(0.05)


async def invoke(
    http: httpx.AsyncClient, node: str, command: str, params: Any = None, **extra: Any
) -> dict[str, Any]:
    """``POST /nodes/invoke``; returns the JSON body (asserting 200)."""
    body = {"node": node, "command": command, "params": params, **extra}
    r = await http.post("/nodes/invoke", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def nodes_url(daemon: Daemon, **query: str) -> str:
    """The daemon's ``/nodes/ws`` URL."""
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return daemon.ws_url + "/nodes/ws" + ("?" + q if q else "")

"""Test harness: WebSocket clients for the real daemon (started by ``argus.testing``).

Integration tests run ``python -m argus serve --port 0`` exactly as a user would, parse the
``listening on`` line to learn the port, and talk to it with trio-websocket and httpx.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from argus.testing import Daemon, daemon_env, run_daemon

__all__ = [
    "Client",
    "Daemon",
    "connect",
    "daemon_env",
    "run_daemon",
    "text_input",
    "wait_process_gone",
    "ws_url",
]

DEFAULT_TIMEOUT = 10.0


class Client:
    """A /ws client that remembers notifications it skipped while waiting for a response."""

    def __init__(self, ws: WebSocketConnection, session: dict[str, Any]) -> None:
        self.ws = ws
        self.session = session
        self.id = session["id"]
        self.seen: list[dict[str, Any]] = []
        self._ids = 0

    async def send(self, obj: Any) -> None:
        """Send one JSON message."""
        await self.ws.send_message(json.dumps(obj))

    async def recv(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The next message."""
        with trio.fail_after(timeout):
            msg = json.loads(await self.ws.get_message())
        self.seen.append(msg)
        return msg

    async def recv_until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """Read until a message matches; earlier ones stay in ``seen``."""
        with trio.fail_after(timeout):
            while True:
                msg = await self.recv(timeout)
                if predicate(msg):
                    return msg

    async def request(
        self,
        method: str,
        params: Any = None,
        *,
        req_id: Any = ...,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> dict[str, Any]:
        """Send a request and wait for the response with its id."""
        if req_id is ...:
            self._ids += 1
            req_id = f"r{self._ids}"
        await self.send({"id": req_id, "method": method, "params": params or {}})
        return await self.recv_until(lambda m: m.get("id") == req_id and "method" not in m, timeout)

    async def handshake(self) -> dict[str, Any]:
        """``initialize`` then ``initialized``; returns the initialize result."""
        response = await self.request(
            "initialize", {"clientInfo": {"name": "test", "version": "1"}}
        )
        await self.send({"method": "initialized"})
        return response["result"]

    async def start_thread(self) -> str:
        """``thread/start``; returns the thread id."""
        response = await self.request("thread/start", {})
        return response["result"]["thread"]["id"]

    async def start_turn(self, thread_id: str, text: str) -> dict[str, Any]:
        """``turn/start`` with one text input; returns the response."""
        params = {
            "threadId": thread_id,
            "input": [{"type": "text", "text": text, "text_elements": []}],
        }
        return await self.request("turn/start", params)


def ws_url(daemon: Daemon, path: str = "/ws", **query: Any) -> str:
    """A /ws URL with the given query parameters (None values left out)."""
    q = {k: v for k, v in query.items() if v is not None}
    return daemon.ws_url + path + (("?" + urlencode(q)) if q else "")


@asynccontextmanager
async def connect(
    daemon: Daemon, *, headers: list[tuple[str, str]] | None = None, **query: Any
) -> AsyncIterator[Client]:
    """Open /ws and read the ``argus/session`` frame."""
    async with open_websocket_url(
        ws_url(daemon, **query),
        extra_headers=headers or [],
        message_queue_size=100_000,
        max_message_size=64 * 1024 * 1024,
    ) as ws:
        with trio.fail_after(DEFAULT_TIMEOUT):
            first = json.loads(await ws.get_message())
        assert first["method"] == "argus/session", first
        yield Client(ws, first["params"])


async def wait_process_gone(pid: int, timeout: float = 10) -> None:
    """Poll until process ``pid`` no longer exists (fails the test after ``timeout``)."""
    with trio.fail_after(timeout):
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            await trio.sleep(0.05)


def text_input(text: str) -> list[dict[str, Any]]:
    """A turn/start ``input`` with one text item."""
    return [{"type": "text", "text": text, "text_elements": []}]

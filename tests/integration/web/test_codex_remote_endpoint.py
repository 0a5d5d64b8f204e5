"""``/`` as the codex remote endpoint, and the default session, against the real daemon.

These check the wire facts the codex 0.169.0 TUI depends on (issue 11) with the demo
runtime: the string id ``"initialize"`` comes back exactly, on every connection; nothing is
replayed unasked and no ``argusSeq`` is added; the compression header is never echoed; the
session comes from the token; approvals are routed to another client when their owner left.
The real TUI is in tests/realpeer/test_codex_tui.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from argus.auth import derive_session_token
from argus.testing import Daemon, run_daemon
from tests.harness import connect, text_input
from tests.nodes_helpers import free_port

TOKEN = "remote-endpoint-token"
CODEX_HEADERS = [("x-codex-app-server-compression", "zstd-stream-v1")]


@asynccontextmanager
async def remote(
    daemon: Daemon, token: str | None = TOKEN, headers: list[tuple[str, str]] | None = None
) -> AsyncIterator[WebSocketConnection]:
    """Connect like the codex TUI: ``GET /`` with a bearer token and its compression header."""
    extra = [*CODEX_HEADERS, *(headers or [])]
    if token is not None:
        extra.append(("Authorization", f"Bearer {token}"))
    async with open_websocket_url(daemon.ws_url + "/", extra_headers=extra) as ws:
        yield ws


async def recv(ws: WebSocketConnection, timeout: float = 10) -> dict[str, Any]:
    """The next message."""
    with trio.fail_after(timeout):
        return json.loads(await ws.get_message())


async def until(ws: WebSocketConnection, predicate: Any, seen: list | None = None) -> dict:
    """Read until a message matches (earlier ones go to ``seen``)."""
    while True:
        message = await recv(ws)
        if seen is not None:
            seen.append(message)
        if predicate(message):
            return message


async def tui_handshake(ws: WebSocketConnection) -> dict[str, Any]:
    """The first frames of a codex TUI: initialize with the string id, then initialized."""
    hello = await recv(ws)
    assert hello["method"] == "argus/session"
    await ws.send_message(
        json.dumps(
            {
                "id": "initialize",
                "method": "initialize",
                "params": {"clientInfo": {"name": "codex-tui", "version": "0.169.0"}},
            }
        )
    )
    answer = await recv(ws)
    assert answer["id"] == "initialize" and "result" in answer, answer
    await ws.send_message(json.dumps({"method": "initialized"}))
    return hello["params"]


async def request(ws: WebSocketConnection, req_id: Any, method: str, params: dict) -> dict:
    """Send a request with exactly ``req_id`` and return its response."""
    await ws.send_message(json.dumps({"id": req_id, "method": method, "params": params}))
    return await until(ws, lambda m: m.get("id") == req_id and "method" not in m)


def daemon(tmp_path: Path, *args: str):
    """The daemon with auth on (the TUI's admin-token case)."""
    return run_daemon(tmp_path / "home", *args, env={"ARGUS_TOKEN": TOKEN})


async def test_codex_wire_facts(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with daemon(tmp_path) as d:
            async with remote(d) as ws:
                # The compression header is never echoed (codex would expect zstd frames).
                names = [name.lower() for name, _ in ws.handshake_headers]
                assert b"x-codex-app-server-compression" not in names
                session = await tui_handshake(ws)
                assert session["id"] == "default" and session["created"] is True
                # Integer ids restarting at 1, and UUID-like strings, come back as sent.
                started = await request(ws, 1, "thread/start", {"cwd": None})
                thread = started["result"]["thread"]["id"]
                listed = await request(ws, "a7c2-uuid", "thread/list", {})
                assert listed["id"] == "a7c2-uuid"
                seen: list[dict] = []
                await request(ws, 2, "turn/start", {"threadId": thread, "input": text_input("hi")})
                await until(ws, lambda m: m.get("method") == "turn/completed", seen)
                assert all("argusSeq" not in m for m in seen)  # the runtime's own shapes
            # A second connection: its own initialize answer (same id, same type) from the
            # cache, no replay of what came before, ids restarting at 1 do not clash.
            async with remote(d) as ws:
                session = await tui_handshake(ws)
                assert session["id"] == "default" and session["created"] is False
                read = await request(ws, 1, "thread/read", {"threadId": thread})
                assert read["result"]["thread"]["id"] == thread
                await ws.send_message(json.dumps({"id": 2, "method": "thread/list", "params": {}}))
                first = await recv(ws)
                assert first["id"] == 2, f"something was replayed unasked: {first}"
            async with httpx.AsyncClient(base_url=d.base_url) as http:
                page = await http.get("/")  # plain GET / is unchanged
            assert page.status_code == 200 and "Argus gateway is running" in page.text


async def test_session_comes_from_the_token(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with daemon(tmp_path) as d:
            async with connect(d, headers=[("Authorization", f"Bearer {TOKEN}")]) as own:
                sid = own.id  # a non-default session, made over /ws
            session_token = derive_session_token(TOKEN, sid)
            async with remote(d, token=session_token) as ws:
                assert (await tui_handshake(ws))["id"] == sid
            forged = derive_session_token("another-secret", sid)
            with pytest.raises(ConnectionClosed) as closed:
                async with remote(d, token=forged) as ws:
                    await recv(ws)
            assert closed.value.reason.code == 1008


async def test_refusals(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with daemon(tmp_path) as d:
            with pytest.raises(HandshakeError):  # HTTP 403 before the upgrade
                async with remote(d, headers=[("Origin", "https://evil.example")]):
                    pass
            for bad in ("wrong", None):
                with pytest.raises(ConnectionClosed) as closed:
                    async with remote(d, token=bad) as ws:
                        await recv(ws)
                assert closed.value.reason.code == 1008
                assert closed.value.reason.reason == "Unauthorized"
            async with httpx.AsyncClient(base_url=d.base_url) as http:
                sessions = (
                    await http.get("/sessions", headers={"Authorization": f"Bearer {TOKEN}"})
                ).json()
            assert sessions["sessions"] == []  # refused connections created nothing


async def test_approval_goes_to_another_client_when_the_owner_left(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with daemon(tmp_path) as d:
            async with remote(d) as owner:
                await tui_handshake(owner)
                thread = (await request(owner, 1, "thread/start", {}))["result"]["thread"]["id"]
                await request(
                    owner, 2, "turn/start", {"threadId": thread, "input": text_input("/approve ls")}
                )
                asked = await until(
                    owner, lambda m: m.get("method", "").endswith("requestApproval")
                )
            async with remote(d) as other:
                await tui_handshake(other)
                again = await until(
                    other, lambda m: m.get("method", "").endswith("requestApproval")
                )
                assert again["id"] == asked["id"] and "argusSeq" not in again
                await other.send_message(
                    json.dumps({"id": again["id"], "result": {"decision": "accept"}})
                )
                done = await until(other, lambda m: m.get("method") == "turn/completed")
                assert done["params"]["turn"]["status"] == "completed"


async def test_default_session_is_durable_and_reachable_everywhere(tmp_path: Path) -> None:
    port = str(free_port())
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with trio.fail_after(90):
        async with daemon(tmp_path, "--port", port) as d:
            async with httpx.AsyncClient(base_url=d.base_url, headers=auth) as http:
                # The original's README call: no sessionId -> the default session.
                enqueued = await http.post(
                    "/automation/systemEvent/enqueue", json={"text": "wake up"}
                )
                assert enqueued.status_code == 200, enqueued.text
                assert enqueued.json()["sessionId"] == "default"
            async with connect(d, headers=list(auth.items()), session="default") as client:
                assert client.id == "default" and client.session["created"] is False
                await client.handshake()
                thread = await client.start_thread()
        async with daemon(tmp_path, "--port", port) as d:  # a restart: the same session
            async with remote(d) as ws:
                session = await tui_handshake(ws)
                assert session["id"] == "default" and session["created"] is False
                resumed = await request(ws, 1, "thread/resume", {"threadId": thread})
                assert resumed["result"]["thread"]["id"] == thread
            async with httpx.AsyncClient(base_url=d.base_url, headers=auth) as http:
                listed = (await http.get("/sessions")).json()["sessions"]
                assert [(s["sessionId"], s["default"]) for s in listed] == [("default", True)]
                assert (await http.delete("/sessions/default")).status_code == 200
            async with connect(d, headers=list(auth.items()), session="default") as client:
                assert client.session["created"] is True  # the next use made a new one

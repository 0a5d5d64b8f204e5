"""A session's token cannot read or drive another session, on any surface (a table).

Two sessions, A and B, on a daemon with an admin token. Every row is one attempt made with
A's token against B (or against the admin's surfaces): ``/ws`` (attach, ``since``),
``/`` (codex ``--remote``: A's token lands in A, where B's thread is neither listed,
resumed, read nor driven), ``/nodes/ws`` (register B's runtime node), ``/mcp`` (list,
invoke B's node, cron), and every
HTTP route. Each must be refused, and no answer may echo a token. The last rows check the
other half of the promise: ids with ``..``, NUL or over-long values are refused before
anything touches the filesystem (no directory appears under the home).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from argus.auth import derive_session_token
from bench.rawws import RawWs, WsClosed, port_of
from tests.conftest import _leaks, _scan_log
from tests.harness import Daemon, connect, text_input
from tests.integration.nodes.test_nodes_scope import mcp_call
from tests.integration.web.test_codex_remote_endpoint import remote, request, tui_handshake
from tests.nodes_helpers import ADMIN, wait_node

# (method, path, body) for every HTTP route; {b} is session B's id.
HTTP_ROUTES = [
    ("GET", "/sessions", None),
    ("DELETE", "/sessions/{b}", None),
    ("GET", "/metrics", None),
    ("GET", "/nodes", None),
    ("POST", "/nodes/invoke", {"node": "runtime:{b}", "command": "system.which"}),
    ("GET", "/automation/state", None),
    ("GET", "/automation/cron/jobs", None),
    ("GET", "/automation/cron/jobs?sessionId={b}", None),
    ("POST", "/automation/cron/jobs", {"sessionId": "{b}", "text": "x", "at": 1}),
    ("DELETE", "/automation/cron/jobs/j1", None),
    ("GET", "/automation/cron/jobs/j1/runs", None),
    ("POST", "/automation/systemEvent/enqueue", {"sessionId": "{b}", "text": "x"}),
    ("POST", "/automation/heartbeat/now", {"sessionId": "{b}"}),
]
BAD_IDS = ["..", "../x", "a%00b", "x" * 300, "%2e%2e%2fetc", "a\\b"]


def fill(value: Any, b: str) -> Any:
    """The row's value with session B's id put in."""
    return json.loads(json.dumps(value).replace("{b}", b)) if value is not None else None


async def ws_close_code(daemon: Daemon, target: str, token: str) -> int:
    """Close code /ws or /nodes/ws gives ``token`` for ``target`` (0 if it was let in)."""
    ws = await RawWs.connect(port_of(daemon), target, {"Authorization": f"Bearer {token}"})
    try:
        with trio.fail_after(10):
            if target.startswith("/nodes/ws"):
                node_id = target.partition("node=")[2]
                await ws.send_text(json.dumps({"type": "connect", "nodeId": node_id}))
            await ws.recv()
            return 0
    except WsClosed as exc:
        assert ADMIN not in exc.reason
        return exc.code
    finally:
        await ws.abort()


async def test_a_session_token_opens_nothing_of_another_session(daemon_factory, tmp_path) -> None:
    with trio.fail_after(90):
        async with daemon_factory(ARGUS_TOKEN=ADMIN) as d, d.http(ADMIN) as admin:
            async with connect(d, token=ADMIN) as a, connect(d, token=ADMIN) as b:
                await b.handshake()
                sa, sb = a.id, b.id
                await wait_node(admin, f"runtime:{sb}")
                token_a = derive_session_token(ADMIN, sa)
                refused: list[str] = []
                # /: A's token opens A (never B); B's thread is out of reach from there.
                thread_b = await b.start_thread()
                async with remote(d, token=token_a, headers=[]) as ra:
                    assert (await tui_handshake(ra))["id"] == sa
                    listed = await request(ra, "l", "thread/list", {})
                    assert thread_b not in json.dumps(listed["result"])
                    for rid, method, params in (
                        ("r", "thread/resume", {"threadId": thread_b}),
                        ("d", "thread/read", {"threadId": thread_b}),
                        ("t", "turn/start", {"threadId": thread_b, "input": text_input("from A")}),
                    ):
                        answer = await request(ra, rid, method, params)
                        assert "error" in answer and "result" not in answer, (method, answer)
                        refused.append(f"/ {method}")
                # B's thread ran nothing from A.
                read = await b.request("thread/read", {"threadId": thread_b, "includeTurns": True})
                assert read["result"]["thread"]["turns"] == [], read
                # /ws: neither B's session nor its replay (session tokens open no /ws).
                for target in (f"/ws?session={sb}", f"/ws?session={sb}&since=0", "/ws"):
                    assert await ws_close_code(d, target, token_a) == 1008, target
                    refused.append(target)
                # /nodes/ws: cannot pose as B's runtime node.
                target = f"/nodes/ws?node=runtime:{sb}"
                assert await ws_close_code(d, target, token_a) == 1008
                refused.append(target)
                async with d.http(token_a) as http:
                    # /mcp: B's runtime node is invisible and unreachable.
                    listed = await mcp_call(http, "nodes_list", {})
                    ids = [n["nodeId"] for n in listed["structuredContent"]["nodes"]]
                    assert f"runtime:{sb}" not in ids
                    for node in (f"runtime:{sb}", sb, f"runtime:{sb.upper()}"):
                        res = await mcp_call(
                            http, "node_invoke", {"node": node, "command": "system.which"}
                        )
                        assert res["isError"], res
                        assert res["structuredContent"]["error"]["code"] == "NODE_NOT_FOUND"
                        refused.append(f"/mcp node_invoke {node}")
                    # cron acts on the caller's own session only: B's jobs never show.
                    await admin.post(
                        "/automation/cron/jobs",
                        json={"sessionId": sb, "text": "b's job", "expr": "0 0 1 1 *"},
                    )
                    jobs = await mcp_call(http, "cron", {"action": "list"})
                    assert "b's job" not in json.dumps(jobs)
                    refused.append("/mcp cron list")
                    # Every HTTP route is the admin's.
                    for method, path, body in HTTP_ROUTES:
                        r = await http.request(method, path.replace("{b}", sb), json=fill(body, sb))
                        assert r.status_code == 401, (method, path, r.status_code)
                        assert r.json()["code"] == "unauthorized"
                        assert token_a not in r.text and ADMIN not in r.text
                        refused.append(f"{method} {path}")
                # B is untouched and still answers.
                assert (await b.request("thread/list"))["result"] is not None
                sessions = (await admin.get("/sessions")).json()["sessions"]
                assert sorted(s["sessionId"] for s in sessions) == sorted([sa, sb])
                assert len(refused) == 3 + 4 + 3 + 1 + len(HTTP_ROUTES)


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_hostile_ids_are_refused_before_the_filesystem(daemon, bad: str) -> None:
    with trio.fail_after(30):
        home: Path = daemon.home
        before = sorted(p.name for p in (home / "sessions").glob("*"))
        code = await ws_close_code(daemon, f"/ws?session={bad}", "")
        assert code == 1008
        assert await ws_close_code(daemon, f"/nodes/ws?node={bad}", "") == 1008
        async with httpx.AsyncClient(base_url=daemon.base_url) as http:
            r = await http.delete(f"/sessions/{bad}")
            assert 400 <= r.status_code < 500, r.text
            r = await http.post(
                "/automation/systemEvent/enqueue", json={"sessionId": bad, "text": "x"}
            )
            assert 400 <= r.status_code < 500, r.text
        assert sorted(p.name for p in (home / "sessions").glob("*")) == before
        assert not (home.parent / "x").exists()


def test_the_log_scanner_finds_a_token(tmp_path) -> None:
    """The conftest scanner is not a no-op: a token in a log line is reported."""

    class Fake:
        home = tmp_path
        log_lines = [f"INFO x: bearer {derive_session_token('s3cret-value', '0123456789ab')}"]

    _scan_log(Fake(), {})  # type: ignore[arg-type]
    _scan_log(Fake(), {"ARGUS_TOKEN": "not-in-any-line-1"})  # type: ignore[arg-type]
    found = list(_leaks)
    _leaks.clear()
    assert len(found) == 2

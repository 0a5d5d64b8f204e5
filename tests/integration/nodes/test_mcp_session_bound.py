"""The MCP session table is bounded (ARGUS_MCP_MAX_SESSIONS): least recently used goes first.

Why: every ``initialize`` opens a session that lives until ``ARGUS_MCP_SESSION_TTL_S``;
without a count bound a client looping on ``initialize`` would grow the table for an hour.
"""

from __future__ import annotations

import httpx
import trio

ACCEPT = {"Accept": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}


async def open_session(http: httpx.AsyncClient) -> str:
    """``initialize``; the new session's id."""
    r = await http.post("/mcp", json=INIT, headers=ACCEPT)
    assert r.status_code == 200, r.text
    return r.headers["mcp-session-id"]


async def ping(http: httpx.AsyncClient, session_id: str) -> int:
    """The status a ping on ``session_id`` gets."""
    body = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    r = await http.post("/mcp", json=body, headers={**ACCEPT, "MCP-Session-Id": session_id})
    return r.status_code


async def test_past_the_bound_the_least_recently_used_session_is_dropped(daemon_factory) -> None:
    with trio.fail_after(60):
        async with daemon_factory(ARGUS_MCP_MAX_SESSIONS="3") as d, d.http() as http:
            first, second, third = [await open_session(http) for _ in range(3)]
            assert await ping(http, first) == 200  # first is now the most recently used
            fourth = await open_session(http)
            # second was the least recently used: it went; the other three still answer.
            r = await http.post(
                "/mcp",
                json={"jsonrpc": "2.0", "id": 3, "method": "ping"},
                headers={**ACCEPT, "MCP-Session-Id": second},
            )
            assert r.status_code == 404 and r.json()["code"] == "unknown_session", r.text
            for session_id in (first, third, fourth):
                assert await ping(http, session_id) == 200
            # Fifty more initializes keep it at three: only the newest answer.
            newest = [await open_session(http) for _ in range(50)]
            assert [await ping(http, s) for s in (first, third, fourth)] == [404] * 3
            assert [await ping(http, s) for s in newest[-3:]] == [200] * 3
            assert await ping(http, newest[-4]) == 404

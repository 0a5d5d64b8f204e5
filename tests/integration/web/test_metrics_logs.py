"""What an operator sees: GET /metrics, JSON logs, and auth failures rate-limited per address."""

from __future__ import annotations

import json

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from trio_websocket import ConnectionClosed, open_websocket_url

from tests.harness import connect, text_input, ws_url

TOKEN = "metrics-admin-token-0123456789"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, keyed by name and sorted labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def stream_turn(client, n: int) -> str:
    """Start a ``/stream n`` turn and return the concatenated delta text."""
    await client.handshake()
    thread = await client.start_thread()
    await client.request("turn/start", {"threadId": thread, "input": text_input(f"/stream {n}")})
    text = []
    while True:
        msg = await client.recv()
        if msg.get("method") == "item/agentMessage/delta":
            text.append(msg["params"]["delta"])
        if msg.get("method") == "turn/completed":
            return "".join(text)


async def test_metrics_are_admin_only_and_count_what_happened(daemon_factory) -> None:
    with trio.fail_after(60):
        async with daemon_factory(ARGUS_TOKEN=TOKEN) as daemon:
            async with daemon.http() as anon:
                refused = await anon.get("/metrics")
                assert refused.status_code == 401
                assert TOKEN not in refused.text
            headers = [("Authorization", f"Bearer {TOKEN}")]
            async with connect(daemon, headers=headers) as client:
                text = await stream_turn(client, 500)
                assert text == "".join(f"{i:08d}" for i in range(500))
                async with daemon.http(TOKEN) as http:
                    page = await http.get("/metrics")
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/plain")
            got = samples(page.text)
            assert got[("argus_sessions", (("state", "running"),))] == 1
            assert got[("argus_clients", ())] == 1
            # Every delta went out, one to one or merged for a client that lagged.
            sent = got[("argus_frames_out_total", ())] + got[("argus_coalesced_deltas_total", ())]
            assert sent >= 500
            assert got[("argus_bytes_out_total", ())] >= 500 * 8
            assert got[("argus_frames_in_total", (("surface", "ws"),))] >= 4
            assert got[("argus_turns_started_total", (("kind", "client"),))] == 1
            assert got[("argus_turns_completed_total", (("kind", "client"),))] == 1
            assert got[("argus_replay_log_bytes", ())] > 500 * 8
            assert got[("argus_auth_failures_total", (("surface", "http"),))] == 1
            assert got[("argus_store_transaction_seconds_count", ())] >= 1
            assert got[("argus_followups_queued", ())] == 0
            # No session id ever appears as a label value.
            assert client.id not in page.text


async def test_auth_failures_are_rate_limited_per_address(daemon_factory) -> None:
    with trio.fail_after(60):
        env = {"ARGUS_TOKEN": TOKEN, "ARGUS_AUTH_FAIL_LIMIT": "3"}
        async with daemon_factory(**env) as daemon:
            async with daemon.http("wrong-token") as bad, daemon.http(TOKEN) as good:
                assert (await good.get("/sessions")).status_code == 200
                for _ in range(3):
                    assert (await bad.get("/sessions")).status_code == 401
                limited = await bad.get("/sessions")
                assert limited.status_code == 429
                assert limited.json()["code"] == "rate_limited"
                # The right token from the same address waits too (or guessing goes on).
                assert (await good.get("/sessions")).status_code == 429
                assert (await good.post("/mcp", json={})).status_code == 429
                assert (await good.get("/healthz")).status_code == 200
            for path in ("/ws", "/nodes/ws"):
                async with open_websocket_url(
                    ws_url(daemon, path), extra_headers=[("Authorization", f"Bearer {TOKEN}")]
                ) as ws:
                    with pytest.raises(ConnectionClosed) as closed:
                        await ws.get_message()
                    assert closed.value.reason.code == 4429
            assert TOKEN not in daemon.log_text


async def test_codex_remote_endpoint_is_rate_limited_and_counted(daemon_factory) -> None:
    """``/`` (codex --remote) counts refused tokens under ``remote`` and is limited too."""

    async def close_code(token: str) -> int:
        headers = [("Authorization", f"Bearer {token}")]
        async with open_websocket_url(ws_url(daemon, "/"), extra_headers=headers) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
        return closed.value.reason.code

    with trio.fail_after(60):
        env = {"ARGUS_TOKEN": TOKEN, "ARGUS_AUTH_FAIL_LIMIT": "3"}
        async with daemon_factory(**env) as daemon:
            for _ in range(2):
                assert await close_code("wrong-token") == 1008
            async with daemon.http(TOKEN) as http:
                got = samples((await http.get("/metrics")).text)
            assert got[("argus_auth_failures_total", (("surface", "remote"),))] == 2
            assert got[("argus_auth_failures_total", (("surface", "ws"),))] == 0
            assert await close_code("wrong-token") == 1008
            # The admin token from the same address now waits on / as everywhere.
            assert await close_code(TOKEN) == 4429
            async with daemon.http(TOKEN) as http:
                assert (await http.get("/sessions")).status_code == 429
            assert TOKEN not in daemon.log_text


async def test_json_log_format(daemon_factory) -> None:
    with trio.fail_after(60):
        async with daemon_factory(ARGUS_LOG_FORMAT="json", ARGUS_LOG_LEVEL="debug") as daemon:
            async with connect(daemon) as client:
                await stream_turn(client, 10)
                sid = client.id
            async with daemon.http() as http:
                assert (await http.delete(f"/sessions/{sid}")).status_code == 200
        records = []
        for line in daemon.log_lines:
            if not line.strip() or line.startswith("argus: "):
                continue  # the start-up banners the CLI prints (not log records)
            records.append(json.loads(line))  # every log record is one JSON object
        assert records
        assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
        with_session = [r for r in records if r.get("session") == sid]
        assert with_session, [r["msg"] for r in records]
        assert all(f"session={sid}" in r["msg"] for r in with_session)

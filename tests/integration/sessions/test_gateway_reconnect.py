"""Lossless reconnect (``since``), gaps, and a slow client that must not hurt anyone else."""

from __future__ import annotations

import json

import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from tests.harness import connect, ws_url


def expected(n: int) -> str:
    return "".join(f"{i:08d}" for i in range(n))


def deltas_of(messages: list[dict]) -> list[dict]:
    return [m for m in messages if m.get("method") == "item/agentMessage/delta"]


def is_turn_completed(m: dict) -> bool:
    return m.get("method") == "turn/completed"


def check_contiguous(messages: list[dict], after: int) -> None:
    """Broadcast numbers continue from ``after`` with no gap and no repeat."""
    expect = after + 1
    for m in messages:
        if "argusSeq" not in m:
            continue
        assert m.get("argusSeqFrom", m["argusSeq"]) == expect, (m, expect)
        expect = m["argusSeq"] + 1


async def test_reconnect_with_since_while_streaming(daemon) -> None:
    with trio.fail_after(60):
        async with connect(daemon, seq=1) as client:
            await client.handshake()
            thread = await client.start_thread()
            await client.start_turn(thread, "/slow 200 5")
            for _ in range(20):
                await client.recv_until(lambda m: m.get("method") == "item/agentMessage/delta")
            first = list(client.seen)
            last = max(m["argusSeq"] for m in first if "argusSeq" in m)
        async with connect(daemon, session=client.id, since=last) as again:
            assert again.session["attached"] is True
            await again.recv_until(is_turn_completed)
            second = again.seen
        check_contiguous(second, last)
        assert [m for m in second if "argusSeq" in m], "no broadcast after reconnect"
        assert "".join(m["params"]["delta"] for m in deltas_of(first + second)) == expected(200)


async def test_seq_only_on_request(daemon) -> None:
    with trio.fail_after(30):
        async with connect(daemon) as plain, connect(daemon, session=plain.id, seq=1) as numbered:
            await plain.handshake()
            await numbered.handshake()
            thread = await plain.start_thread()
            await plain.start_turn(thread, "hi")
            await plain.recv_until(is_turn_completed)
            await numbered.recv_until(is_turn_completed)
            assert not [m for m in plain.seen if "argusSeq" in m]
            notes = [m for m in numbered.seen if "method" in m]
            assert notes and all("argusSeq" in m for m in notes)
            responses = [m for m in numbered.seen if "method" not in m]
            assert responses and not [m for m in responses if "argusSeq" in m]


async def test_since_older_than_buffer_reports_gap(daemon_factory) -> None:
    env = {"ARGUS_REPLAY_BUFFER_BYTES": "1048576", "ARGUS_CLIENT_QUEUE_BYTES": "1048576"}
    with trio.fail_after(60):
        async with daemon_factory(**env) as daemon:
            async with connect(daemon, seq=1) as client:
                await client.handshake()
                thread = await client.start_thread()
                await client.start_turn(thread, "/stream 20000")
                await client.recv_until(is_turn_completed)
            async with connect(daemon, session=client.id, since=1) as again:
                gap = await again.recv()
                assert gap["method"] == "argus/replay/gap"
                assert gap["params"]["from"] == 2
                await again.recv_until(is_turn_completed)
                check_contiguous(again.seen[1:], gap["params"]["to"])
            head = again.seen[-1]["argusSeq"]
            async with connect(daemon, session=client.id, since=head) as current:
                assert current.session["seq"] == head
                await current.request("thread/list", {})
                assert not [m for m in current.seen if "argusSeq" in m]


async def test_slow_client_is_cut_off_and_can_resume(daemon_factory) -> None:
    # The stuck client takes every delta one to one (coalesce=0), so it really falls
    # behind once its socket buffers are full; the healthy one coalesces and keeps up.
    env = {"ARGUS_CLIENT_QUEUE_BYTES": "4194304", "ARGUS_REPLAY_BUFFER_BYTES": "134217728"}
    n = 200_000
    with trio.fail_after(120):
        async with daemon_factory(**env) as daemon, connect(daemon, seq=1) as fast:
            await fast.handshake()
            thread = await fast.start_thread()
            async with open_websocket_url(
                ws_url(daemon, session=fast.id, seq=1, coalesce=0), message_queue_size=1
            ) as stuck:
                first = json.loads(await stuck.get_message())
                assert first["method"] == "argus/session"
                # `stuck` reads nothing more while a long turn streams.
                await fast.start_turn(thread, f"/stream {n}")
                await fast.recv_until(is_turn_completed, timeout=60)
                got = "".join(m["params"]["delta"] for m in deltas_of(fast.seen))
                assert got == expected(n)
                stuck_seen: list[dict] = []
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        stuck_seen.append(json.loads(await stuck.get_message()))
                assert closed.value.reason.code == 1013
                assert "since=" in closed.value.reason.reason
            # The reason names the last number Argus finished sending; a frame in flight
            # when it was cut off may have arrived too. Resume from what was really seen.
            advised = int(closed.value.reason.reason.rsplit("since=", 1)[1])
            seen_seqs = [m["argusSeq"] for m in stuck_seen if "argusSeq" in m]
            resume_at = max(seen_seqs, default=advised)
            assert advised <= resume_at <= advised + 1
            async with connect(daemon, session=fast.id, since=resume_at) as resumed:
                await resumed.recv_until(is_turn_completed, timeout=60)
                check_contiguous(resumed.seen, resume_at)


async def test_lagging_client_gets_coalesced_deltas(daemon) -> None:
    n = 30_000
    with trio.fail_after(60):
        async with connect(daemon, seq=1) as client:
            await client.handshake()
            thread = await client.start_thread()
            await client.start_turn(thread, f"/stream {n}")
            await client.recv_until(is_turn_completed, timeout=30)
            deltas = deltas_of(client.seen)
            assert "".join(m["params"]["delta"] for m in deltas) == expected(n)
            merged = [m for m in deltas if m.get("argusSeqFrom", m["argusSeq"]) < m["argusSeq"]]
            assert merged, "a burst of 30,000 deltas should have been coalesced"
            assert len(deltas) < n


async def test_peer_that_never_reads_is_dropped(daemon_factory) -> None:
    # The lag limit is larger than what the socket buffers hold, so the send to the
    # silent peer blocks before the peer is judged too slow: only the stall guard helps.
    env = {
        "ARGUS_CLIENT_QUEUE_BYTES": "67108864",
        "ARGUS_REPLAY_BUFFER_BYTES": "134217728",
        "ARGUS_WS_SEND_TIMEOUT_S": "1",
    }
    with trio.fail_after(90):
        async with daemon_factory(**env) as daemon, connect(daemon) as fast:
            await fast.handshake()
            thread = await fast.start_thread()
            async with open_websocket_url(
                ws_url(daemon, session=fast.id, coalesce=0), message_queue_size=1
            ):
                # This client never reads again; its socket buffers fill up.
                await fast.start_turn(thread, "/stream 200000")
                await fast.recv_until(is_turn_completed, timeout=60)
                async with daemon.http() as http:
                    while True:
                        sessions = (await http.get("/sessions")).json()["sessions"]
                        if sessions[0]["clients"] == 1:
                            break
                        await trio.sleep(0.1)
                assert "aborting its connection" in daemon.log_text

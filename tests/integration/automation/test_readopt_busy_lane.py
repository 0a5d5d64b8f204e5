"""A turn still running when a gateway re-adopts the runtime keeps its lane busy.

When that turn's ``turn/started`` has left the bridge's ring, the new gateway learns of the
turn only when the runtime refuses a follow-up's ``turn/start`` with -32600 "turn already
in progress". The follow-up then stays queued (no start error, no backoff) and runs as soon
as that turn completes (issue 9, defect 2).
"""

from __future__ import annotations

import signal
from pathlib import Path

import trio

from tests.harness import connect, run_daemon

ENV = {
    "ARGUS_BRIDGE_RING_BYTES": str(1 << 20),  # the smallest ring: easy to overflow
    "ARGUS_CLIENT_QUEUE_BYTES": str(16 << 20),
    "ARGUS_RUNTIME_NODE": "0",
}


async def test_a_followup_waits_for_the_turn_the_runtime_still_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with trio.fail_after(120):
        async with run_daemon(home, env=ENV) as first:
            async with connect(first) as client:
                await client.handshake()
                main = (await client.request("argus/thread/main/ensure", {}))["result"]
                main_id = main["threadId"]
                await client.start_turn(main_id, "/slow 80 100")  # 8 s
                other = await client.start_thread()
                await client.start_turn(other, "/stream 20000 100")  # ~4 MB: evicts the start
                session_id = client.id
                await first.stop(signal.SIGKILL)
            await trio.sleep(2.0)  # the stream lands in the bridge's ring meanwhile
            async with run_daemon(home, env=ENV) as second:
                async with connect(second, session=session_id) as back:
                    params = {"text": "after the slow turn", "threadId": main_id}
                    reply = (await back.request("argus/input/enqueue", params, timeout=60))[
                        "result"
                    ]
                    assert "startError" not in reply, reply
                    assert reply["queued"] is True and reply["started"] is False
                    result = await back.recv_until(
                        lambda m: m.get("method") == "argus/turn/result", timeout=60
                    )
    assert "after the slow turn" in result["params"]["text"]
    events = [
        (m["method"], m["params"].get("threadId"))
        for m in back.seen
        if m.get("method") in ("turn/started", "turn/completed")
    ]
    slow_done = events.index(("turn/completed", main_id))
    followup_start = events.index(("turn/started", main_id))
    assert slow_done < followup_start, events

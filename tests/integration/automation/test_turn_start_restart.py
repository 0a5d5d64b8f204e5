"""A gateway ``turn/start`` answered only after the gateway died still runs exactly once.

The runtime is held with SIGSTOP while the gateway records the start of a follow-up and
writes its ``turn/start``; the gateway is then killed with ``kill -9`` before any answer
can exist. The next gateway adopts the bridge, the runtime resumes and answers the old
request: that answer (an id of the earlier epoch) must commit the start, so the queued
follow-up is not started a second time. Before the "starting" records it ran twice.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import trio

from tests.harness import connect, run_daemon

ENV = {"ARGUS_FOLLOWUP_MODE": "each", "ARGUS_RUNTIME_NODE": "0"}
MARKER = "exactly-once-marker-7"


async def test_a_start_answered_after_the_kill_is_not_run_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with trio.fail_after(180):
        async with run_daemon(home, env=ENV) as first:
            async with connect(first) as client:
                await client.handshake()
                session_id = client.id
                main = await client.request("argus/thread/main/ensure", {}, timeout=30)
                thread_id = main["result"]["threadId"]
                async with first.http() as http:
                    runtime_pid = (await http.get("/sessions")).json()["sessions"][0]["pid"]
                os.killpg(runtime_pid, signal.SIGSTOP)
                try:
                    params = {"text": f"say {MARKER}", "threadId": thread_id}
                    await client.send(
                        {"id": "enq", "method": "argus/input/enqueue", "params": params}
                    )
                    await trio.sleep(
                        1.0
                    )  # recorded, and the turn/start sits in the runtime's stdin
                    first.process.send_signal(signal.SIGKILL)
                    await first.process.wait()
                    async with run_daemon(home, env=ENV) as second:
                        os.killpg(runtime_pid, signal.SIGCONT)
                        async with connect(second, session=session_id) as back:
                            await back.handshake()
                            await back.recv_until(
                                lambda m: m.get("method") == "turn/completed", timeout=60
                            )
                            await trio.sleep(2.0)  # a second start, if any, would begin now
                            async with second.http() as http:
                                state = (await http.get("/automation/state")).json()
                            assert not state["persisted"]["followups"], state
                            reply = await back.request(
                                "thread/read",
                                {"threadId": thread_id, "includeTurns": True},
                                timeout=30,
                            )
                finally:
                    os.killpg(runtime_pid, signal.SIGCONT)
    turns = reply["result"]["thread"]["turns"]
    assert sum(MARKER in str(turn) for turn in turns) == 1, turns

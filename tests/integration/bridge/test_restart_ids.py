"""A response from before a gateway restart never answers a request made after it.

The detached bridge replays (and keeps forwarding) the old gateway's responses to the new
one. Request ids sent upstream are unique per bridge connection, so the new gateway drops
them instead of routing them to its own requests (issue 9, defect 2).

A busy runtime answers late; here the runtime is held with SIGSTOP while the old gateway's
six ``thread/list`` and the new gateway's twenty ``thread/read`` queue in its stdin, so the
old answers arrive while the new requests are in flight, every run.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import trio

from tests.harness import connect, run_daemon


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
async def test_old_responses_never_answer_new_requests(tmp_path: Path, sig: int) -> None:
    home = tmp_path / "home"
    ids = [f"read{i}" for i in range(20)]
    answers: dict[str, dict] = {}
    with trio.fail_after(120):
        # Nested: leaving run_daemon cleans up the home's bridges, which must live on here.
        async with run_daemon(home) as first:
            async with connect(first) as client:
                await client.handshake()
                await client.start_turn(await client.start_thread(), "/stream 2000 50")
                async with first.http() as http:
                    runtime_pid = (await http.get("/sessions")).json()["sessions"][0]["pid"]
                os.killpg(runtime_pid, signal.SIGSTOP)  # the runtime's process group
                try:
                    for i in range(6):
                        request = {"id": f"list{i}", "method": "thread/list", "params": {}}
                        await client.send(request)
                    await trio.sleep(0.5)  # the requests reach the bridge before the gateway goes
                    first.process.send_signal(sig)
                    await first.process.wait()
                    async with run_daemon(home) as second:
                        async with connect(second, session=client.id) as back:
                            await back.handshake()
                            for req_id in ids:
                                params = {"threadId": "no-such-thread"}
                                request = {"id": req_id, "method": "thread/read", "params": params}
                                await back.send(request)
                            await trio.sleep(0.5)
                            os.killpg(runtime_pid, signal.SIGCONT)
                            while len(answers) < len(ids):
                                msg = await back.recv(timeout=60)
                                if msg.get("id") in ids and "method" not in msg:
                                    answers[msg["id"]] = msg
                finally:
                    os.killpg(runtime_pid, signal.SIGCONT)
    wrong = [req_id for req_id in ids if "error" not in answers[req_id]]
    assert not wrong, f"thread/read answered with another request's result: {wrong}"
    assert all("thread not found" in a["error"]["message"] for a in answers.values())

"""The real ``codex app-server`` through Argus, offline, against a fake model server.

What a user of Argus with codex would notice: a streamed turn arrives whole, a second turn
on the same thread works, a command approval is answered through the gateway and the
command really runs, and a client that drops mid-turn and comes back with ``since`` gets
every message it missed, once.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from argus.testing import run_daemon
from tests.harness import Client, connect
from tests.realpeer.codex_home import make_codex_home
from tests.realpeer.fake_model import FakeModel

pytestmark = pytest.mark.codex

TEXT = "Hello from the fake model, streamed through Argus to you."


def deltas(messages: list[dict]) -> str:
    """The agent text a client builds from the deltas it saw."""
    return "".join(
        m["params"]["delta"] for m in messages if m.get("method") == "item/agentMessage/delta"
    )


async def run_turn(client: Client, thread_id: str, text: str) -> list[dict]:
    """Start a turn and return every message up to its turn/completed."""
    start = len(client.seen)
    response = await client.start_turn(thread_id, text)
    assert "result" in response, response
    await client.recv_until(lambda m: m.get("method") == "turn/completed", timeout=60)
    return client.seen[start:]


def codex_daemon(tmp_path: Path, codex_bin: str, fake_model: FakeModel, **config: str):
    """The daemon running codex app-server for each session."""
    env = make_codex_home(tmp_path, fake_model.base_url, **config)
    env["ARGUS_RUNTIME_CMD"] = f"{codex_bin} app-server"
    return run_daemon(tmp_path / "home", env=env)


async def test_streamed_turns(tmp_path: Path, codex_bin: str, fake_model: FakeModel) -> None:
    with trio.fail_after(120):
        async with codex_daemon(tmp_path, codex_bin, fake_model) as daemon:
            async with connect(daemon) as client:
                result = await client.handshake()
                assert result["platformFamily"] == "unix"
                thread_id = await client.start_thread()
                fake_model.queue_text(TEXT, chunks=7)
                first = await run_turn(client, thread_id, "say hello")
                assert deltas(first) == TEXT
                completed = first[-1]["params"]["turn"]
                assert completed["status"] == "completed"
                fake_model.queue_text("second answer", chunks=3)
                second = await run_turn(client, thread_id, "again")
                assert deltas(second) == "second answer"
                assert second[-1]["params"]["turn"]["status"] == "completed"
            # The model saw the whole conversation on the second request.
            assert "say hello" in str(fake_model.requests[-1]["input"])


async def test_command_approval(tmp_path: Path, codex_bin: str, fake_model: FakeModel) -> None:
    with trio.fail_after(120):
        async with codex_daemon(tmp_path, codex_bin, fake_model) as daemon:
            async with connect(daemon) as client:
                await client.handshake()
                response = await client.request(
                    "thread/start", {"approvalPolicy": "untrusted", "sandbox": "workspace-write"}
                )
                thread_id = response["result"]["thread"]["id"]
                cwd = Path(response["result"]["cwd"])
                fake_model.queue_exec_command("touch approved.txt && echo hi-from-shell")
                fake_model.queue_text("ran it", chunks=2)
                await client.start_turn(thread_id, "please touch a file")
                request = await client.recv_until(
                    lambda m: m.get("method") == "item/commandExecution/requestApproval",
                    timeout=60,
                )
                assert "touch approved.txt" in request["params"]["command"]
                await client.send({"id": request["id"], "result": {"decision": "accept"}})
                done = await client.recv_until(
                    lambda m: (
                        m.get("method") == "item/completed"
                        and m["params"]["item"].get("type") == "commandExecution"
                    ),
                    timeout=60,
                )
                assert done["params"]["item"]["status"] == "completed"
                await client.recv_until(lambda m: m.get("method") == "turn/completed", timeout=60)
                assert (cwd / "approved.txt").exists()


async def test_disconnect_mid_turn_then_since(
    tmp_path: Path, codex_bin: str, fake_model: FakeModel
) -> None:
    words = [f"w{i:02d} " for i in range(30)]
    with trio.fail_after(120):
        async with codex_daemon(tmp_path, codex_bin, fake_model) as daemon:
            async with connect(daemon, seq=1) as client:
                await client.handshake()
                thread_id = await client.start_thread()
                session_id = client.id
                fake_model.queue_text("".join(words), chunks=30, delay=0.05)
                await client.start_turn(thread_id, "stream slowly")
                first_delta = await client.recv_until(
                    lambda m: m.get("method") == "item/agentMessage/delta", timeout=60
                )
                before = [m for m in client.seen if "argusSeq" in m]
                last_seq = before[-1]["argusSeq"]
                assert first_delta in before
            # Gone mid-turn; the turn keeps streaming into the replay buffer.
            await trio.sleep(0.3)
            async with connect(daemon, session=session_id, since=last_seq) as again:
                await again.recv_until(lambda m: m.get("method") == "turn/completed", timeout=60)
                after = [m for m in again.seen if "argusSeq" in m]
            seqs = [m["argusSeq"] for m in before + after]
            assert seqs == sorted(set(seqs)), "duplicates or reordering across the reconnect"
            assert after[0].get("argusSeqFrom", after[0]["argusSeq"]) == last_seq + 1
            assert deltas(before + after) == "".join(words)

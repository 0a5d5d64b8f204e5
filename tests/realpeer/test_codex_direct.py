"""The real ``codex app-server`` driven directly over stdio, with no Argus in between.

These validate the harness itself (fake model, offline ``CODEX_HOME``, discovery) and pin the
protocol facts Argus relies on: the handshake, streamed turns whose deltas add up to what the
model said, a second turn on the same thread, and a command approval answered by the client.
When a test through Argus fails and these pass, the fault is in Argus, not in the set-up.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.realpeer.codex_home import API_KEY, codex_process_env
from tests.realpeer.fake_model import FakeModel, split_text

pytestmark = pytest.mark.codex

Message = dict[str, Any]


class StdioPeer:
    """A JSONL client of ``codex app-server`` on its stdin/stdout.

    Every message read is kept in ``seen`` so a test can look back at notifications that
    arrived while it waited for something else. Stderr is drained concurrently (pitfall 7:
    the server blocks when that pipe fills) and its tail is printed when the peer closes, so
    pytest shows it next to a failure.
    """

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.seen: list[Message] = []
        self.stderr_lines: list[str] = []
        self._ids = 0
        self._send, self._receive = trio.open_memory_channel[Message](1000)

    async def send(self, obj: Message) -> None:
        """Write one JSON message as a line."""
        assert self.process.stdin is not None
        await self.process.stdin.send_all(json.dumps(obj).encode() + b"\n")

    async def recv(self) -> Message:
        """The next message from the server (EndOfChannel when it exited)."""
        message = await self._receive.receive()
        self.seen.append(message)
        return message

    async def recv_until(self, predicate: Callable[[Message], bool]) -> Message:
        """Read until a message matches; earlier ones stay in ``seen``."""
        while True:
            message = await self.recv()
            if predicate(message):
                return message

    async def request(self, method: str, params: Any) -> Message:
        """Send a request (``params`` is mandatory in this protocol) and await its response."""
        self._ids += 1
        req_id = self._ids
        await self.send({"id": req_id, "method": method, "params": params})
        return await self.recv_until(lambda m: m.get("id") == req_id and "method" not in m)

    async def call(self, method: str, params: Any) -> Any:
        """``request`` that expects success and returns the ``result``."""
        response = await self.request(method, params)
        assert "result" in response, response
        return response["result"]

    async def handshake(self) -> Message:
        """``initialize`` + ``initialized``; returns the initialize result."""
        result = await self.call(
            "initialize",
            {
                "clientInfo": {"name": "argus_realpeer", "title": None, "version": "0.1.0"},
                "capabilities": {"experimentalApi": False, "requestAttestation": False},
            },
        )
        await self.send({"method": "initialized"})
        return result

    async def start_thread(self, cwd: Path, **params: Any) -> str:
        """``thread/start`` in ``cwd``; returns the thread id."""
        result = await self.call("thread/start", {"cwd": str(cwd), **params})
        assert result["cwd"] == str(cwd), result
        return result["thread"]["id"]

    async def start_turn(self, thread_id: str, text: str) -> str:
        """``turn/start`` with one text input; returns the turn id."""
        result = await self.call(
            "turn/start",
            {
                "threadId": thread_id,
                "input": [{"type": "text", "text": text, "text_elements": []}],
            },
        )
        assert result["turn"]["status"] == "inProgress", result
        return result["turn"]["id"]

    async def run_turn(self, thread_id: str, text: str) -> list[Message]:
        """Start a turn and return every message from its start up to its ``turn/completed``."""
        start = len(self.seen)
        turn_id = await self.start_turn(thread_id, text)
        await self.recv_until(lambda m: is_turn_completed(m, turn_id))
        return self.seen[start:]

    async def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        async with self._send:
            async for line in _lines(self.process.stdout):
                if line.strip():
                    await self._send.send(json.loads(line))

    async def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        async for line in _lines(self.process.stderr):
            self.stderr_lines.append(line.decode("utf-8", "replace"))


async def _lines(stream: trio.abc.ReceiveStream) -> AsyncIterator[bytes]:
    buf = b""
    while True:
        try:
            data = await stream.receive_some(1 << 16)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            if buf:
                yield buf
            return
        buf += data
        *lines, buf = buf.split(b"\n")
        for line in lines:
            yield line


@asynccontextmanager
async def open_codex(codex_bin: str, env: dict[str, str], cwd: Path) -> AsyncIterator[StdioPeer]:
    """Run ``codex app-server`` on stdio; on exit close stdin (it then exits 0) or kill it."""
    process = await trio.lowlevel.open_process(
        [codex_bin, "app-server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=codex_process_env(env),
        cwd=str(cwd),
    )
    peer = StdioPeer(process)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(peer._read_stdout)
            nursery.start_soon(peer._drain_stderr)
            try:
                yield peer
            finally:
                with trio.CancelScope(shield=True):
                    assert process.stdin is not None
                    await process.stdin.aclose()
                    with trio.move_on_after(5):
                        await process.wait()
                    if process.returncode is None:
                        process.kill()
                        await process.wait()
                nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
        tail = "\n".join(peer.stderr_lines[-40:])
        print(f"codex app-server exited {process.returncode}; stderr tail:\n{tail}")


def is_turn_completed(message: Message, turn_id: str) -> bool:
    """Whether ``message`` is the ``turn/completed`` of ``turn_id``."""
    return message.get("method") == "turn/completed" and message["params"]["turn"]["id"] == turn_id


def deltas(messages: list[Message]) -> list[str]:
    """The agent-message deltas among ``messages``, in order."""
    return [m["params"]["delta"] for m in messages if m.get("method") == "item/agentMessage/delta"]


def completed_items(messages: list[Message], item_type: str) -> list[Message]:
    """The items of ``item_type`` that ``item/completed`` reported among ``messages``."""
    return [
        m["params"]["item"]
        for m in messages
        if m.get("method") == "item/completed" and m["params"]["item"].get("type") == item_type
    ]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The thread's cwd: an empty directory of its own, outside any git repository."""
    path = tmp_path / "workspace"
    path.mkdir()
    return path


TEXT = "Hello from the fake model, streamed to codex and back."


async def test_handshake_and_streamed_turns(
    codex_bin: str, codex_env: dict[str, str], fake_model: FakeModel, workspace: Path
) -> None:
    with trio.fail_after(60):
        async with open_codex(codex_bin, codex_env, workspace) as peer:
            result = await peer.handshake()
            assert result["codexHome"] == codex_env["CODEX_HOME"]
            assert result["platformFamily"] == "unix"
            assert result["userAgent"].startswith("argus_realpeer/")

            thread_id = await peer.start_thread(workspace)
            await peer.recv_until(lambda m: m.get("method") == "thread/started")

            fake_model.queue_text(TEXT, chunks=7)
            first = await peer.run_turn(thread_id, "say hello")
            assert deltas(first) == split_text(TEXT, 7), "one delta per model delta, in order"
            assert [i["text"] for i in completed_items(first, "agentMessage")] == [TEXT]
            assert first[-1]["params"]["turn"]["status"] == "completed"
            assert first[-1]["params"]["threadId"] == thread_id

            fake_model.queue_text("second answer", chunks=3)
            second = await peer.run_turn(thread_id, "and again")
            assert "".join(deltas(second)) == "second answer"
            assert second[-1]["params"]["turn"]["status"] == "completed"

    # Two model calls; the second re-sends the whole conversation (store:false).
    assert len(fake_model.requests) == 2
    history = json.dumps(fake_model.requests[1]["input"])
    assert "say hello" in history and TEXT in history and "and again" in history
    assert fake_model.request_headers[0]["authorization"] == f"Bearer {API_KEY}"


async def test_command_approval_round_trip(
    codex_bin: str, codex_env: dict[str, str], fake_model: FakeModel, workspace: Path
) -> None:
    with trio.fail_after(60):
        async with open_codex(codex_bin, codex_env, workspace) as peer:
            await peer.handshake()
            thread_id = await peer.start_thread(
                workspace, approvalPolicy="untrusted", sandbox="workspace-write"
            )
            call_id = fake_model.queue_exec_command("touch approved.txt && echo hi-from-shell")
            fake_model.queue_text("I touched it.", chunks=2)
            turn_id = await peer.start_turn(thread_id, "please touch a file")

            request = await peer.recv_until(
                lambda m: m.get("method") == "item/commandExecution/requestApproval"
            )
            params = request["params"]
            assert "id" in request, "an approval is a server->client request"
            assert params["threadId"] == thread_id and params["turnId"] == turn_id
            assert params["itemId"] == call_id
            assert "touch approved.txt" in params["command"]
            assert params["cwd"] == str(workspace)
            assert not (workspace / "approved.txt").exists(), "ran before approval"

            await peer.send({"id": request["id"], "result": {"decision": "accept"}})
            done = await peer.recv_until(lambda m: is_turn_completed(m, turn_id))
            assert done["params"]["turn"]["status"] == "completed"

    resolved = [m for m in peer.seen if m.get("method") == "serverRequest/resolved"]
    assert [m["params"]["requestId"] for m in resolved] == [request["id"]]
    [command] = completed_items(peer.seen, "commandExecution")
    assert command["id"] == call_id
    assert command["status"] == "completed" and command["exitCode"] == 0, command
    assert "hi-from-shell" in command["aggregatedOutput"]
    assert (workspace / "approved.txt").exists()
    # The follow-up model call carried the tool's output.
    assert len(fake_model.requests) == 2
    outputs = [
        item
        for item in fake_model.requests[1]["input"]
        if item.get("type") == "function_call_output" and item.get("call_id") == call_id
    ]
    assert len(outputs) == 1 and "hi-from-shell" in json.dumps(outputs[0])


async def test_protocol_errors(codex_bin: str, codex_env: dict[str, str], workspace: Path) -> None:
    """The errors Argus passes through untouched: requests before ``initialize``, no params."""
    with trio.fail_after(60):
        async with open_codex(codex_bin, codex_env, workspace) as peer:
            early = await peer.request("thread/start", {})
            assert early["error"]["code"] == -32600
            assert "Not initialized" in early["error"]["message"]
            await peer.handshake()
            await peer.send({"id": "no-params", "method": "thread/loaded/list"})
            missing = await peer.recv_until(lambda m: m.get("id") == "no-params")
            assert missing["error"]["code"] == -32600
            assert "params" in missing["error"]["message"]

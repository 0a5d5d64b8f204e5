"""``argus demo-runtime`` on its own stdio, as any app-server client would drive it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio


class Runtime:
    """The demo runtime as a child process with a JSONL reader."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.buf = b""
        self.seen: list[dict[str, Any]] = []

    async def send(self, obj: Any) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(json.dumps(obj).encode() + b"\n")

    async def recv(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while b"\n" not in self.buf:
            data = await self.process.stdout.receive_some(65536)
            assert data, "runtime closed its stdout"
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        msg = json.loads(line)
        self.seen.append(msg)
        return msg

    async def request(self, req_id: Any, method: str, params: Any) -> dict[str, Any]:
        await self.send({"id": req_id, "method": method, "params": params})
        while True:
            msg = await self.recv()
            if msg.get("id") == req_id and "method" not in msg:
                return msg

    async def until(self, method: str) -> dict[str, Any]:
        while True:
            msg = await self.recv()
            if msg.get("method") == method:
                return msg


async def start(home: Path) -> Runtime:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "argus", "demo-runtime", "--home", str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    return Runtime(process)


async def stop(runtime: Runtime) -> int:
    assert runtime.process.stdin is not None
    await runtime.process.stdin.aclose()  # EOF on stdin ends it
    return await runtime.process.wait()


def turn_input(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text, "text_elements": []}]


async def test_handshake_rules_and_unknown_methods(tmp_path: Path) -> None:
    with trio.fail_after(30):
        rt = await start(tmp_path)
        early = await rt.request(1, "thread/list", {})
        assert early["error"] == {"code": -32600, "message": "Not initialized"}
        assert "result" in await rt.request(2, "initialize", {"clientInfo": {"name": "t"}})
        again = await rt.request(3, "initialize", {})
        assert again["error"]["message"] == "Already initialized"
        assert (await rt.request(4, "no/such", {}))["error"]["code"] == -32601
        assert (await rt.request(5, "thread/list", None))["result"]["data"] == []
        await rt.send({"id": 6, "method": "thread/list"})
        assert "missing field 'params'" in (await rt.recv())["error"]["message"]
        assert await stop(rt) == 0


async def test_streamed_turn_and_persistence_across_restart(tmp_path: Path) -> None:
    with trio.fail_after(30):
        rt = await start(tmp_path)
        await rt.request(1, "initialize", {})
        started = await rt.request(2, "thread/start", {})
        thread_id = started["result"]["thread"]["id"]
        await rt.until("thread/started")
        response = await rt.request(
            3, "turn/start", {"threadId": thread_id, "input": turn_input("hi there")}
        )
        assert response["result"]["turn"]["status"] == "inProgress"
        done = await rt.until("turn/completed")
        assert done["params"]["turn"]["status"] == "completed"
        methods = [m.get("method") for m in rt.seen]
        first = methods.index("turn/started")
        assert methods[first:] == [
            "turn/started",
            "item/started",
            "item/completed",
            "item/started",
            *["item/agentMessage/delta"] * methods.count("item/agentMessage/delta"),
            "item/completed",
            "turn/completed",
        ]
        text = "".join(
            m["params"]["delta"] for m in rt.seen if m.get("method") == "item/agentMessage/delta"
        )
        completed_items = [m for m in rt.seen if m.get("method") == "item/completed"]
        assert text == "echo: hi there" == completed_items[-1]["params"]["item"]["text"]
        assert await stop(rt) == 0

        # A new process finds the thread and its turn on disk.
        rt = await start(tmp_path)
        await rt.request(1, "initialize", {})
        read = await rt.request(2, "thread/read", {"threadId": thread_id, "includeTurns": True})
        thread = read["result"]["thread"]
        assert thread["status"] == {"type": "notLoaded"} and thread["preview"] == "hi there"
        [turn] = thread["turns"]
        assert turn["items"][-1]["text"] == "echo: hi there"
        listed = await rt.request(3, "thread/list", {})
        assert [t["id"] for t in listed["result"]["data"]] == [thread_id]
        resumed = await rt.request(4, "thread/resume", {"threadId": thread_id})
        assert len(resumed["result"]["thread"]["turns"]) == 1
        await rt.request(5, "turn/start", {"threadId": thread_id, "input": turn_input("again")})
        await rt.until("turn/completed")
        unknown = await rt.request(
            6, "thread/read", {"threadId": "00000000-0000-0000-0000-000000000000"}
        )
        assert "thread not found" in unknown["error"]["message"]
        assert await stop(rt) == 0


async def test_interrupt_and_stream(tmp_path: Path) -> None:
    with trio.fail_after(30):
        rt = await start(tmp_path)
        await rt.request(1, "initialize", {})
        thread_id = (await rt.request(2, "thread/start", {}))["result"]["thread"]["id"]
        turn = await rt.request(
            3, "turn/start", {"threadId": thread_id, "input": turn_input("/slow 100 20")}
        )
        await rt.until("item/agentMessage/delta")
        busy = await rt.request(4, "turn/start", {"threadId": thread_id, "input": turn_input("x")})
        assert busy["error"]["message"] == "turn already in progress"
        turn_id = turn["result"]["turn"]["id"]
        assert (await rt.request(5, "turn/interrupt", {"threadId": thread_id, "turnId": turn_id}))[
            "result"
        ] == {}
        done = await rt.until("turn/completed")
        assert done["params"]["turn"]["status"] == "interrupted"
        rt.seen.clear()
        await rt.request(
            6, "turn/start", {"threadId": thread_id, "input": turn_input("/stream 3000 10")}
        )
        await rt.until("turn/completed")
        deltas = [
            m["params"]["delta"] for m in rt.seen if m.get("method") == "item/agentMessage/delta"
        ]
        assert deltas == [f"{i:08d}".ljust(10, ".") for i in range(3000)]
        assert await stop(rt) == 0


async def test_crash_exits_with_code(tmp_path: Path) -> None:
    with trio.fail_after(30):
        rt = await start(tmp_path)
        await rt.request(1, "initialize", {})
        thread_id = (await rt.request(2, "thread/start", {}))["result"]["thread"]["id"]
        await rt.send(
            {
                "id": 3,
                "method": "turn/start",
                "params": {"threadId": thread_id, "input": turn_input("/crash 7")},
            }
        )
        assert await rt.process.wait() == 7

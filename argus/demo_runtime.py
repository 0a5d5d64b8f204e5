"""``argus demo-runtime``: a small, honest reference runtime on stdio.

It speaks a subset of the ``codex app-server`` protocol (JSON-RPC shapes without the
``"jsonrpc"`` member, one JSON object per line): ``initialize``, ``thread/start``,
``thread/resume``, ``thread/read`` (``includeTurns``), ``thread/list``, ``turn/start`` and
``turn/interrupt``. A turn echoes its input as a streamed agent message (``turn/started``,
``item/started``, ``item/agentMessage/delta``..., ``item/completed``, ``turn/completed``).
Threads are kept as JSON files under its home (``--home``, else ``$ARGUS_DEMO_HOME``, else
``$HOME/.argus-demo-runtime``), so they survive a restart. It is the default runtime of
``argus serve`` when ``ARGUS_RUNTIME_CMD`` is unset, and the runtime of Argus's own tests and
benchmarks.

Special inputs (the text of a ``turn/start``):

``/approve <command>``
    ask for approval with ``item/commandExecution/requestApproval`` (ids from 0) and wait,
    forever, for the answer: accept runs nothing but completes the item, decline declines
    it, cancel interrupts the turn.
``/stream N [SIZE]``
    N deltas as fast as possible (pre-serialised, written in large chunks); delta ``i`` is
    ``f"{i:08d}"`` padded with ``.`` to SIZE characters (default 8).
``/slow N MS``
    N deltas ``f"{i:08d}"``, each after a pause of MS milliseconds (interruptible).
``/clock N MS``
    like ``/slow``, but each delta is the wall-clock time it was written (``"%.6f "``), so
    a client on the same machine can measure each message's latency (bench/load.py).
``/crash [CODE]``
    write a line to stderr and exit with CODE (default 3) at once, mid-turn.
``/stderr N``
    write N lines to stderr, then echo.
``/noise``
    write a non-JSON line and an empty line to stdout, then echo.
``/big BYTES``
    emit one ``demo/big`` notification of about BYTES bytes, then echo.
``/quiet TEXT``
    answer with TEXT as one delta, nothing else (a turn that completes at once, whatever
    context surrounds it).
``/fill N``
    add N finished items (alternating user and agent messages) to the turn at once, so a
    thread with a long history exists in one turn (the console's windowed list).
``/think TEXT``
    a ``reasoning`` item whose summary streams as TEXT, then an answer.

``thread/list`` pages with ``limit`` and ``cursor`` (an offset; ``nextCursor`` is null on
the last page).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import trio

from .procs import now_ms

VERSION = "0.1.0"
MAX_LINE = 16 * 1024 * 1024
CHUNK = 64 * 1024


def _now_s() -> int:
    return int(time.time())


class RpcError(Exception):
    """A JSON-RPC error to send back for the current request."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ThreadStore:
    """Threads on disk: one JSON file per thread, written atomically."""

    def __init__(self, home: Path) -> None:
        self.dir = home / "threads"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, thread_id: str) -> Path:
        """File of one thread (ids are uuids; anything else is refused)."""
        uuid.UUID(thread_id)
        return self.dir / f"{thread_id}.json"

    def load(self, thread_id: str) -> dict[str, Any] | None:
        """A persisted thread, or None."""
        try:
            return json.loads(self.path(thread_id).read_text())
        except (OSError, ValueError):
            return None

    def save(self, thread: dict[str, Any]) -> None:
        """Persist a thread (tmp file + rename, so a crash never leaves half a file)."""
        path = self.path(thread["id"])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(thread))
        os.replace(tmp, path)

    def all(self) -> list[dict[str, Any]]:
        """Every persisted thread, newest first."""
        found = []
        for path in self.dir.glob("*.json"):
            try:
                # updatedAt is in seconds; the file's mtime orders threads within a second.
                found.append((path.stat().st_mtime_ns, json.loads(path.read_text())))
            except (OSError, ValueError):
                continue
        found.sort(key=lambda pair: (pair[1].get("updatedAt", 0), pair[0]), reverse=True)
        return [thread for _, thread in found]


def thread_view(thread: dict[str, Any], include_turns: bool, loaded: bool) -> dict[str, Any]:
    """The ``Thread`` object clients see."""
    view = {k: v for k, v in thread.items() if k != "turns"}
    view["status"] = {"type": "idle"} if loaded else {"type": "notLoaded"}
    view["turns"] = thread.get("turns", []) if include_turns else []
    return view


class DemoRuntime:
    """The runtime's state and request handlers."""

    def __init__(self, home: Path, stdout: trio.lowlevel.FdStream) -> None:
        self.home = home
        self.store = ThreadStore(home)
        self.stdout = stdout
        self.write_lock = trio.Lock()
        self.initialized = False
        self.loaded: dict[str, dict[str, Any]] = {}
        self.active: dict[str, tuple[str, trio.CancelScope]] = {}  # threadId -> (turnId, scope)
        self.next_request_id = 0
        self.waiting: dict[int, trio.MemorySendChannel[Any]] = {}
        self.nursery: trio.Nursery | None = None

    # -- output ------------------------------------------------------------------------

    async def write_raw(self, data: bytes) -> None:
        """Write bytes to stdout as one unit (lines never interleave)."""
        async with self.write_lock:
            await self.stdout.send_all(data)

    async def send(self, obj: Any) -> None:
        """Write one message."""
        await self.write_raw(json.dumps(obj, separators=(",", ":")).encode() + b"\n")

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        """Write a notification, stamped like codex's."""
        await self.send({"method": method, "params": params, "emittedAtMs": now_ms()})

    # -- dispatch ----------------------------------------------------------------------

    async def handle_line(self, line: bytes) -> None:
        """Handle one input line."""
        try:
            msg = json.loads(line)
        except ValueError:
            print(f"demo-runtime: ignoring invalid JSON line ({len(line)} bytes)", file=sys.stderr)
            return
        if not isinstance(msg, dict):
            return
        method = msg.get("method")
        if "id" in msg and method is None:
            channel = self.waiting.pop(msg["id"], None) if isinstance(msg["id"], int) else None
            if channel is None:
                print(f"demo-runtime: answer to unknown request {msg['id']!r}", file=sys.stderr)
            else:
                channel.send_nowait(msg)
            return
        if "id" not in msg:
            return  # notifications (initialized) need nothing
        req_id = msg["id"]
        try:
            if "params" not in msg:
                raise RpcError(-32600, "Invalid request: missing field 'params'")
            if method == "initialize":
                if self.initialized:
                    raise RpcError(-32600, "Already initialized")
                self.initialized = True
                result = {
                    "userAgent": f"argus-demo-runtime/{VERSION}",
                    "codexHome": str(self.home),
                    "platformFamily": "unix",
                    "platformOs": "linux",
                }
                await self.send({"id": req_id, "result": result})
                return
            if not self.initialized:
                raise RpcError(-32600, "Not initialized")
            handler = self.handlers().get(method)
            if handler is None:
                raise RpcError(-32601, f"Method not found: {method}")
            params = msg["params"] if isinstance(msg["params"], dict) else {}
            await handler(req_id, params)
        except RpcError as exc:
            await self.send({"id": req_id, "error": {"code": exc.code, "message": exc.message}})

    def handlers(self) -> dict[str, Any]:
        """Method name -> handler."""
        return {
            "thread/start": self.thread_start,
            "thread/resume": self.thread_resume,
            "thread/read": self.thread_read,
            "thread/list": self.thread_list,
            "turn/start": self.turn_start,
            "turn/interrupt": self.turn_interrupt,
        }

    def thread(self, params: dict[str, Any], *, loaded_only: bool = False) -> dict[str, Any]:
        """The thread named by ``params.threadId``."""
        thread_id = params.get("threadId")
        if not isinstance(thread_id, str):
            raise RpcError(-32600, "Invalid request: missing field 'threadId'")
        thread = self.loaded.get(thread_id)
        if thread is None and not loaded_only:
            try:
                thread = self.store.load(thread_id)
            except ValueError:
                thread = None
        if thread is None:
            raise RpcError(-32600, f"thread not found: {thread_id}")
        return thread

    async def thread_start(self, req_id: Any, params: dict[str, Any]) -> None:
        """Create and persist a thread."""
        now = _now_s()
        thread = {
            "id": str(uuid.uuid4()),
            "preview": "",
            "ephemeral": False,
            "modelProvider": "demo",
            "model": "demo",
            "createdAt": now,
            "updatedAt": now,
            "cwd": params.get("cwd") or os.getcwd(),
            "cliVersion": VERSION,
            "source": "appServer",
            "turns": [],
        }
        self.store.save(thread)
        self.loaded[thread["id"]] = thread
        view = thread_view(thread, False, True)
        await self.send(
            {"id": req_id, "result": {"thread": view, "model": "demo", "cwd": thread["cwd"]}}
        )
        await self.notify("thread/started", {"thread": view})

    async def thread_resume(self, req_id: Any, params: dict[str, Any]) -> None:
        """Load a persisted thread into this process."""
        thread = self.thread(params)
        self.loaded[thread["id"]] = thread
        result = {"thread": thread_view(thread, True, True), "model": "demo", "cwd": thread["cwd"]}
        await self.send({"id": req_id, "result": result})

    async def thread_read(self, req_id: Any, params: dict[str, Any]) -> None:
        """A thread, with its turns if asked."""
        thread = self.thread(params)
        view = thread_view(thread, bool(params.get("includeTurns")), thread["id"] in self.loaded)
        await self.send({"id": req_id, "result": {"thread": view}})

    async def thread_list(self, req_id: Any, params: dict[str, Any]) -> None:
        """Persisted threads, newest first."""
        limit = params.get("limit")
        cursor = params.get("cursor")
        threads = self.store.all()
        start = int(cursor) if isinstance(cursor, str) and cursor.isdigit() else 0
        end = start + limit if isinstance(limit, int) and limit > 0 else len(threads)
        next_cursor = str(end) if end < len(threads) else None
        data = [thread_view(t, False, t["id"] in self.loaded) for t in threads[start:end]]
        await self.send(
            {
                "id": req_id,
                "result": {"data": data, "nextCursor": next_cursor, "backwardsCursor": None},
            }
        )

    async def turn_start(self, req_id: Any, params: dict[str, Any]) -> None:
        """Answer at once, then run the turn in the background."""
        thread = self.thread(params, loaded_only=False)
        if thread["id"] in self.active:
            raise RpcError(-32600, "turn already in progress")
        texts = [
            i.get("text", "")
            for i in params.get("input") or []
            if isinstance(i, dict) and i.get("type") == "text"
        ]
        text = "\n".join(texts)
        self.loaded[thread["id"]] = thread
        turn = {"id": str(uuid.uuid4()), "status": "inProgress", "items": [], "error": None}
        turn["startedAt"] = _now_s()
        scope = trio.CancelScope()
        self.active[thread["id"]] = (turn["id"], scope)
        await self.send({"id": req_id, "result": {"turn": dict(turn)}})
        assert self.nursery is not None
        self.nursery.start_soon(self.run_turn, thread, turn, text, scope)

    async def turn_interrupt(self, req_id: Any, params: dict[str, Any]) -> None:
        """Cancel the running turn of a thread."""
        thread = self.thread(params)
        active = self.active.get(thread["id"])
        if active is not None and params.get("turnId") in (None, active[0]):
            active[1].cancel()
        await self.send({"id": req_id, "result": {}})

    # -- turns -------------------------------------------------------------------------

    async def run_turn(
        self, thread: dict[str, Any], turn: dict[str, Any], text: str, scope: trio.CancelScope
    ) -> None:
        """Stream one turn; ``scope`` is cancelled by turn/interrupt."""
        tid, turn_id = thread["id"], turn["id"]
        base = {"threadId": tid, "turnId": turn_id}
        await self.notify("turn/started", {"threadId": tid, "turn": dict(turn)})
        user_item = {
            "type": "userMessage",
            "id": str(uuid.uuid4()),
            "content": [{"type": "text", "text": text}],
        }
        await self.notify("item/started", {**base, "item": user_item, "startedAtMs": now_ms()})
        await self.notify("item/completed", {**base, "item": user_item, "completedAtMs": now_ms()})
        turn["items"].append(user_item)
        status = "completed"
        with scope:
            status = await self.turn_body(base, turn, text)
        if scope.cancelled_caught:
            status = "interrupted"
        self.active.pop(tid, None)
        turn["status"] = status
        turn["completedAt"] = _now_s()
        thread.setdefault("turns", []).append(turn)
        if not thread.get("preview"):
            thread["preview"] = text[:80]
        thread["updatedAt"] = _now_s()
        self.store.save(thread)
        with trio.CancelScope(shield=True):
            await self.notify(
                "turn/completed", {"threadId": tid, "turn": dict(turn, items=turn["items"][-1:])}
            )

    async def turn_body(self, base: dict[str, Any], turn: dict[str, Any], text: str) -> str:
        """The special inputs, or an echo; returns the turn status.

        A special input may be any line of the text (gateway turns put project context and
        instructions around the user's words).
        """
        special = next((ln for ln in text.splitlines() if ln.startswith("/")), text)
        command, _, rest = special.strip().partition(" ")
        args = rest.split()
        if command == "/crash":
            print("demo-runtime: crashing on request", file=sys.stderr, flush=True)
            os._exit(int(args[0]) if args else 3)
        if command == "/approve":
            return await self.approval(base, turn, rest.strip() or "true")
        if command == "/stream":
            size = int(args[1]) if len(args) > 1 else 8
            deltas = [f"{i:08d}".ljust(size, ".") for i in range(int(args[0]))]
            await self.stream_message(base, turn, deltas, burst=True)
            return "completed"
        if command == "/slow":
            count, delay_ms = int(args[0]), int(args[1]) if len(args) > 1 else 50
            await self.stream_message(
                base, turn, [f"{i:08d}" for i in range(count)], delay=delay_ms / 1000
            )
            return "completed"
        if command == "/clock":
            count, delay_ms = int(args[0]), int(args[1]) if len(args) > 1 else 50
            await self.stream_message(base, turn, [""] * count, delay=delay_ms / 1000, stamp=True)
            return "completed"
        if command == "/fill":
            self.fill_history(turn, int(args[0]) if args else 100)
            return "completed"
        if command == "/think":
            await self.reasoning(base, turn, rest.strip() or "thinking")
            await self.stream_message(base, turn, ["thought: ", rest.strip()])
            return "completed"
        if command == "/quiet":
            await self.stream_message(base, turn, [rest.strip()])
            return "completed"
        if command == "/stderr":
            for i in range(int(args[0]) if args else 10):
                print(f"demo-runtime stderr line {i}", file=sys.stderr)
            sys.stderr.flush()
        elif command == "/noise":
            await self.write_raw(b"this is not json\n\n")
        elif command == "/big":
            size = int(args[0]) if args else 1024
            await self.notify("demo/big", {"data": "x" * max(0, size - 60)})
        words = ("echo: " + text).split(" ")
        deltas = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
        await self.stream_message(base, turn, deltas)
        return "completed"

    async def stream_message(
        self,
        base: dict[str, Any],
        turn: dict[str, Any],
        deltas: list[str],
        *,
        delay: float = 0.0,
        burst: bool = False,
        stamp: bool = False,
    ) -> None:
        """An agentMessage item streamed as deltas."""
        item_id = f"msg_{uuid.uuid4().hex[:12]}"
        item = {"type": "agentMessage", "id": item_id, "text": ""}
        await self.notify("item/started", {**base, "item": item, "startedAtMs": now_ms()})
        if burst:
            head = (
                '{"method":"item/agentMessage/delta","params":'
                + json.dumps({**base, "itemId": item_id}, separators=(",", ":"))[:-1]
                + ',"delta":"'
            )
            lines = [f'{head}{d}"}}}}\n' for d in deltas]
            buf: list[str] = []
            size = 0
            for line in lines:
                buf.append(line)
                size += len(line)
                if size >= CHUNK:
                    await self.write_raw("".join(buf).encode())
                    buf, size = [], 0
            if buf:
                await self.write_raw("".join(buf).encode())
        else:
            sent = []
            for delta in deltas:
                if delay:
                    await trio.sleep(delay)
                if stamp:
                    delta = f"{time.time():.6f} "
                sent.append(delta)
                await self.notify(
                    "item/agentMessage/delta", {**base, "itemId": item_id, "delta": delta}
                )
            deltas = sent
        item["text"] = "".join(deltas)
        await self.notify("item/completed", {**base, "item": item, "completedAtMs": now_ms()})
        turn["items"].append(item)

    def fill_history(self, turn: dict[str, Any], count: int) -> None:
        """Add ``count`` finished items to the turn at once (a long history, for the console)."""
        for i in range(count):
            role = "userMessage" if i % 2 == 0 else "agentMessage"
            text = f"history item {i}: " + ("question" if i % 2 == 0 else "**answer** text")
            item: dict[str, Any] = {"type": role, "id": f"fill_{uuid.uuid4().hex[:12]}"}
            if role == "userMessage":
                item["content"] = [{"type": "text", "text": text}]
            else:
                item["text"] = text
            turn["items"].append(item)

    async def reasoning(self, base: dict[str, Any], turn: dict[str, Any], text: str) -> None:
        """A reasoning item whose summary streams in two deltas."""
        item_id = f"rs_{uuid.uuid4().hex[:12]}"
        item = {"type": "reasoning", "id": item_id, "summary": [], "content": []}
        await self.notify("item/started", {**base, "item": item, "startedAtMs": now_ms()})
        half = len(text) // 2
        for part in (text[:half], text[half:]):
            params = {**base, "itemId": item_id, "delta": part, "summaryIndex": 0}
            await self.notify("item/reasoning/summaryTextDelta", params)
        item["summary"] = [text]
        await self.notify("item/completed", {**base, "item": item, "completedAtMs": now_ms()})
        turn["items"].append(item)

    async def approval(self, base: dict[str, Any], turn: dict[str, Any], command: str) -> str:
        """Ask the client for approval and wait for the answer, however long it takes."""
        item_id = f"call_{uuid.uuid4().hex[:12]}"
        item = {
            "type": "commandExecution",
            "id": item_id,
            "command": command,
            "cwd": os.getcwd(),
            "status": "inProgress",
        }
        await self.notify("item/started", {**base, "item": item, "startedAtMs": now_ms()})
        request_id = self.next_request_id
        self.next_request_id += 1
        send, receive = trio.open_memory_channel[Any](1)
        self.waiting[request_id] = send
        params = {
            **base,
            "itemId": item_id,
            "command": command,
            "cwd": os.getcwd(),
            "reason": None,
            "availableDecisions": ["accept", "decline", "cancel"],
        }
        await self.send(
            {"id": request_id, "method": "item/commandExecution/requestApproval", "params": params}
        )
        try:
            answer = await receive.receive()
        finally:
            self.waiting.pop(request_id, None)
            with trio.CancelScope(shield=True):
                await self.notify(
                    "serverRequest/resolved",
                    {"threadId": base["threadId"], "requestId": request_id},
                )
        result = answer.get("result") if isinstance(answer.get("result"), dict) else {}
        decision = result.get("decision")
        if decision in ("accept", "acceptForSession"):
            item.update(status="completed", aggregatedOutput=f"approved: {command}\n", exitCode=0)
        else:
            item.update(status="declined")
        await self.notify("item/completed", {**base, "item": item, "completedAtMs": now_ms()})
        turn["items"].append(item)
        if decision == "cancel":
            return "interrupted"
        await self.stream_message(
            base, turn, ["approved" if item["status"] == "completed" else "declined"]
        )
        return "completed"


async def serve(home: Path) -> None:
    """Read stdin until EOF, handling one line at a time."""
    stdin = trio.lowlevel.FdStream(os.dup(0))
    stdout = trio.lowlevel.FdStream(os.dup(1))
    runtime = DemoRuntime(home, stdout)
    print("demo-runtime ready", file=sys.stderr, flush=True)
    async with trio.open_nursery() as nursery:
        runtime.nursery = nursery
        buf = b""
        dropping = False
        while True:
            data = await stdin.receive_some(CHUNK)
            if not data:
                break
            *lines, buf = (buf + data).split(b"\n")
            for line in lines:
                if dropping:
                    dropping = False
                    continue
                await runtime.handle_line(line)
            if len(buf) > MAX_LINE:
                print("demo-runtime: dropping an over-long input line", file=sys.stderr)
                buf, dropping = b"", True
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``argus demo-runtime``."""
    parser = argparse.ArgumentParser(
        prog="argus demo-runtime",
        description="A small codex-app-server-compatible runtime on stdio (JSONL).",
    )
    parser.add_argument(
        "--home",
        help="where threads are kept (default $ARGUS_DEMO_HOME, else $HOME/.argus-demo-runtime)",
    )
    options = parser.parse_args(argv)
    home = Path(
        options.home
        or os.environ.get("ARGUS_DEMO_HOME")
        or Path(os.environ.get("HOME", ".")) / ".argus-demo-runtime"
    )
    home.mkdir(parents=True, exist_ok=True)
    try:
        trio.run(serve, home)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

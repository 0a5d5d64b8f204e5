"""``argus bridge``: one long-lived runtime behind a numbered, replayable stream.

Why: a runtime started by the gateway as a plain child dies with the gateway, and with it
every running turn. The bridge owns the runtime instead; the gateway connects to it (Unix
socket for local sessions, TCP 7777 in a container), and may go away and come back:

* every runtime stdout line is numbered and kept in a ring bounded by ``--ring-bytes``
  (oldest dropped first), whether or not a gateway is connected, so lines in flight to a
  gateway that died are not lost either;
* a gateway presents the session token (constant-time check) and the last number it
  consumed, and gets everything after it, then the live stream; a new connection replaces
  the old one;
* stderr goes to a size-capped log file, never into the stream;
* the runtime's exit is reported (code, signal, stderr tail) to the connected gateway, or
  to the next one within ``--linger-s``;
* it watches the ``initialize`` exchange so a gateway that reconnects can be told the
  runtime is initialized already (codex refuses a second ``initialize``);
* optionally it supervises the session's node-host beside the runtime.

SIGTERM or a ``stop`` frame stops the runtime (stdin closed, SIGTERM, SIGKILL to its process
group) and ends the bridge.
"""

from __future__ import annotations

import argparse
import collections
import hmac
import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import trio

from ..procs import ByteTail, exit_code_and_signal, read_chunks, stop_process, supervise
from ..protocol import bridge as p
from ..protocol.framing import LineSplitter, OversizedLine
from ..workspace import bootstrap_templates

log = logging.getLogger("argus.bridge")

HELLO_DEADLINE_S = 10.0
STDERR_LOG_CAP = 8 * 1024 * 1024
STDERR_TAIL = 16 * 1024
READ_CHUNK = 128 * 1024


class Ring:
    """Numbered lines, oldest dropped past ``max_bytes`` (the newest is always kept)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.lines: collections.deque[tuple[int, bytes]] = collections.deque()
        self.size = 0
        self.head = 0

    @property
    def first(self) -> int:
        """The oldest retained number (``head + 1`` when empty)."""
        return self.lines[0][0] if self.lines else self.head + 1

    def append(self, line: bytes) -> int:
        """Number and keep a line; returns its number."""
        self.head += 1
        self.lines.append((self.head, line))
        self.size += len(line)
        while self.size > self.max_bytes and len(self.lines) > 1:
            self.size -= len(self.lines.popleft()[1])
        return self.head

    def after(self, since: int) -> list[tuple[int, bytes]]:
        """Retained lines numbered above ``since``."""
        if since < self.first - 1:
            since = self.first - 1
        skip = since - self.first + 1
        return list(self.lines)[max(0, skip) :]


class Bridge:
    """The bridge's state: the runtime, the ring, the one gateway connection."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.token: str = options.token
        self.ring = Ring(options.ring_bytes)
        self.instance = uuid.uuid4().hex
        self.base: int | None = None
        self.generation = 0  # gateway connections accepted so far: the id epoch of each
        self.conn: trio.abc.Stream | None = None
        self.conn_lock = trio.Lock()
        self.stdin_lock = trio.Lock()
        self.process: trio.Process | None = None
        self.exit: dict[str, Any] | None = None
        self.exit_acked = trio.Event()
        self.stop_requested = trio.Event()
        self.wake = trio.Event()  # the runtime exited, or a stop was asked for
        self.init_id: Any = None
        self.init_result: Any = None
        self.stderr_tail = ByteTail(STDERR_TAIL)

    # -- runtime ---------------------------------------------------------------------------

    def write_pid_file(self) -> None:
        """``{pid, instance, runtimePid}`` for operators and tests (no secrets)."""
        if self.options.pid_file:
            info = {
                "pid": os.getpid(),
                "instance": self.instance,
                "runtimePid": self.process.pid if self.process else None,
            }
            Path(self.options.pid_file).write_text(json.dumps(info))

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the runtime and serve gateways until it ended and was reported, or stop."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_BRIDGE_")}
        self.process = await trio.lowlevel.open_process(
            ["/bin/sh", "-c", self.options.cmd],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        log.info("runtime started pid=%s", self.process.pid)
        self.write_pid_file()
        listeners = await self._listen()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_signals, nursery.cancel_scope)
            nursery.start_soon(self._run_runtime)
            nursery.start_soon(trio.serve_listeners, self._handle, listeners)
            if self.options.node_id and os.environ.get("ARGUS_NODE_WS_URL"):
                nursery.start_soon(self._supervise_node_host)
            task_status.started()
            await self.wake.wait()
            if self.exit is not None and not self.stop_requested.is_set():
                with trio.move_on_after(self.options.linger_s):
                    await self.exit_acked.wait()
            nursery.cancel_scope.cancel()
        if self.process.returncode is None:
            with trio.CancelScope(shield=True):
                await stop_process(self.process, self.options.stop_timeout_s)

    async def _run_runtime(self) -> None:
        process = self.process
        assert process is not None and process.stdout is not None and process.stderr is not None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._drain_stderr, process.stderr)
            splitter = LineSplitter(self.options.line_limit)
            while True:
                try:
                    data = await process.stdout.receive_some(READ_CHUNK)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                # One write per read chunk, however many lines it held.
                frames = [
                    self._number_runtime_line(line)
                    for line in (splitter.feed(data) if data else splitter.close())
                ]
                await self._send(b"".join(f for f in frames if f))
                if not data:
                    break
            rc = await process.wait()
        code, sig = exit_code_and_signal(rc)
        tail = self.stderr_tail.text()
        self.exit = {"code": code, "signal": sig, "stderrTail": tail}
        log.info("runtime exited code=%s signal=%s", code, sig)
        await self._send(p.json_frame(p.EXIT, self.exit))
        self.wake.set()

    def _number_runtime_line(self, line: bytes | OversizedLine) -> bytes:
        """Number a runtime line into the ring; its frame (b"" for a blank line)."""
        if isinstance(line, OversizedLine):
            message = (
                f"A runtime output line of {line.size} bytes exceeded the limit and was dropped"
            )
            note = {
                "method": "argus/warning",
                "params": {"code": "line_too_long", "message": message, "bytes": line.size},
            }
            line = json.dumps(note).encode()
        elif not line.strip():
            return b""
        elif self.init_id is not None and self.init_result is None and b'"result"' in line:
            self._watch_initialize_response(line)
        return p.line_frame(self.ring.append(line), line)

    async def _publish(self, line: bytes) -> None:
        seq = self.ring.append(line)
        await self._send(p.line_frame(seq, line))

    async def _drain_stderr(self, stream: trio.abc.ReceiveStream) -> None:
        path = Path(self.options.stderr_log) if self.options.stderr_log else None
        out = await trio.to_thread.run_sync(lambda: open(path, "ab")) if path else None
        written = 0
        try:
            async for data in read_chunks(stream):
                self.stderr_tail.feed(data)
                if out is not None:
                    if written + len(data) > STDERR_LOG_CAP:
                        await trio.to_thread.run_sync(out.truncate, 0)
                        await trio.to_thread.run_sync(out.seek, 0)
                        written = 0
                    await trio.to_thread.run_sync(out.write, data)
                    await trio.to_thread.run_sync(out.flush)
                    written += len(data)
        finally:
            if out is not None:
                out.close()

    def _watch_initialize_request(self, data: bytes) -> None:
        for raw in data.split(b"\n"):
            if b'"initialize"' not in raw:
                continue
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if isinstance(msg, dict) and msg.get("method") == "initialize" and "id" in msg:
                self.init_id, self.init_result = msg["id"], None

    def _watch_initialize_response(self, line: bytes) -> None:
        try:
            msg = json.loads(line)
        except ValueError:
            return
        if isinstance(msg, dict) and msg.get("id") == self.init_id and "result" in msg:
            self.init_result = msg["result"]

    async def _supervise_node_host(self) -> None:
        node_id = self.options.node_id
        cmd = [
            sys.executable,
            "-m",
            "argus",
            "node-host",
            "--node-id",
            node_id,
            "--display-name",
            node_id.replace(":", "-", 1),
        ]
        log_path = (
            Path(self.options.stderr_log).with_name("node-host.log")
            if self.options.stderr_log
            else None
        )
        await supervise(cmd, dict(os.environ), Path.cwd(), log_path, self.options.stop_timeout_s)

    async def _watch_signals(self, scope: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                log.info("signal received: stopping the runtime")
                self.stop_requested.set()
                self.wake.set()
                return

    # -- gateway connections -----------------------------------------------------------------

    async def _listen(self) -> list[trio.SocketListener]:
        kind, _, where = self.options.listen.partition(":")
        if kind == "unix":
            path = Path(where)
            await trio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))
            sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
            old = os.umask(0o177)
            try:
                await sock.bind(str(path))
            finally:
                os.umask(old)
            sock.listen(4)
            return [trio.SocketListener(sock)]
        if kind == "tcp":
            host, _, port = where.rpartition(":")
            return await trio.open_tcp_listeners(int(port), host=host or None)
        raise SystemExit(
            f"argus bridge: --listen takes unix:PATH or tcp:HOST:PORT, not {self.options.listen!r}"
        )

    async def _send(self, data: bytes) -> None:
        conn = self.conn
        if conn is None or not data:
            return
        try:
            await _acquire(self.conn_lock)  # no scheduling pass when it is free
            try:
                await conn.send_all(data)
            finally:
                self.conn_lock.release()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            if self.conn is conn:
                self.conn = None

    async def _handle(self, stream: trio.abc.Stream) -> None:
        decoder = p.FrameDecoder(self.options.line_limit + 64)
        hello: dict[str, Any] | None = None
        pending: list[tuple[bytes, bytes]] = []
        try:
            with trio.move_on_after(HELLO_DEADLINE_S):
                while hello is None:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    frames = decoder.feed(data)
                    if frames and frames[0][0] == p.HELLO:
                        hello = json.loads(frames[0][1])
                        pending = frames[1:]
                    elif frames:
                        break
        except (trio.BrokenResourceError, trio.ClosedResourceError, p.FrameError, ValueError):
            return
        token = hello.get("token") if isinstance(hello, dict) else None
        if not isinstance(token, str) or not hmac.compare_digest(
            token.encode(), self.token.encode()
        ):
            await _try_send(stream, p.json_frame(p.ERROR, {"message": "Unauthorized"}))
            await stream.aclose()
            return
        assert hello is not None
        if self.base is None and isinstance(hello.get("base"), int):
            self.base = hello["base"]
        since = hello.get("since") if isinstance(hello.get("since"), int) else 0
        if hello.get("instance") != self.instance:
            since = 0  # numbers counted on another bridge mean nothing here
        async with self.conn_lock:
            old, self.conn = self.conn, stream
            self.generation += 1
            welcome = {
                "instance": self.instance,
                "generation": self.generation,
                "base": self.base,
                "first": self.ring.first,
                "head": self.ring.head,
                "pid": self.process.pid if self.process else None,
                "initialize": self.init_result,
                "exit": self.exit,
            }
            try:
                await stream.send_all(p.json_frame(p.WELCOME, welcome))
                backlog = b"".join(p.line_frame(n, line) for n, line in self.ring.after(since))
                if backlog:
                    await stream.send_all(backlog)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                # The gateway went away during its handshake (kill -9): this connection
                # is over, the bridge and its runtime carry on for the next one.
                if self.conn is stream:
                    self.conn = old
                return
        if old is not None:
            log.info("a new gateway connection replaces the old one")
            await old.aclose()
        try:
            await self._on_frames(pending)
            while True:
                data = await stream.receive_some(READ_CHUNK)
                if not data:
                    return
                await self._on_frames(decoder.feed(data))
        except (trio.BrokenResourceError, trio.ClosedResourceError, p.FrameError):
            return
        finally:
            if self.conn is stream:
                self.conn = None

    async def _on_frames(self, frames: list[tuple[bytes, bytes]]) -> None:
        """Handle frames in order; a run of input frames is one write to the runtime."""
        inputs: list[bytes] = []
        for kind, payload in frames:
            if kind == p.INPUT:
                if self.init_result is None and b'"initialize"' in payload:
                    self._watch_initialize_request(payload)
                inputs.append(payload)
                continue
            if inputs:
                await self._write_stdin(b"".join(inputs))
                inputs = []
            await self._on_frame(kind, payload)
        if inputs:
            await self._write_stdin(b"".join(inputs))

    async def _write_stdin(self, data: bytes) -> None:
        """Write to the runtime's stdin: straight to the pipe when it takes it all, else
        through trio (which waits for room). No scheduling pass before the write, so a
        request reaches the runtime as soon as it arrived (issue 14)."""
        process = self.process
        if process is None or process.stdin is None:
            return
        stdin = process.stdin
        await _acquire(self.stdin_lock)
        try:
            try:
                written = os.write(stdin.fileno(), data)
            except BlockingIOError:
                written = 0
            if written < len(data):
                await stdin.send_all(data[written:])
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            self.stdin_lock.release()

    async def _on_frame(self, kind: bytes, payload: bytes) -> None:
        if kind == p.INPUT:
            await self._on_frames([(kind, payload)])
        elif kind == p.NOTE:
            await self._publish(payload.strip())
        elif kind == p.ACK_EXIT:
            self.exit_acked.set()
            self.wake.set()
        elif kind == p.STOP:
            self.stop_requested.set()
            self.wake.set()


async def _acquire(lock: trio.Lock) -> None:
    """Take ``lock``, without a scheduling pass when it is free (the common case)."""
    try:
        lock.acquire_nowait()
    except trio.WouldBlock:
        await lock.acquire()


async def _try_send(stream: trio.abc.Stream, data: bytes) -> None:
    try:
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


def build_parser() -> argparse.ArgumentParser:
    """``argus bridge`` options."""
    env = os.environ
    parser = argparse.ArgumentParser(prog="argus bridge", description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="unix:PATH or tcp:HOST:PORT")
    parser.add_argument(
        "--cmd", default=env.get("ARGUS_RUNTIME_CMD"), help="runtime command [ARGUS_RUNTIME_CMD]"
    )
    parser.add_argument(
        "--token",
        default=env.get("ARGUS_SESSION_TOKEN"),
        help="token a gateway must present [ARGUS_SESSION_TOKEN]",
    )
    parser.add_argument(
        "--token-file",
        default=env.get("ARGUS_SESSION_TOKEN_FILE"),
        help="read the token from this file instead (a swarm secret) [ARGUS_SESSION_TOKEN_FILE]",
    )
    parser.add_argument(
        "--ring-bytes", type=int, default=16 * 1024 * 1024, help="output kept for replay"
    )
    parser.add_argument(
        "--line-limit",
        type=int,
        default=int(env.get("ARGUS_JSONL_LINE_LIMIT_BYTES", 128 * 1024 * 1024)),
    )
    parser.add_argument("--stderr-log", help="file for the runtime's stderr (size-capped)")
    parser.add_argument(
        "--linger-s", type=float, default=600.0, help="how long an exit report waits for a gateway"
    )
    parser.add_argument("--stop-timeout-s", type=float, default=5.0)
    parser.add_argument("--node-id", help="also supervise an argus node-host with this id")
    parser.add_argument("--pid-file", help="write the bridge's pid and instance here")
    parser.add_argument(
        "--bootstrap-workspace",
        help="copy the workspace templates (AGENTS.md...) into this directory, never overwriting",
    )
    return parser


def read_token_file(path: str) -> str:
    """The session token from a file (a swarm secret), and hand it to the runtime's children.

    Why a file: an environment variable or a label shows in ``docker service inspect``; a
    secret does not. The runtime and its node-host still need the token to call the
    gateway back, so it goes into this process's environment (invisible to the engine),
    which they inherit.
    """
    token = Path(path).read_text().strip()
    if not token or len(token) > 4096:
        raise ValueError(f"{path} holds no usable token")
    os.environ["ARGUS_SESSION_TOKEN"] = token
    if os.environ.get("ARGUS_MCP_URL"):
        os.environ["ARGUS_MCP_TOKEN"] = token
    if os.environ.get("ARGUS_NODE_WS_URL"):
        os.environ["ARGUS_NODE_TOKEN"] = token
    return token


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``argus bridge``."""
    options = build_parser().parse_args(argv)
    if not options.cmd:
        print("argus bridge: no runtime command (--cmd or ARGUS_RUNTIME_CMD)", file=sys.stderr)
        return 2
    if options.token_file:
        try:
            options.token = read_token_file(options.token_file)
        except (OSError, ValueError) as exc:
            print(f"argus bridge: cannot read --token-file: {exc}", file=sys.stderr)
            return 2
    if not options.token:
        print("argus bridge: no token (--token or ARGUS_SESSION_TOKEN)", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if os.getpgrp() != os.getpid():
        os.setsid()  # its own process group: stopping it never reaches whoever started it
    if options.bootstrap_workspace:
        bootstrap_templates(Path(options.bootstrap_workspace))
    bridge = Bridge(options)
    bridge.write_pid_file()
    try:
        trio.run(bridge.serve)
    except KeyboardInterrupt:
        return 130
    finally:
        if options.pid_file:
            Path(options.pid_file).unlink(missing_ok=True)
    return 0

"""Process helpers shared by every program: read to EOF, keep a tail, stop, supervise.

Why one module: the gateway (plain child runtimes), ``argus bridge`` (the runtime it owns),
``argus node-host`` (background jobs) and the test harness all start processes, drain their
pipes and stop them. Each did it its own way; one copy each keeps the stop order (close
stdin, SIGTERM, SIGKILL to the process group, every step bounded) and the caps identical.
A leaf: it imports nothing of Argus, so every program may use it.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import trio

log = logging.getLogger(__name__)

READ_SIZE = 65536
SUPERVISE_BACKOFF_MIN_S, SUPERVISE_BACKOFF_MAX_S = 1.0, 30.0


def now_ms() -> int:
    """Wall-clock milliseconds: the timestamps clients, the store and nodes see."""
    return int(time.time() * 1000)


async def read_chunks(
    stream: trio.abc.ReceiveStream, size: int = READ_SIZE
) -> AsyncIterator[bytes]:
    """Every chunk a stream yields until EOF; a broken or closed stream counts as EOF."""
    while True:
        try:
            data = await stream.receive_some(size)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        if not data:
            return
        yield data


class ByteTail:
    """The last ``max_bytes`` of a stream, and how many bytes went by in total.

    Bounded by construction: chunks are kept in a deque and dropped from the front once the
    rest still covers ``max_bytes``, so a chatty process never grows it.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.total = 0
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0

    def feed(self, data: bytes) -> None:
        """Record a chunk."""
        self.total += len(data)
        self._chunks.append(data)
        self._size += len(data)
        while self._size - len(self._chunks[0]) >= self.max_bytes:
            self._size -= len(self._chunks.popleft())

    def bytes(self, limit: int | None = None) -> bytes:
        """The retained tail (at most ``limit`` bytes of it)."""
        cap = self.max_bytes if limit is None else min(limit, self.max_bytes)
        return b"".join(self._chunks)[-cap:] if cap > 0 else b""

    def text(self, limit: int | None = None) -> str:
        """The retained tail, decoded (invalid UTF-8 replaced)."""
        return self.bytes(limit).decode("utf-8", "replace")

    @property
    def truncated(self) -> bool:
        """Whether output was dropped from the front."""
        return self.total > self.max_bytes


class StderrTail(ByteTail):
    """A runtime's stderr: the tail for its exit report, and a size-capped log.

    Stderr never enters the JSON stream. It is logged line by line (each line truncated)
    until ``log_budget`` bytes have been logged, then only the tail is kept, so a chatty
    runtime cannot flood the daemon's log or memory.
    """

    LINE_LOG_MAX = 500

    def __init__(self, session_id: str, max_bytes: int, log_budget: int = 256 * 1024) -> None:
        super().__init__(max_bytes)
        self.session_id = session_id
        self._log_budget = log_budget
        self._partial = b""
        self.eof = trio.Event()

    def feed(self, data: bytes) -> None:
        """Record a chunk of stderr and log its complete lines within the budget."""
        super().feed(data)
        if self._log_budget <= 0:
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()[-self.LINE_LOG_MAX :]
        for raw in lines:
            if self._log_budget <= 0:
                log.info("runtime stderr: further lines not logged session=%s", self.session_id)
                break
            text = raw[: self.LINE_LOG_MAX].decode("utf-8", "replace").rstrip()
            self._log_budget -= len(text) + 1
            log.info("runtime stderr session=%s: %s", self.session_id, text)


async def drain_into(stream: trio.abc.ReceiveStream, tail: StderrTail) -> None:
    """Read a stream to EOF into ``tail`` (a full stderr pipe would block the runtime)."""
    try:
        async for data in read_chunks(stream):
            tail.feed(data)
    finally:
        tail.eof.set()


def exit_code_and_signal(returncode: int) -> tuple[int | None, int | None]:
    """A return code as (exit code, signal); ``sh -c`` reports "killed by N" as 128+N."""
    if returncode < 0:
        return None, -returncode
    if returncode > 128 and returncode - 128 < signal.NSIG:
        return returncode, returncode - 128
    return returncode, None


def signal_group(process: trio.Process, sig: int) -> None:
    """Signal the process's whole group (what it started, too), else the process itself."""
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)


async def stop_process(process: trio.Process, timeout: float) -> str | None:
    """Close stdin, then SIGTERM, then SIGKILL the process group, each step bounded.

    A process without a stdin pipe (the node-host) has no polite first step: it gets
    SIGTERM at once. Returns the name of the last signal sent (None: none was needed).
    """
    if process.returncode is not None:
        return None
    if process.stdin is not None:
        with trio.move_on_after(timeout / 5):
            await process.stdin.aclose()
        with trio.move_on_after(timeout):
            await process.wait()
            return None
    for sig in (signal.SIGTERM, signal.SIGKILL):
        signal_group(process, sig)
        with trio.move_on_after(timeout):
            await process.wait()
            return sig.name
    return signal.SIGKILL.name


async def supervise(
    cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path | None, stop_timeout: float
) -> None:
    """Run ``cmd`` until cancelled, restarting it (1 s doubling to 30 s) whenever it exits.

    Used for a runtime's node-host, by the gateway and by ``argus bridge``. The child gets
    ``--parent-pid`` so it exits if we are gone. Its stderr goes to ``log_path``, truncated
    at each start (bounded by one run's output).
    """
    cmd = [*cmd, "--parent-pid", str(os.getpid())]
    delay = SUPERVISE_BACKOFF_MIN_S
    while True:
        started = trio.current_time()
        out = None
        if log_path is not None:
            out = await trio.to_thread.run_sync(lambda: open(log_path, "wb"))
        try:
            process = await trio.lowlevel.open_process(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=out if out is not None else subprocess.DEVNULL,
                cwd=str(cwd),
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            log.warning("cannot start %s: %s", cmd[0], exc)
            process = None
        finally:
            if out is not None:
                await trio.to_thread.run_sync(out.close)
        if process is not None:
            try:
                await process.wait()
            finally:
                with trio.CancelScope(shield=True):
                    await stop_process(process, stop_timeout)
            log.warning("supervised process exited code=%s; restarting", process.returncode)
        if trio.current_time() - started > 30:
            delay = SUPERVISE_BACKOFF_MIN_S
        await trio.sleep(delay)
        delay = min(SUPERVISE_BACKOFF_MAX_S, delay * 2)

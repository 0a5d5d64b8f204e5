"""The gateway's side of a bridge connection: a ``Runtime`` whose lines are numbered.

``BridgeRuntime`` wraps one connected stream (Unix socket or TCP). The session calls
``hello(since, base)`` first: the bridge checks the token and answers with its numbering
(``base``, ``first``, ``head``), the cached ``initialize`` result and, if the runtime ended
while no gateway was there, its exit report; then it replays retained lines after
``since``. Afterwards ``receive_lines`` yields runtime output lines (one per numbered frame, in
order) and ``[]`` once the runtime's exit was reported.

Being a ``NumberedRuntime`` tells the session that the lines carry stable numbers: session
``seq`` = ``base`` + line number, the same before and after a gateway restart. Lines are
handed over whole (``receive_lines``): the bridge split them once, nobody splits again.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import trio

from ..protocol import bridge as p
from ..protocol.framing import OversizedLine
from .base import ExitStatus, NumberedRuntime, ProvisionError

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10.0
READ_BATCH_BYTES = 128 * 1024  # lines handed to the session at a time


class BridgeRuntime(NumberedRuntime):
    """A runtime behind ``argus bridge``: lines arrive whole, one per numbered frame."""

    def __init__(
        self, stream: trio.abc.Stream, token: str, info: dict[str, Any], line_limit: int
    ) -> None:
        self.stream = stream
        self.token = token
        self.info = dict(info)
        self.decoder = p.FrameDecoder(line_limit + 64)
        self.frames: list[tuple[bytes, bytes]] = []
        self.base = 0
        self.first = 1
        self.head = 0
        self.instance: str | None = None
        self.generation: int | None = None  # this connection's number at the bridge
        self.initialize_result: Any = None
        self.exit_report: dict[str, Any] | None = None
        self.last_seq = 0
        self._stop_on_close = True  # False: leave the runtime running (gateway shutdown)
        self._send_lock = trio.Lock()
        self._eof = False

    async def hello(self, since: int, base: int, instance: str | None = None) -> None:
        """Authenticate and learn the bridge's numbering; raises ``ProvisionError``.

        ``since`` counts only if the bridge is still the ``instance`` it was counted on.
        """
        hello = {"token": self.token, "since": since, "base": base, "instance": instance}
        await self._send(p.json_frame(p.HELLO, hello))
        welcome: dict[str, Any] | None = None
        with trio.move_on_after(HELLO_TIMEOUT_S):
            while welcome is None:
                kind, payload = await self._next_frame()
                if kind == p.ERROR:
                    reason = json.loads(payload).get("message")
                    raise ProvisionError(f"bridge refused the connection: {reason}")
                if kind == p.WELCOME:
                    welcome = json.loads(payload)
                elif kind == b"":
                    break
        if welcome is None:
            raise ProvisionError("bridge did not answer the hello")
        self.instance = welcome.get("instance")
        generation = welcome.get("generation")
        self.generation = generation if type(generation) is int else None
        self.base = welcome.get("base") if isinstance(welcome.get("base"), int) else base
        self.first, self.head = welcome["first"], welcome["head"]
        self.initialize_result = welcome.get("initialize")
        self.exit_report = welcome.get("exit")
        if self.instance != instance:
            since = 0
        self.last_seq = max(since, self.first - 1)
        if welcome.get("pid"):
            self.info["pid"] = welcome["pid"]

    async def _next_frame(self) -> tuple[bytes, bytes]:
        while not self.frames:
            try:
                data = await self.stream.receive_some(256 * 1024)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                return b"", b""
            try:
                self.frames.extend(self.decoder.feed(data))
            except p.FrameError as exc:
                log.warning("bridge protocol error: %s", exc)
                return b"", b""
        return self.frames.pop(0)

    async def receive_lines(self, line_limit: int) -> list[bytes | OversizedLine]:
        """The next runtime lines, whole, as the bridge numbered them; ``[]`` when it ended.

        The bridge already split the runtime's output (and replaced an over-long line with
        a warning note), so each frame is one line: nothing is split a second time here.
        Always a scheduling point, even when the lines were already buffered: the session's
        reader must let the clients' senders run between batches, or a burst the bridge
        kept for us would pile up in every client's backlog at once.
        """
        await trio.lowlevel.checkpoint()
        if self._eof:
            return []
        out: list[bytes | OversizedLine] = []
        size = 0
        while True:
            if out and not self.frames:
                break
            if self.exit_report is not None and self.last_seq >= self.head and not self.frames:
                break  # the runtime had ended before we connected: backlog done, then EOF
            kind, payload = await self._next_frame()
            if kind == p.LINE:
                seq, line = p.split_line(payload)
                if seq != self.last_seq + 1:
                    log.warning("bridge line numbers jump from %s to %s", self.last_seq, seq)
                self.last_seq = seq
                out.append(line)
                size += len(line) + 1
                if size >= READ_BATCH_BYTES:
                    break
            elif kind == p.EXIT:
                self.exit_report = json.loads(payload)
                self.frames.insert(0, (b"", b""))  # EOF after the lines already read
                break
            elif kind == b"":
                if out:
                    self.frames.insert(0, (b"", b""))
                else:
                    self._eof = True
                break
        if not out and self.exit_report is not None and not self.frames:
            self._eof = True
        return out

    async def receive_some(self, max_bytes: int) -> bytes:
        """The same lines as JSONL bytes (for byte-level readers; sessions read lines)."""
        lines = await self.receive_lines(max_bytes)
        return b"".join(line + b"\n" for line in lines if isinstance(line, bytes))

    def keep_running_on_close(self) -> None:
        """A gateway shutdown: close the connection without ``stop``; the bridge carries on."""
        self._stop_on_close = False

    async def _send(self, data: bytes) -> None:
        try:  # no scheduling pass when the lock is free (the common case)
            self._send_lock.acquire_nowait()
        except trio.WouldBlock:
            await self._send_lock.acquire()
        try:
            await self.stream.send_all(data)
        finally:
            self._send_lock.release()

    async def send_all(self, data: bytes) -> None:
        """Runtime stdin."""
        try:
            await self._send(p.frame(p.INPUT, data))
        except trio.ClosedResourceError as exc:
            raise trio.BrokenResourceError("bridge connection is closed") from exc

    async def send_note(self, line: bytes) -> bool:
        """Ask the bridge to number a gateway note into the stream; whether it was sent."""
        try:
            await self._send(p.frame(p.NOTE, line))
            return True
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False

    async def wait_exit(self) -> ExitStatus:
        """The exit the bridge reported (or an unknown exit when the bridge went away)."""
        report = self.exit_report or {}
        return ExitStatus(report.get("code"), report.get("signal"), report.get("stderrTail") or "")

    async def close(self) -> None:
        """Acknowledge an exit, or stop the runtime, or just leave; then disconnect."""
        with trio.move_on_after(2), trio.CancelScope(shield=True):
            try:
                if self.exit_report is not None:
                    await self._send(p.frame(p.ACK_EXIT, b""))
                elif self._stop_on_close:
                    await self._send(p.frame(p.STOP, b""))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            await self.stream.aclose()

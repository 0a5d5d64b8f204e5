"""Sans-IO JSONL framing for the runtime's stdout (or TCP stream).

Why its own class: the reader must split a byte stream into lines fast (a streaming turn is
tens of thousands of lines per second) and must survive a line that never ends. The original
raised on an over-long line and tore down the whole session with it; here an over-long line
is skipped up to its newline and reported as one ``OversizedLine`` event, and the session
lives on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OversizedLine:
    """A line longer than the limit was dropped; ``size`` counts the bytes skipped."""

    size: int


class LineSplitter:
    """Splits bytes into lines of at most ``limit`` bytes (counting a final ``\r``, not ``\n``).

    ``feed`` returns complete lines (``bytes``, trailing ``\\r`` stripped) and
    ``OversizedLine`` markers in stream order. Memory is bounded by ``limit``: a partial
    line longer than that is discarded as soon as it crosses the limit, and the rest of it
    is skipped when it arrives.
    """

    __slots__ = ("_buf", "_dropping", "_limit")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buf = b""
        # Bytes of an over-long line skipped so far; -1 when not skipping.
        self._dropping = -1

    def feed(self, data: bytes) -> list[bytes | OversizedLine]:
        """Consume a chunk and return the lines it completes."""
        out: list[bytes | OversizedLine] = []
        if self._dropping >= 0:
            nl = data.find(b"\n")
            if nl < 0:
                self._dropping += len(data)
                return out
            out.append(OversizedLine(self._dropping + nl))
            self._dropping = -1
            data = data[nl + 1 :]
        if self._buf:
            data = self._buf + data
        parts = data.split(b"\n")
        tail = parts.pop()
        limit = self._limit
        for line in parts:
            if len(line) > limit:
                out.append(OversizedLine(len(line)))
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            out.append(line)
        if len(tail) > limit:
            self._dropping = len(tail)
            self._buf = b""
        else:
            self._buf = tail
        return out

    def close(self) -> list[bytes | OversizedLine]:
        """End of stream: a final unterminated line still counts (the original did this)."""
        out: list[bytes | OversizedLine] = []
        if self._dropping >= 0:
            out.append(OversizedLine(self._dropping))
        elif self._buf:
            line = self._buf
            out.append(line[:-1] if line.endswith(b"\r") else line)
        self._buf = b""
        self._dropping = -1
        return out

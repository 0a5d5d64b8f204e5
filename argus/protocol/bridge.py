"""Bridge wire format: length-prefixed frames over one stream socket (Unix or TCP).

A frame is one type byte, a 4-byte big-endian payload length, and the payload. Types:

====  ===========  =================================================================
byte  direction    payload
====  ===========  =================================================================
H     gw → bridge  hello: JSON ``{token, since, base}`` (must be the first frame)
W     bridge → gw  welcome: JSON ``{instance, generation, base, first, head, pid, initialize,
                   exit}``
E     bridge → gw  error: JSON ``{message}``; the bridge closes the connection after it
L     bridge → gw  one numbered runtime output line: 8-byte big-endian number + the line
X     bridge → gw  the runtime exited: JSON ``{code, signal, stderrTail}``
I     gw → bridge  bytes for the runtime's stdin (whole lines)
N     gw → bridge  a gateway note: one JSON line the bridge numbers into the stream
A     gw → bridge  exit acknowledged: a detached bridge may go
S     gw → bridge  stop: stop the runtime and exit
====  ===========  =================================================================

Numbers start at 1 per bridge instance and count every line the stream carries (runtime
lines and notes alike); a gateway presenting ``since=n`` gets every retained line after
``n``. ``base`` is an offset the first gateway sets once per bridge, so that the session's
sequence numbers (``base + n``) continue those of earlier runtimes. ``generation`` counts
the gateway connections the bridge accepted (1, 2, ...): the gateway puts it in the epoch
of its request ids, so ids never repeat those of an earlier gateway on this runtime.
"""

from __future__ import annotations

import json
import struct
from typing import Any

HEADER = struct.Struct(">cI")
SEQ = struct.Struct(">Q")

HELLO, WELCOME, ERROR, LINE, EXIT = b"H", b"W", b"E", b"L", b"X"
INPUT, NOTE, ACK_EXIT, STOP = b"I", b"N", b"A", b"S"


class FrameError(Exception):
    """The peer sent something that is not a frame of this protocol."""


def frame(kind: bytes, payload: bytes) -> bytes:
    """Encode one frame."""
    return HEADER.pack(kind, len(payload)) + payload


def json_frame(kind: bytes, obj: Any) -> bytes:
    """Encode a frame with a JSON payload."""
    return frame(kind, json.dumps(obj, separators=(",", ":")).encode())


def line_frame(seq: int, line: bytes) -> bytes:
    """Encode a numbered line."""
    return frame(LINE, SEQ.pack(seq) + line)


def split_line(payload: bytes) -> tuple[int, bytes]:
    """Decode a numbered line."""
    return SEQ.unpack_from(payload)[0], payload[SEQ.size :]


class FrameDecoder:
    """Bytes in, frames out; frames larger than ``max_payload`` are a protocol error."""

    def __init__(self, max_payload: int) -> None:
        self.max_payload = max_payload
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        """Every complete frame in the bytes seen so far."""
        self._buf += data
        frames = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= HEADER.size:
            kind, size = HEADER.unpack_from(buf, pos)
            if size > self.max_payload:
                raise FrameError(f"frame of {size} bytes exceeds {self.max_payload}")
            end = pos + HEADER.size + size
            if end > len(buf):
                break
            frames.append((kind, bytes(buf[pos + HEADER.size : end])))
            pos = end
        del buf[:pos]
        return frames

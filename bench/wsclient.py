"""A minimal, fast, blocking WebSocket client for benchmarks only.

Why not trio-websocket: a benchmark client must be much faster than the server it
measures. trio-websocket tops out near the servers' own rates and adds ~250 µs to every
round trip, which would measure the client. This one is a plain socket, a hand-written
upgrade request and a frame parser over a bytearray. Limits: text/binary frames without
fragmentation (what the measured servers send), server frames unmasked, no extensions,
127.0.0.1 only.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
from collections.abc import Callable


class Closed(Exception):
    """The server closed the connection; ``code`` is the close code (or None)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


class FastWsClient:
    """A blocking WebSocket connection to ``ws://127.0.0.1:port/path``."""

    def __init__(self, port: int, path: str = "/", timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed(None)
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
        self.buf = bytearray(rest)
        self.pos = 0

    def send_text(self, text: str) -> None:
        """Send one masked text frame (mask of zeros: valid, and free to apply)."""
        payload = text.encode()
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        self.sock.sendall(header + b"\x00\x00\x00\x00" + payload)

    def _fill(self) -> None:
        if self.pos > 1 << 20:
            del self.buf[: self.pos]
            self.pos = 0
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise Closed(None)
        self.buf += chunk

    def recv_frame(self) -> bytes:
        """The payload of the next data frame; raises ``Closed`` on a close frame."""
        while True:
            buf, pos = self.buf, self.pos
            if len(buf) - pos >= 2:
                opcode = buf[pos] & 0x0F
                n = buf[pos + 1] & 0x7F
                start = pos + 2
                if n == 126:
                    if len(buf) - pos >= 4:
                        n = struct.unpack_from("!H", buf, pos + 2)[0]
                    start = pos + 4
                elif n == 127:
                    if len(buf) - pos >= 10:
                        n = struct.unpack_from("!Q", buf, pos + 2)[0]
                    start = pos + 10
                if len(buf) >= start + n and len(buf) - pos >= start - pos:
                    payload = bytes(buf[start : start + n])
                    self.pos = start + n
                    if opcode == 0x8:
                        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                        raise Closed(code)
                    if opcode in (0x1, 0x2, 0x0):
                        return payload
                    continue  # ping/pong: ignored
            self._fill()

    def recv_until(self, predicate: Callable[[bytes], bool]) -> int:
        """Read frames until one satisfies ``predicate``; returns how many were read."""
        count = 0
        while True:
            frame = self.recv_frame()
            count += 1
            if predicate(frame):
                return count

    def close(self) -> None:
        """Drop the connection."""
        self.sock.close()

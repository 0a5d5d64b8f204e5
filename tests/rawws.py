"""A raw WebSocket client for frames no well-behaved library sends (invalid UTF-8 text).

trio-websocket (through wsproto) only sends valid UTF-8 in text frames, so the hostile-input
tests speak the framing themselves over a real socket: an upgrade request, one masked frame,
and the close frame (or the lack of one) that comes back.
"""

from __future__ import annotations

import base64
import os
import struct

import trio

from tests.harness import Daemon


async def open_raw(daemon: Daemon, path: str) -> trio.SocketStream:
    """A TCP connection to the daemon upgraded to a WebSocket on ``path``."""
    port = int(daemon.base_url.rsplit(":", 1)[1])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await stream.send_all(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await stream.receive_some(4096)
        assert chunk, "connection closed during the upgrade"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return stream


def frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        header = bytes([0x80 | opcode, 0x80 | size])
    elif size < 65536:
        header = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", size)
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", size)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


async def close_code_after(stream: trio.SocketStream, data: bytes, timeout: float = 10) -> int:
    """Send ``data``, then read frames until a close frame: its code (1006 if none came)."""
    await stream.send_all(data)
    buffer = b""
    with trio.fail_after(timeout):
        while True:
            while len(buffer) >= 2:
                size = buffer[1] & 0x7F
                offset = 2
                if size == 126:
                    size, offset = struct.unpack("!H", buffer[2:4])[0], 4
                elif size == 127:
                    size, offset = struct.unpack("!Q", buffer[2:10])[0], 10
                if len(buffer) < offset + size:
                    break
                opcode, payload = buffer[0] & 0x0F, buffer[offset : offset + size]
                buffer = buffer[offset + size :]
                if opcode == 0x8:
                    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                return 1006
            if not chunk:
                return 1006
            buffer += chunk

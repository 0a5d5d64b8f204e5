"""A small async WebSocket client over a raw trio socket, for soaks and fuzzing.

Why not trio-websocket: a soak disconnects thousands of times, and the fuzzer sends frames
no library sends. trio-websocket's close handshake waits (up to its disconnect timeout) for
its background reader, which dominates a soak's run time, and it cannot send a binary frame
split into fragments, a bad opcode or invalid UTF-8. This client sends exactly the bytes it
is given; it reads unfragmented server frames (what Argus sends). 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import os
import struct

import trio


class WsClosed(Exception):
    """The server closed (``code`` from its close frame; 1006 when none came)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"closed with {code} {reason}")
        self.code = code
        self.reason = reason


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One masked client frame."""
    mask = os.urandom(4)
    size = len(payload)
    first = (0x80 if fin else 0) | opcode
    if size < 126:
        header = bytes([first, 0x80 | size])
    elif size < 65536:
        header = bytes([first, 0x80 | 126]) + struct.pack("!H", size)
    else:
        header = bytes([first, 0x80 | 127]) + struct.pack("!Q", size)
    if size > 4096:  # masking byte by byte is slow; a 4-byte key repeats every 4 bytes
        key = int.from_bytes(mask * ((size + 3) // 4), "big") >> (8 * ((-size) % 4))
        masked = (int.from_bytes(payload, "big") ^ key).to_bytes(size, "big")
    else:
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


class RawWs:
    """One WebSocket connection: send any frame, read text frames, close or abort."""

    def __init__(self, stream: trio.SocketStream, rest: bytes) -> None:
        self.stream = stream
        self.buf = bytearray(rest)

    @classmethod
    async def connect(cls, port: int, target: str, headers: dict[str, str] | None = None) -> RawWs:
        """Upgrade ``target`` (path and query); raises WsClosed(status) if refused."""
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        request = (
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
        await stream.send_all(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await stream.receive_some(65536)
            if not chunk:
                await stream.aclose()
                raise WsClosed(1006, "closed during the upgrade")
            head += chunk
        status, _, rest = head.partition(b"\r\n\r\n")
        line = status.split(b"\r\n", 1)[0]
        if not line.startswith(b"HTTP/1.1 101"):
            await stream.aclose()
            raise WsClosed(int(line.split()[1]) if len(line.split()) > 1 else 0, line.decode())
        return cls(stream, rest)

    async def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (frames built with ``frame``)."""
        await self.stream.send_all(data)

    async def send_text(self, text: str) -> None:
        """One text frame."""
        await self.send_raw(frame(0x1, text.encode("utf-8", "surrogatepass")))

    async def recv(self) -> tuple[int, bytes]:
        """The next data frame as (opcode, payload); raises WsClosed on a close frame."""
        while True:
            buf = self.buf
            if len(buf) >= 2:
                opcode, size, offset = buf[0] & 0x0F, buf[1] & 0x7F, 2
                if size == 126 and len(buf) >= 4:
                    size, offset = struct.unpack_from("!H", buf, 2)[0], 4
                elif size == 127 and len(buf) >= 10:
                    size, offset = struct.unpack_from("!Q", buf, 2)[0], 10
                if (buf[1] & 0x7F) < 126 or offset > 2:
                    if len(buf) >= offset + size:
                        payload = bytes(buf[offset : offset + size])
                        del buf[: offset + size]
                        if opcode == 0x8:
                            code = (
                                struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                            )
                            raise WsClosed(code, payload[2:].decode("utf-8", "replace"))
                        if opcode in (0x9, 0xA):
                            continue
                        return opcode, payload
            try:
                chunk = await self.stream.receive_some(1 << 20)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                chunk = b""
            if not chunk:
                raise WsClosed(1006, "connection lost")
            self.buf += chunk

    async def recv_text(self) -> str:
        """The next text frame, decoded."""
        _opcode, payload = await self.recv()
        return payload.decode()

    async def close(self, code: int = 1000, timeout: float = 2.0) -> int:
        """Send a close frame and wait (bounded) for the server's; returns its code."""
        try:
            await self.send_raw(frame(0x8, struct.pack("!H", code)))
            with trio.move_on_after(timeout):
                while True:
                    await self.recv()
        except WsClosed as exc:
            return exc.code
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return 1006
        finally:
            await self.abort()
        return 1006

    async def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        await self.stream.aclose()


def port_of(daemon: object) -> int:
    """The TCP port of a running test daemon (``argus.testing.Daemon``)."""
    return int(daemon.base_url.rsplit(":", 1)[1])  # type: ignore[attr-defined]

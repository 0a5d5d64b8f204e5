"""/ws on the wsproto fast path (web/fastws.py) keeps every rule hypercorn's stack had.

A real daemon and a raw socket client (so frames hypercorn-era clients never send, such as
invalid UTF-8, can be sent): Origin refused with HTTP 403 before the upgrade, the token
checked, 1009 for a message over the limit, 1007 for invalid UTF-8, pings answered, a
fragmented message reassembled, and plain HTTP on the same port untouched (also when its
bytes arrive in pieces). With ``ARGUS_WS_FAST_PATH=0`` hypercorn serves /ws as before.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct

import trio

from tests.harness import connect

TOKEN = "fast-path-token"


class RawWs:
    """A blocking WebSocket client that can send any frame bytes."""

    def __init__(self, port: int, path: str = "/ws", headers: str = "") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n{headers}\r\n"
            ).encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "closed during the handshake"
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.status = int(head.split(b" ", 2)[1])

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        n = len(payload)
        first = (0x80 if fin else 0) | opcode
        if n < 126:
            header = struct.pack("!BB", first, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", first, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", first, 0x80 | 127, n)
        self.sock.sendall(header + b"\0\0\0\0" + payload)

    def recv_frame(self) -> tuple[int, bytes]:
        while True:
            if len(self.buf) >= 2:
                n = self.buf[1] & 0x7F
                start = 2
                if n == 126 and len(self.buf) >= 4:
                    n, start = struct.unpack_from("!H", self.buf, 2)[0], 4
                elif n == 127 and len(self.buf) >= 10:
                    n, start = struct.unpack_from("!Q", self.buf, 2)[0], 10
                if n < 126 or start > 2:
                    if len(self.buf) >= start + n:
                        opcode = self.buf[0] & 0x0F
                        payload = self.buf[start : start + n]
                        self.buf = self.buf[start + n :]
                        return opcode, payload
            chunk = self.sock.recv(65536)
            assert chunk, "connection dropped without a close frame"
            self.buf += chunk

    def close_code(self) -> int:
        """Read until the close frame; its code."""
        while True:
            opcode, payload = self.recv_frame()
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0]

    def text(self) -> dict:
        while True:
            opcode, payload = self.recv_frame()
            if opcode == 0x1:
                return json.loads(payload)


def port_of(daemon) -> int:
    return int(daemon.base_url.rsplit(":", 1)[1])


async def test_fast_path_keeps_the_rules(daemon_factory) -> None:
    env = {"ARGUS_TOKEN": TOKEN, "ARGUS_WS_MAX_MESSAGE_BYTES": "4096"}
    with trio.fail_after(60):
        async with daemon_factory(**env) as daemon:
            port = port_of(daemon)
            auth = f"Authorization: Bearer {TOKEN}\r\n"

            def check() -> None:
                # A foreign Origin: refused before the upgrade.
                evil = RawWs(port, headers=auth + "Origin: https://evil.example\r\n")
                assert evil.status == 403
                # No token: accepted, then closed with 1008 Unauthorized.
                anonymous = RawWs(port)
                assert anonymous.status == 101 and anonymous.close_code() == 1008
                # A message over ARGUS_WS_MAX_MESSAGE_BYTES: 1009.
                big = RawWs(port, headers=auth)
                assert big.text()["method"] == "argus/session"
                big.send_frame(0x1, b"x" * 5000)
                assert big.close_code() == 1009
                # Invalid UTF-8 in a text frame: 1007, not a dropped connection.
                bad = RawWs(port, headers=auth)
                bad.text()
                bad.send_frame(0x1, b'{"id":1,"method":"\xff"}')
                assert bad.close_code() == 1007
                # A ping is answered; a fragmented message is reassembled and answered.
                ok = RawWs(port, headers=auth)
                ok.text()
                ok.send_frame(0x9, b"hi")
                assert ok.recv_frame() == (0xA, b"hi")
                ok.send_frame(0x1, b'{"id":7,"method":"argus', fin=False)
                ok.send_frame(0x0, b'/nope"}')
                reply = ok.text()
                assert reply["id"] == 7 and reply["error"]["code"] == -32601
                # A close from the client is answered with a close.
                ok.send_frame(0x8, struct.pack("!H", 1000))
                assert ok.close_code() == 1000
                # Plain HTTP on the same port, its request arriving in pieces.
                http = socket.create_connection(("127.0.0.1", port), timeout=20)
                http.sendall(b"GE")
                http.sendall(b"T /healthz HTTP/1.1\r\nHost: x\r\n")
                http.sendall(b"\r\n")
                data = b""
                while b'{"ok":true}' not in data:
                    chunk = http.recv(65536)
                    assert chunk
                    data += chunk
                assert data.startswith(b"HTTP/1.1 200")

            await trio.to_thread.run_sync(check)


async def test_hypercorn_path_still_serves_ws(daemon_factory) -> None:
    with trio.fail_after(60):
        async with daemon_factory(ARGUS_WS_FAST_PATH="0") as daemon:
            async with connect(daemon) as client:
                assert client.session["created"]
                await client.handshake()

"""WebSocket connections served on wsproto directly, on hypercorn's port (issue 14).

Why: a request's round trip through hypercorn's WebSocket stack (h11 protocol wrapper,
``WSStream``, the app in a second task fed through a queue) cost about 265 µs on the
benchmark machine for a bare echo, against about 75 µs for a plain trio TCP echo; idle,
each such connection also holds two tasks, a queue and hypercorn's per-stream state. So a
connection whose *first* request is a WebSocket upgrade is taken over here: the upgrade is
parsed with h11 and wsproto (the libraries hypercorn uses), and the very same ASGI app
(``ArgusAsgi``, so every surface keeps ``web/accept.py``'s Origin and token rules) runs in
the connection's own task, with ``receive`` reading the socket inline and ``send`` writing
it directly. Everything else (HTTP, keep-alive, a later upgrade on a keep-alive
connection) goes to hypercorn unchanged, the sniffed bytes put back in front of its stream.

Kept from hypercorn's behaviour (and the client guide): a close before accept is an HTTP
403; a message over ``websocket_max_message_size`` closes with 1009; a frame wsproto
refuses closes with its code (1007 invalid UTF-8, 1002 protocol error) instead of a
dropped connection; pings are answered; a write that makes no progress for
``argus_send_stall_timeout_s`` aborts the connection (as ``stallguard`` does for hypercorn).
Not offered: permessage-deflate (a compressor pair per connection costs far more memory
than an idle Argus client; the RFC lets a server decline it).
"""

from __future__ import annotations

import logging
from typing import Any

import h11
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from .stallguard import SEND_STALL_TIMEOUT_S, GuardedTCPServer

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024  # an upgrade request's head larger than this goes to hypercorn
SNIFF_TIMEOUT_S = 10.0  # for the rest of a head that started like an upgrade
PEER_CLOSE_WAIT_S = 5.0  # after our close frame, for the peer's (then the socket closes)
READ_BYTES = 64 * 1024


class PrefixedStream(trio.abc.HalfCloseableStream):
    """A socket stream whose first ``receive_some`` returns bytes already read from it."""

    def __init__(self, stream: trio.SocketStream, prefix: bytes) -> None:
        self.stream = stream
        self.socket = stream.socket  # hypercorn reads the peer address from it
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """The sniffed bytes first, then the socket's."""
        if self._prefix:
            data, self._prefix = self._prefix, b""
            await trio.lowlevel.checkpoint()
            return data
        return await self.stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Write to the socket."""
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """As the socket."""
        await self.stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        """As the socket."""
        await self.stream.send_eof()

    async def aclose(self) -> None:
        """Close the socket."""
        await self.stream.aclose()


async def sniff(stream: trio.SocketStream) -> tuple[bytes, int]:
    """The first bytes of a connection, and where an upgrade request's head ends (or -1).

    Returns at once unless the bytes start like ``GET``; then reads until the head is
    complete, ``MAX_HEAD_BYTES`` or ``SNIFF_TIMEOUT_S``, whichever comes first.
    """
    data = b""
    with trio.move_on_after(SNIFF_TIMEOUT_S):
        while True:
            chunk = await stream.receive_some(READ_BYTES)
            if not chunk:
                break
            data += chunk
            if not data.startswith(b"GET "[: len(data)]):
                break
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                return data, end + 4
            if len(data) > MAX_HEAD_BYTES:
                break
    return data, -1


Headers = list[tuple[bytes, bytes]]


def parse_upgrade(head: bytes) -> tuple[WSConnection, Request, Headers] | None:
    """A server-side wsproto connection for a valid WebSocket upgrade head (with the
    request and its headers, names lower-cased), else None."""
    parser = h11.Connection(h11.SERVER)
    parser.receive_data(head)
    try:
        event = parser.next_event()
    except h11.RemoteProtocolError:
        return None
    if not isinstance(event, h11.Request) or event.method != b"GET":
        return None
    upgrade = dict(event.headers).get(b"upgrade", b"")
    if upgrade.lower() != b"websocket":
        return None
    ws = WSConnection(ConnectionType.SERVER)
    try:
        ws.initiate_upgrade_connection(event.headers, event.target)
        request = next(ws.events())
    except (RemoteProtocolError, StopIteration):
        return None
    if not isinstance(request, Request):
        return None
    return ws, request, list(event.headers)


class WsAsgiConnection:
    """One WebSocket connection as an ASGI ``receive``/``send`` pair, over wsproto.

    ``receive`` is called by one task (the handler's); ``send`` by any (the subscriber's
    sender, the handler's close), one write at a time under a lock.
    """

    def __init__(
        self,
        stream: trio.SocketStream,
        ws: WSConnection,
        rest: bytes,
        max_message: int,
        stall_timeout: float,
    ) -> None:
        self.stream = stream
        self.ws: WSConnection | Connection = ws
        self._unread = rest
        self.max_message = max_message
        self.stall_timeout = stall_timeout
        self._lock = trio.Lock()
        self._connect_sent = False
        self.accepted = False
        self.responded = False  # accepted or rejected
        self.gone = False  # the peer closed, or the connection broke
        self._parts: list[str | bytes] = []
        self._size = 0
        # The 101 response waits here for the first frame (one write instead of two, a
        # system call being most of a new connection's cost); it is flushed before any
        # read, so a peer that must speak first is never kept waiting for it.
        self._out = b""

    # -- receive ------------------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        """The next ASGI event: connect, then each whole message, then disconnect."""
        if not self._connect_sent:
            self._connect_sent = True
            return {"type": "websocket.connect"}
        while True:
            for event in self.ws.events():
                message = await self._on_event(event)
                if message is not None:
                    return message
            if self.gone:
                return {"type": "websocket.disconnect", "code": CloseReason.ABNORMAL_CLOSURE}
            data, self._unread = self._unread, b""
            if not data:
                if self._out:
                    try:
                        await self._write(b"")
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        self.gone = True
                        continue
                try:
                    data = await self.stream.receive_some(READ_BYTES)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
            if not data:
                self.gone = True
                continue
            self.ws.receive_data(data)

    async def _on_event(self, event: Any) -> dict[str, Any] | None:
        if isinstance(event, Message):
            self._parts.append(event.data)
            self._size += len(event.data)
            if self._size > self.max_message:
                self._parts, self._size = [], 0
                await self._close_with(CloseConnection(code=CloseReason.MESSAGE_TOO_BIG))
                return {"type": "websocket.disconnect", "code": CloseReason.MESSAGE_TOO_BIG}
            if not event.message_finished:
                return None
            parts, self._parts, self._size = self._parts, [], 0
            if isinstance(event, TextMessage):
                text = parts[0] if len(parts) == 1 else "".join(parts)  # type: ignore[arg-type]
                return {"type": "websocket.receive", "text": text}
            assert isinstance(event, BytesMessage)
            return {"type": "websocket.receive", "bytes": b"".join(parts)}  # type: ignore[arg-type]
        if isinstance(event, Ping):
            await self._write_event(event.response())
            return None
        if isinstance(event, CloseConnection):
            if self.ws.state is ConnectionState.REMOTE_CLOSING:
                await self._write_event(event.response())
            elif self.ws.state is ConnectionState.OPEN:
                # wsproto refused the peer's frame (1007 invalid UTF-8, 1002 protocol
                # error): say so in a close frame instead of dropping the connection.
                await self._close_with(event)
            self.gone = True
            return {"type": "websocket.disconnect", "code": event.code}
        return None  # pongs

    async def _close_with(self, event: CloseConnection) -> None:
        await self._write_event(event)
        self.gone = True

    # -- send ---------------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        """Carry out one ASGI send event."""
        kind = message["type"]
        if kind == "websocket.send":
            if self.gone or self.ws.state is not ConnectionState.OPEN:
                raise trio.ClosedResourceError("websocket is closed")
            text = message.get("text")
            if text is not None:
                await self._write(self.ws.send(TextMessage(data=text)))
            else:
                await self._write(self.ws.send(BytesMessage(data=message.get("bytes") or b"")))
        elif kind == "websocket.accept":
            self.accepted = self.responded = True
            # The console asks for ``argus.v1`` (its token rides as ``bearer.<token>``);
            # the answer names the chosen subprotocol only, never the token.
            data = self.ws.send(AcceptConnection(subprotocol=message.get("subprotocol")))
            # From here on only the frame protocol is needed: drop the handshake (and its
            # h11 connection), about 2 KiB an idle client would otherwise keep.
            if isinstance(self.ws, WSConnection) and self.ws.connection is not None:
                self.ws = self.ws.connection
            self._out = data  # sent with the first frame, or before the first read
        elif kind == "websocket.close":
            if not self.responded:
                self.responded = True  # refused before the upgrade: HTTP 403, as hypercorn
                await self._write(self.ws.send(RejectConnection(status_code=403)))
                self.gone = True
            elif self.ws.state is ConnectionState.OPEN:
                code = message.get("code", CloseReason.NORMAL_CLOSURE)
                await self._write_event(CloseConnection(code=code, reason=message.get("reason")))

    async def _write_event(self, event: Any) -> None:
        try:
            data = self.ws.send(event)
        except LocalProtocolError:
            return  # the connection is past the point where this could be sent
        try:
            await self._write(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.gone = True

    async def _write(self, data: bytes) -> None:
        """Write under the lock, shielded (no half frame), within the stall deadline.

        A cancellation point before the write (without a scheduling pass): a sender that
        was cut off stops here even while the socket still takes everything at once.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            await self._lock.acquire()
        if self._out:
            data, self._out = self._out + data, b""
        if not data:
            self._lock.release()
            return
        try:
            # Deadline given to the constructor: setting it afterwards costs a context
            # manager inside trio, on every frame.
            deadline = trio.current_time() + self.stall_timeout
            with trio.CancelScope(shield=True, deadline=deadline) as scope:
                await self.stream.send_all(data)
        finally:
            self._lock.release()
        if scope.cancelled_caught:
            log.warning(
                "peer stopped reading for %.0f s; aborting its connection", self.stall_timeout
            )
            self.gone = True
            await trio.aclose_forcefully(self.stream)
            raise trio.BrokenResourceError("peer stopped reading")

    async def finish(self) -> None:
        """After the app: wait (bounded) for the peer's close frame, then close the socket."""
        try:
            if not self.responded:
                await self._write(self.ws.send(RejectConnection(status_code=500)))
            elif self._out:
                await self._write(b"")
            elif not self.gone and self.ws.state is ConnectionState.LOCAL_CLOSING:
                with trio.move_on_after(PEER_CLOSE_WAIT_S):
                    while not self.gone:
                        event = await self.receive()
                        if event["type"] == "websocket.disconnect":
                            break
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            await trio.aclose_forcefully(self.stream)


def asgi_scope(request: Request, headers: Headers, stream: trio.SocketStream) -> dict[str, Any]:
    """The ASGI ``websocket`` scope hypercorn would build for this upgrade."""
    path, _, query = request.target.partition("?")
    try:
        client = stream.socket.getpeername()[:2]
        server = stream.socket.getsockname()[:2]
    except OSError:
        client = server = None
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode("latin-1", "replace"),
        "query_string": query.encode("latin-1", "replace"),
        "root_path": "",
        "headers": headers,
        "client": client,
        "server": server,
        "subprotocols": list(request.subprotocols),
        "extensions": {},
    }


class FastWsTCPServer(GuardedTCPServer):
    """hypercorn's (guarded) TCPServer, but a first-request WebSocket upgrade is ours."""

    def __init__(self, app: Any, config: Any, context: Any, state: Any, stream: Any) -> None:
        # hypercorn's per-connection lock and idle task are made only for its own path.
        self.app, self.config, self.context, self.state = app, config, context, state
        self.stream = stream

    def _init_hypercorn(self) -> None:
        super().__init__(self.app, self.config, self.context, self.state, self.stream)

    async def run(self) -> None:
        """Sniff the first request; serve an upgrade here, anything else through hypercorn."""
        stream = self.stream
        if not isinstance(stream, trio.SocketStream):  # TLS: hypercorn's own path
            self._init_hypercorn()
            await super().run()
            return
        try:
            data, end = await sniff(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await trio.aclose_forcefully(stream)
            return
        upgrade = parse_upgrade(data[:end]) if end > 0 else None
        if upgrade is None:
            self.stream = PrefixedStream(stream, data)  # type: ignore[assignment]
            self._init_hypercorn()
            await super().run()
            return
        ws, request, headers = upgrade
        connection = WsAsgiConnection(
            stream,
            ws,
            data[end:],
            self.config.websocket_max_message_size,
            getattr(self.config, "argus_send_stall_timeout_s", SEND_STALL_TIMEOUT_S),
        )
        scope = asgi_scope(request, headers, stream)
        del upgrade, ws, request, headers, data  # the connection keeps what it needs
        try:
            # hypercorn's app wrapper, as hypercorn calls it (no sync spawn: ASGI only).
            await self.app(scope, connection.receive, connection.send, None, None)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(PEER_CLOSE_WAIT_S + 1):
                    await connection.finish()


def install() -> None:
    """Make ``hypercorn.trio.serve`` use ``FastWsTCPServer`` (with ``stallguard``'s checks)."""
    from hypercorn.trio import run as hypercorn_run

    from . import stallguard

    stallguard.install()  # checks the hypercorn version
    hypercorn_run.TCPServer = FastWsTCPServer  # type: ignore[misc]

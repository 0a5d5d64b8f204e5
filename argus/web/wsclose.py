"""Close frames for WebSocket frames wsproto refuses (hypercorn 0.18.0).

Why: when a client sends a text frame that is not valid UTF-8 (or breaks the framing
rules), wsproto reports ``CloseConnection(1007)`` (or 1002), generated locally. hypercorn's
``WSStream._handle_events`` only answers a close the *peer* started, so it drops the TCP
connection without any close frame: the client sees 1006, which the client guide tells it
to treat as a network failure and reconnect, and a client that keeps sending the same
frame loops forever. This patch sends the close frame with wsproto's code first, on every
WebSocket surface (``/ws`` and ``/nodes/ws``), then ends the stream as upstream does; the
ASGI handler gets ``websocket.disconnect`` as before. Tied to hypercorn 0.18.0 like
``stallguard`` (which checks the version); a candidate for upstreaming.
"""

from __future__ import annotations

from hypercorn.protocol.events import StreamClosed
from hypercorn.protocol.ws_stream import FrameTooLargeError, WSStream
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Message, Ping
from wsproto.frame_protocol import CloseReason

_original = WSStream._handle_events


async def _handle_events(self: WSStream) -> None:
    """hypercorn's event loop for one WebSocket stream, answering locally made closes."""
    for event in self.connection.events():
        if isinstance(event, Message):
            try:
                self.buffer.extend(event)
            except FrameTooLargeError:
                await self._send_wsproto_event(CloseConnection(code=CloseReason.MESSAGE_TOO_BIG))
                break
            if event.message_finished:
                await self.app_put(self.buffer.to_message())
                self.buffer.clear()
        elif isinstance(event, Ping):
            await self._send_wsproto_event(event.response())
        elif isinstance(event, CloseConnection):
            if self.connection.state == ConnectionState.REMOTE_CLOSING:
                await self._send_wsproto_event(event.response())
            elif self.connection.state == ConnectionState.OPEN:
                # wsproto refused the peer's frame (1007 invalid UTF-8, 1002 protocol
                # error): say so in a close frame instead of dropping the connection.
                await self._send_wsproto_event(event)
            await self.send(StreamClosed(stream_id=self.stream_id))


def install() -> None:
    """Patch hypercorn's ``WSStream`` (idempotent; ``stallguard.install`` checks the version)."""
    WSStream._handle_events = _handle_events  # type: ignore[method-assign]


def uninstall() -> None:
    """Restore hypercorn's own event loop."""
    WSStream._handle_events = _original  # type: ignore[method-assign]

"""A write-stall timeout for hypercorn's trio worker (hypercorn 0.18.0).

Why: hypercorn's trio ``TCPServer.protocol_send`` writes every frame with a *shielded*
``send_all``. A peer that stops reading (a laptop that went to sleep, a stuck browser tab)
fills the socket buffers and that write then waits forever: the connection, its task and
whatever awaited the send can never be cancelled. Argus cuts such clients off (close 1013)
so the session is never slowed down, but without this guard their connections would leak.

``GuardedTCPServer`` keeps the shield (a frame is never cut in half by an unrelated
cancellation) but gives each write a deadline, ``SEND_STALL_TIMEOUT_S`` (or the
``argus_send_stall_timeout_s`` attribute set on the hypercorn ``Config``). A write that
makes no progress for that long aborts the connection, like nginx's ``send_timeout``.
The same class closes a connection under a shield (see ``protocol_send``), so a close
asked for by a task that is being cancelled still happens. It is small, tied to hypercorn
0.18.0 (``install`` refuses other versions), and a candidate for upstreaming to hypercorn
as a config option.

The alternative the issue describes, a per-connection writer task that joins queued frames
into one ``send_all``, raises frames per second; Argus meets its throughput target without
it (see bench/), and it costs a task per idle connection, so it is not adopted here.
"""

from __future__ import annotations

import logging
from importlib.metadata import version

import trio
from hypercorn.events import Closed, Event, RawData
from hypercorn.trio import run as hypercorn_run
from hypercorn.trio.tcp_server import TCPServer

log = logging.getLogger(__name__)

SUPPORTED_HYPERCORN = "0.18.0"
SEND_STALL_TIMEOUT_S = 30.0

_original = hypercorn_run.TCPServer


class GuardedTCPServer(TCPServer):
    """hypercorn's trio TCPServer whose writes give up after a stall deadline."""

    async def protocol_send(self, event: Event) -> None:
        """Write RawData under a shield with a deadline; close under a shield too."""
        if isinstance(event, Closed):
            # Upstream closes from whichever task asked, and that is often the app's task
            # after its response, already being cancelled: the close then stops at its first
            # checkpoint and the socket stays open. A 413 answered before its body was read
            # (``Connection: close``) left the client waiting forever on that connection.
            with trio.CancelScope(shield=True):
                await super().protocol_send(event)
            return
        if not isinstance(event, RawData):
            await super().protocol_send(event)
            return
        timeout = getattr(self.config, "argus_send_stall_timeout_s", SEND_STALL_TIMEOUT_S)
        async with self.send_lock:
            try:
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + timeout
                    await self.stream.send_all(event.data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self.protocol.handle(Closed())
                return
        if scope.cancelled_caught:
            log.warning("peer stopped reading for %.0f s; aborting its connection", timeout)
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.stream)
                await self.protocol.handle(Closed())


def install() -> None:
    """Make ``hypercorn.trio.serve`` use ``GuardedTCPServer`` (idempotent)."""
    found = version("hypercorn")
    if found != SUPPORTED_HYPERCORN:
        raise RuntimeError(
            f"argus.web.stallguard supports hypercorn {SUPPORTED_HYPERCORN}, found {found}"
        )
    hypercorn_run.TCPServer = GuardedTCPServer  # type: ignore[misc]


def uninstall() -> None:
    """Restore hypercorn's own TCPServer."""
    hypercorn_run.TCPServer = _original  # type: ignore[misc]

"""Per-runtime-process state: requests in flight, the handshake, pending server requests.

Everything here belongs to one runtime process and is thrown away when it exits: a new
process starts with a new handshake, no requests in flight and no pending approvals.
Request ids are rewritten (``protocol.requests.RequestMap``) to integers unique on the
runtime connection, in an epoch of their own per bridge connection (an earlier gateway's
ids never repeat), so that several clients and the daemon itself can share one connection;
the client's own id is restored on the response.
This module adds what is not sans-IO: the trio event an internal call waits on, and the
one write path to the runtime, under a lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

from ..protocol.handshake import Handshake
from ..protocol.requests import RequestMap
from ..provision.base import NumberedRuntime, Runtime


class InternalCall:
    """A request made by the daemon itself; the reader fills in the outcome."""

    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.result: Any = None
        self.error: dict[str, Any] | None = None

    def resolve(self, result: Any = None, error: dict[str, Any] | None = None) -> None:
        """Record the outcome once."""
        if not self.done.is_set():
            self.result = result
            self.error = error
            self.done.set()


#: Who waits for a runtime answer: a client (its subscriber key) or the daemon's own call.
Waiter = int | InternalCall


@dataclass(slots=True)
class PendingServerRequest:
    """A runtime→client request (an approval) that nobody answered yet."""

    seq: int
    text: str
    thread_id: str | None
    turn_id: str | None
    delivered_to: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class HandshakeWaiter:
    """Who waits for the in-flight initialize (a client or an internal call), and its id."""

    waiter: Waiter
    original_id: Any


class RuntimeConnection:
    """State of the session's current runtime process, and the only way to write to it."""

    def __init__(self, runtime: Runtime, max_inflight: int) -> None:
        self.runtime = runtime
        self._write_lock = trio.Lock()
        self.handshake: Handshake[HandshakeWaiter] = Handshake()
        # A bridged runtime gets its id epoch in ``numbered.adopt``.
        self.requests: RequestMap[Waiter] = RequestMap(max_inflight)
        self.pending_server: dict[str, PendingServerRequest] = {}
        self.turn_owners: dict[str, int] = {}
        self.closed = False
        # A bridged runtime numbers its lines: every line then takes exactly one replay
        # entry (placeholders for lines not broadcast) so session seq = base + number.
        self.numbered: NumberedRuntime | None = (
            runtime if isinstance(runtime, NumberedRuntime) else None
        )

    async def write(self, data: bytes) -> bool:
        """Write whole lines to the runtime; False if it is gone.

        Callers write directly (no writer task: one task switch less on every request's
        round trip), one at a time under a lock. The write is shielded so that a client
        disconnecting mid-write can never leave half a line in the runtime's stdin; a
        write stuck on a runtime that stopped reading is released when the runtime is
        stopped, which closes the stream.
        """
        if self.closed:
            return False
        try:
            self._write_lock.acquire_nowait()
        except trio.WouldBlock:
            await self._write_lock.acquire()
        try:
            if self.closed:
                return False
            with trio.CancelScope(shield=True):
                await self.runtime.send_all(data)
            return True
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        finally:
            self._write_lock.release()

    def forget_subscriber(self, key: int) -> None:
        """A client left: its in-flight responses will be dropped, its turns have no owner."""
        # Late responses to its requests are dropped (the handshake's is still read).
        self.requests.forget(lambda waiter: waiter == key)
        for thread_id in [t for t, k in self.turn_owners.items() if k == key]:
            del self.turn_owners[thread_id]
        self.handshake.forget_waiter(lambda w: w.waiter == key)

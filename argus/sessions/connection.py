"""Per-runtime-process state: id rewriting, the handshake, pending server requests.

Everything here belongs to one runtime process and is thrown away when it exits: a new
process starts with a new handshake, no requests in flight and no pending approvals.
Request ids are rewritten to integers unique on the runtime connection, so that several
clients and the daemon itself can share one connection; the client's own id, of whatever
JSON type, is restored on the response.

Why an epoch in every id: a bridged runtime outlives the gateway, and the bridge replays
(and keeps forwarding) the old gateway's responses to the next one. An upstream id is
``epoch * 2**32 + n``: the epoch is the bridge's connection generation (one per gateway
connection to that runtime), ``n`` counts from 1_000_000_000 like the original. Ids of
an earlier connection therefore never match a request of this one, and are dropped. All
ids stay below 2**53 (exact in JSON doubles; codex takes any i64).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import trio

from ..protocol.handshake import Handshake
from ..provision.base import Runtime

FIRST_UPSTREAM_ID = 1_000_000_000
EPOCH_SPAN = 2**32  # ids per epoch; the counter wraps within it (skipping in-flight ids)
EPOCHS = 2**21  # EPOCHS * EPOCH_SPAN == 2**53


def bridged_epoch(generation: int | None) -> int:
    """The id epoch of a bridge connection: 1..EPOCHS-1 (0 is a plain child's).

    ``generation`` is the bridge's count of gateway connections; a bridge from before
    generations existed reports none, and a random epoch then makes a repeat unlikely
    (1 in 2**21) rather than impossible. Generations past 2**21 wrap: a response would
    have to outlive two million gateway connections to the same runtime to be misrouted.
    """
    if type(generation) is not int or generation < 1:
        return random.randrange(1, EPOCHS)
    return 1 + (generation - 1) % (EPOCHS - 1)


class UpstreamIds:
    """The request ids of one runtime connection: ``epoch * EPOCH_SPAN + n``."""

    __slots__ = ("_next", "base", "epoch")

    def __init__(self, epoch: int = 0) -> None:
        self.epoch = epoch
        self.base = epoch * EPOCH_SPAN
        self._next = FIRST_UPSTREAM_ID

    def next(self, inflight: dict[int, Any]) -> int:
        """An id of this epoch that no in-flight request uses (wraps after 2**32 - 1e9)."""
        while True:
            n = self._next
            self._next = n + 1 if n + 1 < EPOCH_SPAN else FIRST_UPSTREAM_ID
            upstream_id = self.base + n
            if upstream_id not in inflight:
                return upstream_id

    def owns(self, upstream_id: int) -> bool:
        """Whether ``upstream_id`` belongs to this epoch (else: an earlier connection's)."""
        return self.base <= upstream_id < self.base + EPOCH_SPAN


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


@dataclass(slots=True)
class Inflight:
    """A request forwarded to the runtime and not yet answered."""

    subscriber_key: int | None  # None: an internal call
    original_id: Any
    method: str
    call: InternalCall | None = None
    thread_id: str | None = None  # a client's turn/start: the lane it made busy


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
    """Who waits for the in-flight initialize: a client (key, id) or an internal call."""

    subscriber_key: int | None
    original_id: Any
    call: InternalCall | None = None


class RuntimeConnection:
    """State of the session's current runtime process, and the only way to write to it."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._write_lock = trio.Lock()
        self.handshake: Handshake[HandshakeWaiter] = Handshake()
        self.initialize_id: int | None = None
        self.inflight: dict[int, Inflight] = {}
        self.pending_server: dict[str, PendingServerRequest] = {}
        self.turn_owners: dict[str, int] = {}
        self.closed = False
        self.ids = UpstreamIds()  # a bridged runtime gets its epoch in ``numbered.adopt``
        # A bridged runtime numbers its lines: every line then takes exactly one replay
        # entry (placeholders for lines not broadcast) so session seq = base + number.
        self.numbered = bool(getattr(runtime, "numbered", False))

    def next_upstream_id(self) -> int:
        """A request id no request of this connection, or of an earlier one, used."""
        return self.ids.next(self.inflight)

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
        # Late responses to its requests then have an unknown id and are dropped.
        for upstream_id in [u for u, f in self.inflight.items() if f.subscriber_key == key]:
            if upstream_id == self.initialize_id:
                # The handshake still needs this answer; it just has nobody to deliver to.
                self.inflight[upstream_id].subscriber_key = None
            else:
                del self.inflight[upstream_id]
        for thread_id in [t for t, k in self.turn_owners.items() if k == key]:
            del self.turn_owners[thread_id]
        self.handshake.forget_waiter(lambda w: w.subscriber_key == key)

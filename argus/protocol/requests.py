"""Request-id rewriting, and knowing who waits for each answer (sans-IO).

Several clients and the daemon itself share one runtime connection, and each picks its own
request ids (of any JSON type, possibly the same ones). So every request forwarded to the
runtime gets an id of the gateway's (``UpstreamIds``: integers unique on that connection),
and this map remembers, per id, who waits for the answer and under which id of its own.
The answer is then handed to exactly that waiter with its id restored
(``messages.restore_id``); an answer nobody waits for any more is dropped.

Why an epoch in every id: a bridged runtime outlives the gateway, and the bridge replays
(and keeps forwarding) the old gateway's responses to the next one. An upstream id is
``epoch * 2**32 + n``: the epoch is the bridge's connection generation (one per gateway
connection to that runtime), ``n`` counts from 1_000_000_000 like the original. Ids of an
earlier connection therefore never match a request of this one, and are dropped. All ids
stay below 2**53 (exact in JSON doubles; codex takes any i64).

It holds no sockets and no locks: the session feeds it what happened and acts on what it
returns, so the rules are testable without a runtime.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

W = TypeVar("W")

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
    """The request ids of one runtime connection: ``epoch * EPOCH_SPAN + n``.

    ``start`` is where ``n`` begins (``FIRST_UPSTREAM_ID``, like the original).
    """

    __slots__ = ("_next", "base", "epoch")

    def __init__(self, epoch: int = 0, start: int = FIRST_UPSTREAM_ID) -> None:
        self.epoch = epoch
        self.base = epoch * EPOCH_SPAN
        self._next = start

    def next(self, inflight: Container[int]) -> int:
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


@dataclass(slots=True)
class Pending(Generic[W]):
    """A request forwarded to the runtime and not answered yet."""

    waiter: W | None  # who gets the answer; None: nobody any more (it is dropped)
    original_id: Any  # the waiter's own id, put back on the answer
    method: str
    thread_id: str | None = None  # a client's turn/start: the lane it made busy


class RequestMap(Generic[W]):
    """The requests in flight on one runtime connection, by the ids the runtime sees.

    Bounded: ``full`` says when ``limit`` requests wait (the caller refuses more). The one
    ``initialize`` in flight is marked, because its answer also settles the handshake and
    must be read even when the client that sent it has left.
    """

    __slots__ = ("_initialize_id", "_pending", "ids", "limit")

    def __init__(self, limit: int, ids: UpstreamIds | None = None) -> None:
        self.ids = ids if ids is not None else UpstreamIds()
        self.limit = limit
        self._pending: dict[int, Pending[W]] = {}
        self._initialize_id: int | None = None

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def full(self) -> bool:
        """Whether ``limit`` requests are in flight already."""
        return len(self._pending) >= self.limit

    def add(
        self,
        waiter: W | None,
        original_id: Any,
        method: str,
        *,
        thread_id: str | None = None,
        initialize: bool = False,
    ) -> int:
        """Remember a request; the id to send it to the runtime with."""
        upstream_id = self.ids.next(self._pending)
        self._pending[upstream_id] = Pending(waiter, original_id, method, thread_id)
        if initialize:
            self._initialize_id = upstream_id
        return upstream_id

    def answer(self, upstream_id: Any) -> tuple[Pending[W] | None, bool]:
        """The runtime answered ``upstream_id``: who waited (None: nobody), and whether it
        was the in-flight ``initialize``. The request is forgotten either way."""
        pending = self._pending.pop(upstream_id, None) if type(upstream_id) is int else None
        if pending is None:
            return None, False
        if upstream_id == self._initialize_id:
            self._initialize_id = None
            return pending, True
        return pending, False

    def from_earlier_connection(self, upstream_id: Any) -> bool:
        """Whether an unknown answer's id is of an earlier connection's epoch (a bridge
        replaying a previous gateway's responses) rather than simply unknown."""
        return type(upstream_id) is int and not self.ids.owns(upstream_id)

    def cancel(self, upstream_id: int) -> None:
        """Stop waiting for an answer (a caller gave up); a late answer is then dropped."""
        self._pending.pop(upstream_id, None)
        if upstream_id == self._initialize_id:
            self._initialize_id = None

    def forget(self, predicate: Callable[[W], bool]) -> None:
        """Waiters for which ``predicate`` holds left: their answers will be dropped.

        The in-flight ``initialize`` stays, without a waiter: the handshake still needs it.
        """
        for upstream_id, pending in list(self._pending.items()):
            if pending.waiter is None or not predicate(pending.waiter):
                continue
            if upstream_id == self._initialize_id:
                pending.waiter = None
            else:
                del self._pending[upstream_id]

    def drain(self) -> list[Pending[W]]:
        """The runtime is gone: every request still waiting, and the map emptied."""
        pending = list(self._pending.values())
        self._pending.clear()
        self._initialize_id = None
        return pending

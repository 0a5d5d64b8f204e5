"""The initialize/initialized state machine of one runtime connection.

A runtime accepts ``initialize`` once per process, but many clients and the daemon's own
automation share that process. The original tracked this with loose flags and three
separate code paths, which let a client ``initialize`` race the daemon's and get
"Already initialized", and left waiters hanging forever after a failed initialize. Here one
machine serves every caller:

``NEW`` --first initialize--> ``IN_FLIGHT`` --result--> ``READY``
                                    \\--error--> ``NEW`` (every waiter gets the error)

``initialized`` is forwarded exactly once per runtime process, whoever sends it first.
The machine is sans-IO: it tells the caller what to do and holds no sockets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar

W = TypeVar("W")


class HandshakeState(Enum):
    """Where the runtime connection is in its handshake."""

    NEW = "new"
    IN_FLIGHT = "in_flight"
    READY = "ready"


class Decision(Enum):
    """What the caller must do with an ``initialize`` it received."""

    FORWARD = "forward"  # send it to the runtime; it is now the in-flight one
    WAIT = "wait"  # another initialize is in flight; the waiter is queued
    REPLY_CACHED = "reply_cached"  # answer at once with ``Handshake.result``


@dataclass
class Handshake(Generic[W]):
    """Handshake bookkeeping for one runtime process; ``W`` identifies a waiting caller."""

    state: HandshakeState = HandshakeState.NEW
    result: Any = None
    initialized_sent: bool = False
    waiters: list[W] = field(default_factory=list)

    def on_initialize(self, waiter: W) -> Decision:
        """A caller wants to initialize. Queue it unless it can be answered or forwarded."""
        if self.state is HandshakeState.READY:
            return Decision.REPLY_CACHED
        if self.state is HandshakeState.IN_FLIGHT:
            self.waiters.append(waiter)
            return Decision.WAIT
        self.state = HandshakeState.IN_FLIGHT
        return Decision.FORWARD

    def on_result(self, result: Any) -> list[W]:
        """The in-flight initialize succeeded: cache it and release every waiter."""
        self.state = HandshakeState.READY
        self.result = result
        waiters, self.waiters = self.waiters, []
        return waiters

    def on_error(self) -> list[W]:
        """The in-flight initialize failed: waiters get the error; the next caller retries."""
        self.state = HandshakeState.NEW
        waiters, self.waiters = self.waiters, []
        return waiters

    def forget_waiter(self, predicate: Any) -> None:
        """Drop waiters for which ``predicate(waiter)`` is true (a client that left)."""
        self.waiters = [w for w in self.waiters if not predicate(w)]

    def prime(self, result: Any) -> None:
        """The runtime was initialized by an earlier connection (a bridge told us): READY."""
        self.state = HandshakeState.READY
        self.result = result
        self.initialized_sent = True

    def on_initialized(self) -> bool:
        """A caller sent ``initialized``; returns True if it must be forwarded (first time)."""
        if self.initialized_sent:
            return False
        self.initialized_sent = True
        return True

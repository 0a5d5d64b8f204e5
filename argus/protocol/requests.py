"""Request-id rewriting, and knowing who waits for each answer (sans-IO).

Several clients and the daemon itself share one runtime connection, and each picks its own
request ids (of any JSON type, possibly the same ones). So every request forwarded to the
runtime gets an id from the gateway (integers unique within it), and this map remembers,
per id, who waits for the answer and under which id of its own. The answer is then handed
to exactly that waiter with its id restored (``messages.restore_id``); an answer nobody
waits for any more is dropped.

It holds no sockets and no locks: the session feeds it what happened and acts on what it
returns, so the rules are testable without a runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

W = TypeVar("W")


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

    __slots__ = ("_initialize_id", "_next_id", "_pending", "limit")

    def __init__(self, next_id: Callable[[], int], limit: int) -> None:
        self._next_id = next_id
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
        upstream_id = self._next_id()
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

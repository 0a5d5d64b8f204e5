"""The per-session, byte-bounded log of sequenced broadcast messages.

Why a log rather than per-client queues: every message a session broadcasts is appended
once, and each attached client only keeps a cursor (the last sequence number it was sent).
Broadcasting is O(1) for the runtime reader no matter how many clients watch, a reconnecting
client resumes from any number still in the log (``?since=n``), and a client's "send queue"
is simply the span between its cursor and the head, so its size is known in bytes at no
cost. Overflow policy: the oldest entries are evicted once the log exceeds its byte budget;
a client that resumes from an evicted number is told so with ``argus/replay/gap``.

Directed entries (a bridged runtime's responses, kept so ``seq`` = the bridge's line
number; server requests) take a number but are no client's backlog: they count neither in
a cursor's lag nor as something to send, so a response for one client costs the others
nothing (issue 14). ``last_broadcast_seq`` and ``evicted_broadcast_seq`` let a cursor that
only directed entries separate from the head, or from the log's start, skip them at once.
"""

from __future__ import annotations

from typing import Any

# Rough per-entry bookkeeping cost (object, slots, list slot), counted against the budget so
# that a flood of tiny messages cannot exceed the memory bound by an order of magnitude.
ENTRY_OVERHEAD = 120


class Entry:
    """One sequenced message. ``directed`` entries (server requests) are not broadcast."""

    __slots__ = ("cost", "cum_before", "delta", "directed", "key", "seq", "text")

    def __init__(
        self,
        seq: int,
        text: str,
        cum_before: int,
        cost: int,
        key: tuple[Any, ...] | None,
        delta: str | None,
        directed: bool,
    ) -> None:
        self.seq = seq
        self.text = text
        self.cum_before = cum_before
        self.cost = cost
        self.key = key
        self.delta = delta
        self.directed = directed


class ReplayBuffer:
    """Sequenced messages ``first_seq..last_seq`` within ``max_bytes`` (at least one kept)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: list[Entry] = []
        self._start = 0
        self.first_seq = 1
        self.last_seq = 0
        # Broadcast bytes ever appended: a cursor's lag is a difference of two of these.
        self.total_bytes = 0
        self.retained_bytes = 0
        self.last_broadcast_seq = 0  # the newest entry that is not directed
        self.evicted_broadcast_seq = 0  # the newest evicted entry that was not directed

    def __len__(self) -> int:
        return len(self._entries) - self._start

    def append(
        self,
        text: str,
        key: tuple[Any, ...] | None = None,
        delta: str | None = None,
        directed: bool = False,
    ) -> Entry:
        """Append a message and give it the next sequence number."""
        cost = len(text) + ENTRY_OVERHEAD + (len(delta) if delta is not None else 0)
        self.last_seq += 1
        entry = Entry(self.last_seq, text, self.total_bytes, cost, key, delta, directed)
        self._entries.append(entry)
        if not directed:
            self.total_bytes += cost
            self.last_broadcast_seq = entry.seq
        self.retained_bytes += cost
        if self.retained_bytes > self.max_bytes:
            self._evict()
        return entry

    def _evict(self) -> None:
        entries = self._entries
        start = self._start
        end = len(entries) - 1  # never evict the newest entry
        while self.retained_bytes > self.max_bytes and start < end:
            evicted = entries[start]
            self.retained_bytes -= evicted.cost
            if not evicted.directed:
                self.evicted_broadcast_seq = evicted.seq
            entries[start] = None  # type: ignore[call-overload]  # release the text now
            start += 1
        self.first_seq = entries[start].seq
        if start > 1024 and start * 2 > len(entries):
            del entries[:start]
            start = 0
        self._start = start

    def restart_at(self, next_seq: int) -> None:
        """Drop everything and number the next entry ``next_seq`` (a bridge's numbering).

        Used when a gateway adopts a bridged runtime whose lines already carry numbers; a
        client resuming from before ``next_seq`` is told of the gap as usual.
        """
        self._entries = []
        self._start = 0
        self.retained_bytes = 0
        self.first_seq = next_seq
        self.last_seq = next_seq - 1
        self.last_broadcast_seq = self.evicted_broadcast_seq = next_seq - 1

    def get(self, seq: int) -> Entry | None:
        """The entry with number ``seq``, or None if evicted or not yet assigned."""
        if seq < self.first_seq or seq > self.last_seq:
            return None
        return self._entries[self._start + seq - self.first_seq]

    def bytes_after(self, seq: int) -> int | None:
        """Broadcast bytes appended after ``seq`` (a cursor's lag), or None if some of them
        were evicted (evicted directed entries lose nobody anything)."""
        if seq >= self.last_broadcast_seq:
            return 0
        entry = self.get(seq + 1)
        if entry is None:
            if self.lost_after(seq):
                return None
            entry = self._entries[self._start]  # only directed entries were evicted
        return self.total_bytes - entry.cum_before

    def lost_after(self, seq: int) -> bool:
        """Whether a broadcast entry after ``seq`` was evicted (a cursor fell out)."""
        return seq < self.evicted_broadcast_seq

    def statistics(self) -> dict[str, int]:
        """Counters for ``GET /sessions`` and benchmarks."""
        return {
            "firstSeq": self.first_seq,
            "lastSeq": self.last_seq,
            "entries": len(self),
            "bytes": self.retained_bytes,
        }

"""One attached client of a session and the task that sends to it.

A subscriber has a cursor into the session's replay log (the last broadcast sequence number
it was sent) and a small private queue for messages meant for it alone (responses, server
requests, errors). Each private message records the log position it follows, so a client
sees messages in exactly the order the runtime produced them.

The sender task is the only writer to the client's WebSocket. It never makes the runtime
reader wait: when a client falls behind, its backlog is just a longer span of the log, and
the session cuts it off (close 1013) once that span exceeds ARGUS_CLIENT_QUEUE_BYTES. While
a client lags, consecutive deltas of the same item are coalesced into one notification, so
a slow link gets fewer, larger frames and catches up; a client that keeps up is sent every
message one to one.

Work per client is only spent on clients that have something to receive (issue 14): a
subscriber is in its session's ``active`` set from the moment it is given something until
its sender has sent everything, and the session checks lag on that set only. A response for
one client, or a directed placeholder in the log, wakes nobody else; an idle client costs
nothing until the next broadcast (which it must be sent anyway).
"""

from __future__ import annotations

import collections
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

import trio

from ..protocol import codes, messages
from .replay import Entry

if TYPE_CHECKING:
    from .replay import ReplayBuffer

log = logging.getLogger(__name__)

# Entries examined per send round: bounds the work and the memory of one batch.
BATCH_ENTRIES = 1024
# An idle client keeps no sender task: after this long with nothing to send it exits,
# and the next message starts a new one (an idle connection then costs less memory).
IDLE_EXIT_S = 5.0
# A merged delta stops growing past this many characters, so coalescing never produces a
# frame larger than common client limits (trio-websocket's default is 1 MiB).
MAX_MERGED_CHARS = 256 * 1024

_keys = itertools.count(1)

SendText = Callable[[str], Awaitable[None]]


class Subscriber:
    """A client attached to a session: its cursor, private queue and close request."""

    # Slots: one of these exists per connected client, idle ones included.
    __slots__ = (
        "_active",
        "_nursery",
        "_running",
        "_scope",
        "_wake",
        "close_code",
        "close_reason",
        "coalesce",
        "cursor",
        "done",
        "drain_before_close",
        "key",
        "label",
        "on_done",
        "private",
        "private_bytes",
        "replay",
        "send_text",
        "sent_frames",
        "sent_messages",
        "with_seq",
    )

    def __init__(
        self,
        replay: ReplayBuffer,
        send_text: SendText,
        *,
        cursor: int,
        with_seq: bool,
        coalesce: bool,
        label: str = "",
        active: set[Subscriber] | None = None,
    ) -> None:
        self.key = next(_keys)
        # The session's set of subscribers with something to send (a private one if none).
        self._active: set[Subscriber] = active if active is not None else set()
        self.label = label
        self.replay = replay
        self.send_text = send_text
        self.cursor = cursor
        self.with_seq = with_seq
        self.coalesce = coalesce
        # Created on the first private message: an empty deque costs ~600 bytes, and most
        # idle clients never get one after their first answers.
        self.private: collections.deque[tuple[int, str]] | None = None
        self.private_bytes = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self.drain_before_close = False
        self.done = trio.Event()
        self.sent_frames = 0
        self.sent_messages = 0
        self._wake = trio.Event()
        self._scope: trio.CancelScope | None = None
        self._running = False
        # Where to restart the sender after it exited for being idle (None: never exit).
        self._nursery: trio.Nursery | None = None
        #: Called once the subscriber is closed (the connection handler stops reading).
        self.on_done: Callable[[], None] | None = None

    # -- called by the session (synchronously, never blocking) --------------------------

    def wake(self) -> None:
        """New data may be available; restarts the sender if it exited while idle."""
        if self.close_code is None:
            self._active.add(self)
        if not self._wake.is_set():
            self._wake.set()
        if not self._running and self.close_code is None and self._nursery is not None:
            self._spawn()

    def _spawn(self) -> None:
        assert self._nursery is not None
        self._running = True
        try:
            self._nursery.start_soon(self.serve)
        except RuntimeError:  # the session's nursery is closed: the session is gone
            self._running = False
            self.close_code = self.close_code or codes.CLOSE_GOING_AWAY
            self._finish()

    def _finish(self) -> None:
        self._active.discard(self)
        self.done.set()
        if self.on_done is not None:
            self.on_done()

    def has_pending(self) -> bool:
        """Anything left to send? (Directed entries in the log are nothing to send.)"""
        return bool(self.private) or self.cursor < self.replay.last_broadcast_seq

    def push(self, text: str, after_seq: int) -> None:
        """Queue a message for this client alone, after broadcast ``after_seq``."""
        if self.private is None:
            self.private = collections.deque()
        self.private.append((after_seq, text))
        self.private_bytes += len(text)
        self.wake()

    def backlog_bytes(self) -> int | None:
        """Bytes waiting for this client, or None if its cursor fell out of the log."""
        lag = self.replay.bytes_after(self.cursor)
        if lag is None:
            return None
        return lag + self.private_bytes

    def request_close(self, code: int, reason: str, *, drain: bool) -> None:
        """Ask the sender to stop and the connection to close with ``code``.

        With ``drain`` the sender first delivers everything queued (used when the runtime
        exits, so clients see ``argus/runtime/exited``); without it the sender stops now.
        """
        if self.close_code is not None and (drain or not self.drain_before_close):
            return  # already closing at least as urgently
        self.close_code = code
        self.close_reason = reason
        self.drain_before_close = drain
        if not self._running and self._nursery is not None:
            # No sender task right now (idle): drain through a new one, or close now.
            if drain and self.has_pending():
                self._spawn()
            else:
                self._finish()
            return
        if not drain and self._scope is not None:
            self._scope.cancel()
        self.wake()

    # -- the sender task --------------------------------------------------------------

    def start_in(self, nursery: trio.Nursery) -> None:
        """Run the sender in ``nursery`` (the session's) whenever there is something to send.

        A client with nothing to receive yet gets no task at all until the first message.
        """
        self._nursery = nursery
        if self.close_code is not None or self.has_pending() or self._wake.is_set():
            self._spawn()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send queued messages until closed (or idle for IDLE_EXIT_S, when restartable)."""
        self._running = True
        idle_exit = False
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                task_status.started()
                idle_exit = await self._send_loop()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            log.debug("subscriber %s: connection gone while sending", self.key)
            if self.close_code is None:
                self.close_code = codes.CLOSE_ABNORMAL
        except Exception:
            # Boundary: a bug while sending to one client ends that client's connection
            # only (it runs in the session's nursery, which must not see it).
            log.exception(
                "subscriber %s: internal error while sending; closing with 1011", self.key
            )
            self.close_code = codes.CLOSE_INTERNAL_ERROR
            self.close_reason = "Internal error"
        finally:
            self._running = False
            self._scope = None
            if not idle_exit:
                if self.close_code is None:
                    # Cancelled from outside: the session is being stopped.
                    self.close_code = codes.CLOSE_GOING_AWAY
                    self.close_reason = "Session stopped"
                self._finish()

    async def _send_loop(self) -> bool:
        """Returns True when exiting for being idle (the subscriber stays open)."""
        while True:
            await self._flush()
            if self.close_code is not None:
                return False
            if not self.has_pending():
                self._active.discard(self)  # caught up: no lag to check until woken
            if self._nursery is None:
                await self._wake.wait()
            else:
                with trio.move_on_after(IDLE_EXIT_S):
                    await self._wake.wait()
                if not self._wake.is_set() and not self.has_pending():
                    # Idle: free the task. No checkpoint from here to the task's end, so
                    # a wake() cannot slip in between; it will spawn a new sender.
                    self._running = False
                    return True
            self._wake = trio.Event()

    async def _flush(self) -> None:
        replay = self.replay
        while True:
            if self.close_code is not None and not self.drain_before_close:
                return
            limit = replay.last_seq
            private = self.private  # re-read: a push during a send may have created it
            if private:
                after, text = private[0]
                if after <= self.cursor:
                    private.popleft()
                    if not private:
                        self.private = None
                    self.private_bytes -= len(text)
                    await self._send(text)
                    continue
                limit = min(limit, after)
            if self.cursor < limit:
                if replay.last_broadcast_seq <= self.cursor:
                    self.cursor = limit  # only directed entries in between: nothing to send
                    continue
                await self._send_broadcast(limit)
                continue
            return

    async def _send(self, text: str) -> None:
        await self.send_text(text)
        self.sent_frames += 1

    async def _send_broadcast(self, limit: int) -> None:
        """Send entries ``cursor+1..limit`` (at most a batch), coalescing runs of deltas."""
        replay = self.replay
        start = self.cursor + 1
        if start < replay.first_seq and not replay.lost_after(self.cursor):
            start = replay.first_seq  # only directed entries were evicted: skip them
            self.cursor = start - 1
        if replay.get(start) is None:
            # Evicted under us: the session cuts such clients off; be safe regardless.
            self.request_close(
                codes.CLOSE_TRY_AGAIN_LATER,
                f"Client too slow; resume with since={self.cursor}",
                drain=False,
            )
            return
        end = min(limit, start + BATCH_ENTRIES - 1)
        batch = [replay.get(seq) for seq in range(start, end + 1)]
        i = 0
        n = len(batch)
        while i < n:
            if self.close_code is not None and not self.drain_before_close:
                return  # cut off mid-batch: the cursor stays at what was really sent
            entry = batch[i]
            assert entry is not None
            if entry.directed:
                self.cursor = entry.seq
                i += 1
                continue
            j = i + 1
            if self.coalesce and entry.key is not None:
                key = entry.key
                size = len(entry.delta or "")
                while j < n and batch[j].key == key and size < MAX_MERGED_CHARS:  # type: ignore[union-attr]
                    size += len(batch[j].delta or "")  # type: ignore[union-attr]
                    j += 1
            if j - i > 1:
                text = self._merge(batch[i:j])  # type: ignore[arg-type]
            elif self.with_seq:
                text = messages.splice_seq(entry.text, entry.seq)
            else:
                text = entry.text
            await self._send(text)
            self.sent_messages += j - i
            self.cursor = batch[j - 1].seq  # type: ignore[union-attr]
            i = j

    def _merge(self, run: list[Entry]) -> str:
        obj = messages.parse(run[0].text)
        obj["params"]["delta"] = "".join([e.delta for e in run])  # type: ignore[misc]
        text = messages.dumps(obj)
        if self.with_seq:
            return messages.splice_seq(text, run[-1].seq, run[0].seq)
        return text


def cut_off_laggards(subscribers: Iterable[Subscriber], limit: int, session_id: str) -> None:
    """Close (1013) clients whose backlog exceeds ``limit`` (ARGUS_CLIENT_QUEUE_BYTES).

    The session passes its ``active`` set: a client with nothing queued cannot lag.

    Called before each runtime read chunk lands, so a backlog is bounded by the limit plus
    one chunk. A client is too slow when it has not taken what was there before, not
    because one chunk arrived at once. It can resume from its cursor with ``since``.
    """
    for sub in list(subscribers):
        if sub.close_code is not None:
            continue  # already on its way out
        if not sub.has_pending():
            continue  # caught up since it was marked active
        backlog = sub.backlog_bytes()
        if backlog is None or backlog > limit:
            log.warning(
                "client too slow, closing session=%s client=%s backlog=%s",
                session_id,
                sub.key,
                backlog,
            )
            sub.request_close(
                codes.CLOSE_TRY_AGAIN_LATER,
                f"Client too slow; resume with since={sub.cursor}",
                drain=False,
            )

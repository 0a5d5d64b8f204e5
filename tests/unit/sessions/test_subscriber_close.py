"""A subscriber's sender task: closing (drained or at once), cancellation, escalation."""

from __future__ import annotations

from typing import Any

import trio
import trio.lowlevel
import trio.testing

from argus.sessions.replay import ReplayBuffer
from argus.sessions.subscriber import Subscriber
from tests.unit.sessions.subscriber_helpers import (
    FakeClient,
    append_note,
    describe,
    new_subscriber,
    settle,
)


async def test_request_close_with_drain_delivers_what_is_queued(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(1 << 20)
        client = FakeClient()
        sub = new_subscriber(replay, client, coalesce=False, with_seq=False)
        await nursery.start(sub.serve)
        client.hold()
        append_note(replay, "n1")
        sub.wake()
        await settle()
        append_note(replay, "n2")
        sub.push("error-reply", 2)
        append_note(replay, "argus/runtime/exited")
        sub.request_close(1011, "Runtime exited", drain=True)
        await settle()
        assert not sub.done.is_set()
        client.release()
        await sub.done.wait()
        assert [describe(f) for f in client.frames] == [
            "n1",
            "n2",
            "error-reply",
            "argus/runtime/exited",
        ]
        assert (sub.close_code, sub.close_reason) == (1011, "Runtime exited")


async def test_request_close_without_drain_stops_at_once(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(1 << 20)
        client = FakeClient()
        sub = new_subscriber(replay, client, coalesce=False)
        await nursery.start(sub.serve)
        client.hold()
        for i in range(5):
            append_note(replay, f"n{i}")
        sub.wake()
        await settle()
        sub.request_close(1013, "Client too slow; resume with since=0", drain=False)
        await sub.done.wait()
        assert (sub.close_code, sub.close_reason) == (1013, "Client too slow; resume with since=0")
        client.release()
        append_note(replay, "later")
        sub.wake()
        await settle()
        assert client.frames == []
        assert sub.cursor == 0  # a resume from here loses nothing


async def test_request_close_before_the_sender_starts(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(1 << 20)
        append_note(replay, "n1")
        client = FakeClient()
        sub = new_subscriber(replay, client)
        sub.request_close(1000, "bye", drain=False)
        await nursery.start(sub.serve)
        await sub.done.wait()
        assert client.frames == [] and sub.close_code == 1000


async def test_first_close_request_wins(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(1 << 20)
        client = FakeClient()
        sub = new_subscriber(replay, client)
        await nursery.start(sub.serve)
        sub.request_close(1013, "slow", drain=False)
        sub.request_close(1000, "normal", drain=False)
        await sub.done.wait()
        assert (sub.close_code, sub.close_reason) == (1013, "slow")


async def test_cancellation_reports_1001() -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(1 << 20)
        client = FakeClient()
        sub = new_subscriber(replay, client)
        async with trio.open_nursery() as nursery:
            await nursery.start(sub.serve)
            client.hold()
            append_note(replay, "n1")
            sub.wake()
            await settle()
            nursery.cancel_scope.cancel()
        assert sub.done.is_set()
        assert (sub.close_code, sub.close_reason) == (1001, "Session stopped")


async def test_broken_connection_ends_the_sender_with_1006(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(1 << 20)

        async def broken(text: str) -> None:
            await trio.lowlevel.checkpoint()
            raise trio.BrokenResourceError("peer gone")

        sub = Subscriber(replay, broken, cursor=0, with_seq=True, coalesce=True)
        await nursery.start(sub.serve)
        append_note(replay, "n1")
        sub.wake()
        await sub.done.wait()
        assert sub.close_code == 1006


def test_backlog_bytes_counts_log_lag_and_private_queue() -> None:
    replay = ReplayBuffer(4 * 200)
    client = FakeClient()
    sub = new_subscriber(replay, client)
    assert sub.backlog_bytes() == 0
    append_note(replay, "n1")
    sub.push("x" * 10, 1)
    assert sub.backlog_bytes() == replay.bytes_after(0) + 10
    for i in range(20):
        append_note(replay, f"n{i}")
    assert replay.first_seq > 1
    assert sub.backlog_bytes() is None  # its next entry is gone: it must be cut off


async def test_escalating_a_draining_close_to_an_immediate_one_stops_the_sender(
    nursery: trio.Nursery,
) -> None:
    """A client stuck while draining (runtime exited) must still be closable at once.

    The session asks for an immediate close when the client disconnects (1006), lags past
    its bound (1013) or the session stops; none of those may be ignored because a draining
    close was requested first.
    """
    with trio.fail_after(10):
        replay = ReplayBuffer(1 << 20)
        client = FakeClient()
        sub = new_subscriber(replay, client)
        await nursery.start(sub.serve)
        client.hold()  # never released: the peer stopped reading
        append_note(replay, "argus/runtime/exited")
        sub.wake()
        await settle()
        sub.request_close(1011, "Runtime exited", drain=True)
        await settle()
        sub.request_close(1006, "Client disconnected", drain=False)
        await settle()
        assert sub.done.is_set(), "sender still blocked after an immediate close request"


class SpinGuardReplay(ReplayBuffer):
    """A replay log that ends the sender if it is polled without end (a busy loop)."""

    LIMIT = 10_000

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes)
        self.lookups = 0

    def get(self, seq: int) -> Any:
        self.lookups += 1
        if self.lookups > self.LIMIT:
            # Without this the loop never reaches a checkpoint and the whole run hangs.
            raise trio.BrokenResourceError("sender is spinning")
        return super().get(seq)


async def test_cursor_evicted_while_draining_ends_the_sender_without_spinning(
    nursery: trio.Nursery,
) -> None:
    """A draining client whose next entry was evicted is closed, not polled forever."""
    with trio.fail_after(10):
        replay = SpinGuardReplay(4 * 1024)
        client = FakeClient()
        sub = new_subscriber(replay, client)
        await nursery.start(sub.serve)
        client.hold()
        append_note(replay, "n1")
        sub.wake()
        await settle()  # stuck sending entry 1
        sub.request_close(1011, "Runtime exited", drain=True)
        for i in range(200):  # entry 2 and many more are evicted meanwhile
            append_note(replay, "flood", i=i)
        assert replay.get(2) is None
        client.release()
        await sub.done.wait()
        assert replay.lookups <= SpinGuardReplay.LIMIT, "sender spun without yielding"
        assert [describe(f) for f in client.frames] == ["n1"]

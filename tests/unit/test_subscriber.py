"""A subscriber's sender task: ordering, coalescing of lagging deltas, and closing.

Each test drives a real ``Subscriber`` against a real ``ReplayBuffer``, with a fake
WebSocket that records what a client would receive and can be held to simulate a slow
link. ``wait_all_tasks_blocked`` lets the sender run until it has nothing left to do.
"""

from __future__ import annotations

import json
import random
from typing import Any

import trio
import trio.lowlevel
import trio.testing

from argus.protocol import messages as m
from argus.sessions.replay import ReplayBuffer
from argus.sessions.subscriber import BATCH_ENTRIES, MAX_MERGED_CHARS, Subscriber

DELTA = "item/agentMessage/delta"


class FakeClient:
    """Records every frame sent; while ``held`` is set, sends block until ``release()``."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self._gate: trio.Event | None = None

    def hold(self) -> None:
        self._gate = trio.Event()

    def release(self) -> None:
        if self._gate is not None:
            self._gate.set()
            self._gate = None

    async def send_text(self, text: str) -> None:
        gate = self._gate
        if gate is not None:
            await gate.wait()
        else:
            await trio.lowlevel.checkpoint()
        self.frames.append(text)

    @property
    def objs(self) -> list[dict[str, Any]]:
        return [json.loads(f) for f in self.frames]


def append_delta(replay: ReplayBuffer, text: str, item: str = "i", method: str = DELTA) -> int:
    """Append a streaming delta the way the session does; its sequence number."""
    params = {"threadId": "t", "turnId": "u", "itemId": item, "delta": text}
    key = m.delta_key(method, params)
    assert key is not None
    return replay.append(m.notification(method, params), key, text).seq


def append_note(replay: ReplayBuffer, method: str, **params: Any) -> int:
    """Append a plain (non-delta) notification; its sequence number."""
    return replay.append(m.notification(method, params)).seq


def new_subscriber(
    replay: ReplayBuffer,
    client: FakeClient,
    *,
    cursor: int = 0,
    with_seq: bool = True,
    coalesce: bool = True,
) -> Subscriber:
    return Subscriber(replay, client.send_text, cursor=cursor, with_seq=with_seq, coalesce=coalesce)


async def settle() -> None:
    """Let the sender run until every task is blocked."""
    await trio.testing.wait_all_tasks_blocked()


def describe(frame: str) -> str:
    """A short label of a frame: the private text, method, or merged delta."""
    if not frame.startswith("{"):
        return frame
    obj = json.loads(frame)
    if obj.get("method") == DELTA:
        return "delta:" + obj["params"]["delta"]
    return obj.get("method", frame)


def is_delta(frame: str) -> bool:
    """Whether a frame is a streaming delta."""
    return frame.startswith("{") and json.loads(frame).get("method") in m.DELTA_METHODS


def rendered_text(frames: list[str]) -> dict[str, str]:
    """The text a client builds by concatenating deltas, per item."""
    text: dict[str, str] = {}
    for frame in frames:
        obj = json.loads(frame)
        if obj.get("method") in m.DELTA_METHODS:
            item = obj["params"]["itemId"]
            text[item] = text.get(item, "") + obj["params"]["delta"]
    return text


async def test_private_messages_interleave_with_broadcast_in_runtime_order(
    nursery: trio.Nursery,
) -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(1 << 20)
        client = FakeClient()
        sub = new_subscriber(replay, client, coalesce=False, with_seq=False)
        append_note(replay, "n1")  # 1
        sub.push("private-after-1", 1)
        append_note(replay, "n2")  # 2
        append_note(replay, "n3")  # 3
        sub.push("private-after-3-a", 3)
        sub.push("private-after-3-b", 3)
        replay.append("server-request", directed=True)  # 4: delivered privately
        sub.push("request-for-this-client", 3)
        append_note(replay, "n5")  # 5
        sub.wake()
        await nursery.start(sub.serve)
        await settle()
        assert [describe(f) for f in client.frames] == [
            "n1",
            "private-after-1",
            "n2",
            "n3",
            "private-after-3-a",
            "private-after-3-b",
            "request-for-this-client",
            "n5",
        ]
        assert sub.cursor == 5
        assert sub.private_bytes == 0 and not sub.private


async def test_private_message_for_the_current_position_goes_out_at_once(
    nursery: trio.Nursery,
) -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(1 << 20)
        client = FakeClient()
        sub = new_subscriber(replay, client)
        await nursery.start(sub.serve)
        append_note(replay, "a")
        sub.wake()
        await settle()
        sub.push("reply", sub.cursor)
        await settle()
        append_note(replay, "b")
        sub.wake()
        await settle()
        assert [describe(f) for f in client.frames] == ["a", "reply", "b"]


async def test_directed_entries_are_not_broadcast(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(1 << 20)
        client = FakeClient()
        sub = new_subscriber(replay, client)
        append_note(replay, "a")
        replay.append('{"id":1,"method":"approval"}', directed=True)
        replay.append('{"id":2,"method":"approval"}', directed=True)
        append_note(replay, "b")
        sub.wake()
        await nursery.start(sub.serve)
        await settle()
        objs = client.objs
        assert [o["method"] for o in objs] == ["a", "b"]
        assert [o["argusSeq"] for o in objs] == [1, 4]
        assert sub.cursor == 4


async def test_resuming_cursor_sends_only_what_follows_it(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(1 << 20)
        for i in range(5):
            append_note(replay, f"n{i + 1}")
        client = FakeClient()
        sub = new_subscriber(replay, client, cursor=3)
        await nursery.start(sub.serve)
        await settle()
        assert [(o["argusSeq"], o["method"]) for o in client.objs] == [(4, "n4"), (5, "n5")]


async def test_seq_off_sends_the_runtime_text_unchanged(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(1 << 20)
        text = '{"method":"turn/started","params":{"turn":{"id":"u"}}}'
        replay.append(text)
        client = FakeClient()
        sub = new_subscriber(replay, client, with_seq=False)
        await nursery.start(sub.serve)
        await settle()
        assert client.frames == [text]


async def test_backlog_of_same_item_deltas_is_one_frame(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(1 << 20)
        pieces = [f"<{i}>" for i in range(20)]
        for piece in pieces:
            append_delta(replay, piece)
        client = FakeClient()
        sub = new_subscriber(replay, client)
        await nursery.start(sub.serve)
        await settle()
        assert len(client.frames) == 1
        frame = client.objs[0]
        assert frame["method"] == DELTA
        assert frame["params"] == {
            "threadId": "t",
            "turnId": "u",
            "itemId": "i",
            "delta": "".join(pieces),
        }
        assert (frame["argusSeqFrom"], frame["argusSeq"]) == (1, 20)
        assert list(frame)[:2] == ["argusSeq", "argusSeqFrom"]
        assert sub.cursor == 20
        assert sub.sent_frames == 1 and sub.sent_messages == 20


async def test_merged_frame_without_seq_has_no_seq_members(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(1 << 20)
        for piece in ("a", "b", "c"):
            append_delta(replay, piece)
        client = FakeClient()
        sub = new_subscriber(replay, client, with_seq=False)
        await nursery.start(sub.serve)
        await settle()
        assert client.objs == [
            {
                "method": DELTA,
                "params": {"threadId": "t", "turnId": "u", "itemId": "i", "delta": "abc"},
            }
        ]


async def test_different_keys_and_other_messages_break_a_run(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(1 << 20)
        append_delta(replay, "a1", item="a")  # 1
        append_delta(replay, "a2", item="a")  # 2
        append_delta(replay, "b1", item="b")  # 3
        append_delta(replay, "a3", item="a")  # 4
        append_delta(replay, "r1", item="a", method="item/reasoning/textDelta")  # 5
        append_delta(replay, "a4", item="a")  # 6
        append_note(replay, "item/updated")  # 7
        append_delta(replay, "a5", item="a")  # 8
        append_delta(replay, "a6", item="a")  # 9
        client = FakeClient()
        sub = new_subscriber(replay, client)
        await nursery.start(sub.serve)
        await settle()
        summary = [
            (o.get("argusSeqFrom"), o["argusSeq"], o["params"].get("delta")) for o in client.objs
        ]
        assert summary == [
            (1, 2, "a1a2"),
            (None, 3, "b1"),
            (None, 4, "a3"),
            (None, 5, "r1"),
            (None, 6, "a4"),
            (None, 7, None),
            (8, 9, "a5a6"),
        ]


async def test_private_message_splits_a_run_of_deltas(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(1 << 20)
        for piece in ("a", "b", "c"):
            append_delta(replay, piece)
        client = FakeClient()
        sub = new_subscriber(replay, client, with_seq=False)
        sub.push("reply-after-2", 2)
        await nursery.start(sub.serve)
        await settle()
        assert [describe(f) for f in client.frames] == ["delta:ab", "reply-after-2", "delta:c"]


async def test_coalesce_off_sends_one_frame_per_entry(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(1 << 20)
        for i in range(30):
            append_delta(replay, f"{i},")
        client = FakeClient()
        sub = new_subscriber(replay, client, coalesce=False)
        await nursery.start(sub.serve)
        await settle()
        objs = client.objs
        assert len(objs) == 30
        assert [o["argusSeq"] for o in objs] == list(range(1, 31))
        assert not [o for o in objs if "argusSeqFrom" in o]
        assert "".join(o["params"]["delta"] for o in objs) == "".join(f"{i}," for i in range(30))


async def test_client_keeping_up_gets_every_message_one_to_one(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(1 << 20)
        client = FakeClient()
        sub = new_subscriber(replay, client)
        await nursery.start(sub.serve)
        for i in range(10):
            append_delta(replay, str(i))
            sub.wake()
            await settle()
        assert [o["argusSeq"] for o in client.objs] == list(range(1, 11))
        assert not [o for o in client.objs if "argusSeqFrom" in o]


async def test_slow_link_builds_a_backlog_that_is_sent_coalesced(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(1 << 20)
        client = FakeClient()
        sub = new_subscriber(replay, client)
        await nursery.start(sub.serve)
        client.hold()
        append_delta(replay, "first ")
        sub.wake()
        await settle()  # the sender is now stuck sending entry 1
        assert client.frames == []
        for i in range(50):
            append_delta(replay, f"{i} ")
            sub.wake()
        await settle()
        assert sub.backlog_bytes() == replay.bytes_after(0)
        client.release()
        await settle()
        objs = client.objs
        assert len(objs) == 2
        assert objs[0]["argusSeq"] == 1 and "argusSeqFrom" not in objs[0]
        assert (objs[1]["argusSeqFrom"], objs[1]["argusSeq"]) == (2, 51)
        assert objs[1]["params"]["delta"] == "".join(f"{i} " for i in range(50))
        assert sub.backlog_bytes() == 0


async def test_merged_frames_stay_under_the_size_cap(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(64 << 20)
        piece = "x" * 100_000
        for _ in range(12):
            append_delta(replay, piece)
        client = FakeClient()
        sub = new_subscriber(replay, client)
        await nursery.start(sub.serve)
        await settle()
        objs = client.objs
        assert len(objs) > 1
        for obj in objs:
            assert len(obj["params"]["delta"]) <= MAX_MERGED_CHARS + len(piece)
        assert "".join(o["params"]["delta"] for o in objs) == piece * 12
        assert_contiguous(objs, 1, 12)


async def test_backlog_longer_than_a_batch_is_sent_in_contiguous_frames(
    nursery: trio.Nursery,
) -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(64 << 20)
        n = BATCH_ENTRIES * 3 + 10
        for i in range(n):
            append_delta(replay, f"{i};")
        client = FakeClient()
        sub = new_subscriber(replay, client)
        await nursery.start(sub.serve)
        await settle()
        objs = client.objs
        assert 1 < len(objs) <= 4 + 1
        assert "".join(o["params"]["delta"] for o in objs) == "".join(f"{i};" for i in range(n))
        assert_contiguous(objs, 1, n)


def assert_contiguous(objs: list[dict[str, Any]], first: int, last: int) -> None:
    """Frames cover ``first..last`` exactly once, in order, with no gap."""
    expected = first
    for obj in objs:
        start = obj.get("argusSeqFrom", obj["argusSeq"])
        assert start == expected
        assert obj["argusSeq"] >= start
        expected = obj["argusSeq"] + 1
    assert expected == last + 1


async def test_rendered_text_is_the_same_with_and_without_coalescing() -> None:
    with trio.fail_after(10):
        results: dict[bool, list[str]] = {}
        heads: dict[bool, int] = {}
        for coalesce in (True, False):
            rng = random.Random(7)
            replay = ReplayBuffer(16 << 20)
            client = FakeClient()
            sub = new_subscriber(replay, client, coalesce=coalesce)
            async with trio.open_nursery() as nursery:
                await nursery.start(sub.serve)
                for burst in range(20):
                    client.hold()
                    for _ in range(rng.randrange(1, 60)):
                        roll = rng.random()
                        if roll < 0.05:
                            append_note(replay, "item/completed", n=burst)
                        elif roll < 0.08:
                            sub.push(m.result_response(burst, {"ok": True}), replay.last_seq)
                        else:
                            item = rng.choice(["a", "b", "c"])
                            method = rng.choice([DELTA, "item/reasoning/textDelta"])
                            append_delta(replay, f"{item}{rng.randrange(100)} ", item, method)
                        sub.wake()
                    await settle()
                    client.release()
                    await settle()
                nursery.cancel_scope.cancel()
            results[coalesce] = client.frames
            heads[coalesce] = replay.last_seq
        merged, plain = results[True], results[False]
        assert len(merged) < len(plain)
        assert rendered_text(merged) == rendered_text(plain)
        # Everything that is not a delta arrives identically, in the same order.
        others = [[f for f in fs if not is_delta(f)] for fs in (merged, plain)]
        assert others[0]
        assert others[0] == others[1]
        assert heads[True] == heads[False]
        for frames in (merged, plain):
            broadcast = [o for o in map(json.loads, frames) if "argusSeq" in o]
            assert_contiguous(broadcast, 1, heads[True])


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

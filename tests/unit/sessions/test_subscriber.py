"""A subscriber's sender task: ordering and coalescing of lagging deltas.

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
from argus.sessions.subscriber import BATCH_ENTRIES, MAX_MERGED_CHARS
from tests.unit.sessions.subscriber_helpers import (
    DELTA,
    FakeClient,
    append_delta,
    append_note,
    describe,
    is_delta,
    new_subscriber,
    rendered_text,
    settle,
)


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


async def test_a_client_behind_only_evicted_directed_entries_is_not_cut_off(
    nursery: trio.Nursery,
) -> None:
    # Other clients' responses (a bridge's placeholders) pushed this idle client's cursor
    # out of the log; it lost nothing, so the next broadcast reaches it.
    with trio.fail_after(10):
        replay = ReplayBuffer(2_000)
        client = FakeClient()
        sub = new_subscriber(replay, client)
        append_note(replay, "a")
        sub.wake()
        await nursery.start(sub.serve)
        await settle()
        assert not sub.has_pending()
        for _ in range(100):
            replay.append("", directed=True)
        assert replay.first_seq > sub.cursor + 1 and not sub.has_pending()
        assert sub.backlog_bytes() == 0
        append_note(replay, "b")
        sub.wake()
        await settle()
        assert [o["method"] for o in client.objs] == ["a", "b"]
        assert sub.close_code is None


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

"""The replay log and the subscriber's sender: ordering, eviction, coalescing, closing."""

from __future__ import annotations

import json

import trio
import trio.lowlevel
import trio.testing

from argus.protocol import messages as m
from argus.sessions.replay import ENTRY_OVERHEAD, ReplayBuffer
from argus.sessions.subscriber import Subscriber


def delta(i: int, item: str = "i") -> tuple[str, tuple, str]:
    params = {"threadId": "t", "turnId": "u", "itemId": item, "delta": f"{i:04d}"}
    text = m.notification("item/agentMessage/delta", params)
    return text, m.delta_key("item/agentMessage/delta", params), params["delta"]


def test_replay_sequences_and_evicts_by_bytes() -> None:
    replay = ReplayBuffer(max_bytes=10 * (ENTRY_OVERHEAD + 10))
    for i in range(100):
        replay.append(f"{i:010d}")
    assert replay.last_seq == 100
    assert len(replay) == 10 and replay.first_seq == 91
    assert replay.get(90) is None and replay.get(101) is None
    assert replay.get(95).text == "0000000094"
    assert replay.bytes_after(100) == 0
    assert replay.bytes_after(99) == ENTRY_OVERHEAD + 10
    assert replay.bytes_after(50) is None


def test_replay_never_evicts_newest_and_compacts() -> None:
    replay = ReplayBuffer(max_bytes=1)
    replay.append("x" * 100)
    assert len(replay) == 1
    big = ReplayBuffer(max_bytes=50 * (ENTRY_OVERHEAD + 5))
    for i in range(20_000):
        big.append(f"{i:05d}")
    assert len(big._entries) < 5000  # compacted
    assert big.get(19_999).text == "19998"
    assert big.get(big.first_seq).seq == big.first_seq


async def run_subscriber(sub: Subscriber, nursery: trio.Nursery) -> None:
    await nursery.start(sub.serve)
    await trio.testing.wait_all_tasks_blocked()


async def test_private_messages_keep_runtime_order(nursery) -> None:
    replay = ReplayBuffer(1 << 20)
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    sub = Subscriber(replay, send, cursor=0, with_seq=False, coalesce=True)
    replay.append(m.notification("a", {}))
    sub.push("response-after-a", after_seq=1)
    replay.append(m.notification("b", {}))
    replay.append("request", directed=True)
    sub.push("request-for-me", after_seq=2)
    replay.append(m.notification("c", {}))
    sub.wake()
    await run_subscriber(sub, nursery)
    names = [json.loads(t).get("method", t) if t.startswith("{") else t for t in sent]
    assert names == ["a", "response-after-a", "b", "request-for-me", "c"]
    assert sub.cursor == 4


async def test_coalescing_while_behind_and_not_when_off(nursery) -> None:
    for coalesce in (True, False):
        replay = ReplayBuffer(1 << 20)
        sent: list[dict] = []

        async def send(text: str, sent: list[dict] = sent) -> None:
            sent.append(json.loads(text))

        sub = Subscriber(replay, send, cursor=0, with_seq=True, coalesce=coalesce)
        for i in range(50):
            replay.append(*delta(i))
        for i in range(50, 60):
            replay.append(*delta(i, item="other"))
        sub.wake()
        await run_subscriber(sub, nursery)
        text = "".join(x["params"]["delta"] for x in sent)
        assert text == "".join(f"{i:04d}" for i in range(60))
        if coalesce:
            assert len(sent) == 2
            assert (sent[0]["argusSeqFrom"], sent[0]["argusSeq"]) == (1, 50)
            assert (sent[1]["argusSeqFrom"], sent[1]["argusSeq"]) == (51, 60)
        else:
            assert len(sent) == 60 and [x["argusSeq"] for x in sent] == list(range(1, 61))


async def test_keeping_up_means_one_to_one(nursery) -> None:
    replay = ReplayBuffer(1 << 20)
    sent: list[dict] = []

    async def send(text: str) -> None:
        sent.append(json.loads(text))

    sub = Subscriber(replay, send, cursor=0, with_seq=True, coalesce=True)
    await run_subscriber(sub, nursery)
    for i in range(10):
        replay.append(*delta(i))
        sub.wake()
        await trio.testing.wait_all_tasks_blocked()
    assert len(sent) == 10 and not [x for x in sent if "argusSeqFrom" in x]


async def test_close_with_and_without_drain(nursery) -> None:
    replay = ReplayBuffer(1 << 20)
    gate = trio.Event()
    sent: list[str] = []

    async def slow_send(text: str) -> None:
        await gate.wait()
        sent.append(text)

    sub = Subscriber(replay, slow_send, cursor=0, with_seq=False, coalesce=False)
    await run_subscriber(sub, nursery)
    for i in range(3):
        replay.append(m.notification(f"n{i}", {}))
    sub.wake()
    await trio.testing.wait_all_tasks_blocked()
    sub.request_close(1011, "Runtime exited", drain=True)
    gate.set()
    await sub.done.wait()
    assert len(sent) == 3 and sub.close_code == 1011

    async def never(text: str) -> None:
        await trio.sleep_forever()

    stuck = Subscriber(replay, never, cursor=0, with_seq=False, coalesce=False)
    await run_subscriber(stuck, nursery)
    stuck.request_close(1013, "Client too slow", drain=False)
    await stuck.done.wait()
    assert stuck.close_code == 1013


async def test_cancelled_sender_reports_1001(nursery) -> None:
    replay = ReplayBuffer(1 << 20)

    async def instant(text: str) -> None:
        await trio.lowlevel.checkpoint()

    sub = Subscriber(replay, instant, cursor=0, with_seq=False, coalesce=True)
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as inner:
            await inner.start(sub.serve)
            scope.cancel()
    assert sub.done.is_set() and sub.close_code == 1001

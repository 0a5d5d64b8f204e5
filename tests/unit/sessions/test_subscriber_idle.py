"""An idle subscriber gives its sender task back and gets a new one when needed."""

from __future__ import annotations

import trio
import trio.testing

from argus.protocol import messages as m
from argus.sessions.replay import ReplayBuffer
from argus.sessions.subscriber import IDLE_EXIT_S, Subscriber


def make(replay: ReplayBuffer, sent: list[str]) -> Subscriber:
    async def send(text: str) -> None:
        sent.append(text)

    return Subscriber(replay, send, cursor=0, with_seq=False, coalesce=True)


def sender_tasks(nursery: trio.Nursery) -> int:
    return len(nursery.child_tasks)


async def test_sender_exits_when_idle_and_restarts(autojump_clock) -> None:
    replay = ReplayBuffer(1 << 20)
    sent: list[str] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            sub = make(replay, sent)
            sub.start_in(nursery)
            replay.append(m.notification("one", {}))
            sub.wake()
            await trio.testing.wait_all_tasks_blocked()
            assert len(sent) == 1 and sender_tasks(nursery) == 1
            await trio.sleep(IDLE_EXIT_S + 1)
            assert sender_tasks(nursery) == 0 and not sub.done.is_set()
            replay.append(m.notification("two", {}))
            sub.wake()
            sub.push("private", after_seq=2)
            await trio.testing.wait_all_tasks_blocked()
            assert [x if not x.startswith("{") else x[11:14] for x in sent] == [
                "one",
                "two",
                "private",
            ]
            await trio.sleep(IDLE_EXIT_S + 1)
            sub.request_close(1001, "bye", drain=False)
            assert sub.done.is_set() and sub.close_code == 1001
            assert sender_tasks(nursery) == 0


async def test_draining_close_of_idle_subscriber_sends_first(autojump_clock) -> None:
    replay = ReplayBuffer(1 << 20)
    sent: list[str] = []
    done_called: list[bool] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            sub = make(replay, sent)
            sub.on_done = lambda: done_called.append(True)
            sub.start_in(nursery)
            await trio.sleep(IDLE_EXIT_S + 1)
            assert sender_tasks(nursery) == 0
            replay.append(m.notification("argus/runtime/exited", {}))
            sub.request_close(1011, "Runtime exited", drain=True)
            await sub.done.wait()
            assert len(sent) == 1 and "runtime/exited" in sent[0]
            assert sub.close_code == 1011 and done_called == [True]

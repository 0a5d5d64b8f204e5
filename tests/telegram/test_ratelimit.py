"""The send limits, on trio's mock clock: per chat, per group, overall, and 429 holds."""

from __future__ import annotations

import trio
import trio.testing

from argus.channels.telegram.ratelimit import RateLimiter


async def sends_in(limiter: RateLimiter, chat: int, count: int) -> list[float]:
    times = []
    for _ in range(count):
        await limiter.wait(chat)
        times.append(trio.current_time())
    return times


async def test_one_message_a_second_per_chat(autojump_clock: trio.testing.MockClock) -> None:
    limiter = RateLimiter(1.0, 20, 30)
    start = trio.current_time()
    times = await sends_in(limiter, 5, 4)
    assert [round(t - start, 3) for t in times] == [0.0, 1.0, 2.0, 3.0]
    other = trio.current_time()
    await limiter.wait(6)  # another chat is not held up
    assert trio.current_time() == other


async def test_twenty_a_minute_per_group(autojump_clock: trio.testing.MockClock) -> None:
    limiter = RateLimiter(0.0, 20, 1000)
    start = trio.current_time()
    times = await sends_in(limiter, -100, 21)
    assert times[19] - start < 1.0
    assert times[20] - start >= 60.0


async def test_thirty_a_second_overall(autojump_clock: trio.testing.MockClock) -> None:
    limiter = RateLimiter(0.0, 20, 30)
    start = trio.current_time()
    for chat in range(31):
        await limiter.wait(chat + 1)
    assert trio.current_time() - start >= 1.0


async def test_429_holds_the_chat(autojump_clock: trio.testing.MockClock) -> None:
    limiter = RateLimiter(0.0, 20, 30)
    limiter.hold(7, 12.0)
    start = trio.current_time()
    await limiter.wait(7)
    assert trio.current_time() - start >= 12.0

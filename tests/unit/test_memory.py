"""``argus.memory``: freed heap really goes back to the OS, and the loop can be turned off."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from argus import memory


def rss_kib() -> int:
    """This process's resident memory."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.mark.skipif(not memory.can_trim(), reason="malloc_trim needs glibc")
def test_trim_returns_freed_heap_that_free_alone_keeps() -> None:
    # 40 MiB of 2 KiB chunks (above pymalloc's 512 B: they come from malloc), with every
    # 64th one kept alive: the free chunks sit below live ones, so free() cannot shrink
    # the heap, which is what the fuzzer's frames did to the daemon.
    chunks = [bytes(2048) for _ in range(20_000)]
    kept = chunks[::64]
    del chunks
    before = rss_kib()
    assert memory.trim_heap()
    after = rss_kib()
    assert before - after > 20 * 1024, (before, after)
    assert len(kept) == 313


async def test_the_loop_is_off_at_zero() -> None:
    with trio.fail_after(5):
        await memory.trim_periodically(0)  # returns at once instead of looping


def test_heap_blocks_count_live_objects() -> None:
    before = memory.python_heap_blocks()
    held = [object() for _ in range(10_000)]
    assert memory.python_heap_blocks() - before >= 9_000
    del held

"""Giving freed heap back to the operating system, and a figure for the live Python heap.

Why: the live fuzzer showed the daemon's resident memory (RSS) climbing about 1 KiB per
hostile case on ``/ws`` and ``/mcp`` while tracemalloc showed the live Python heap flat
(growth only in the replay logs, which are bounded by ``ARGUS_REPLAY_BUFFER_BYTES``). The
difference is memory Python has already freed that glibc's ``malloc`` keeps: megabyte
frames, 100 KB strings and the worker threads' arenas leave free chunks below the top of
each heap, and ``free`` only returns the top. ``malloc_trim(0)`` returns every free page.

So the daemon calls it every ``ARGUS_MALLOC_TRIM_S`` seconds (0: never), in a worker
thread (it walks every arena and takes their locks: never on the event loop). Where the C
library is not glibc (musl, macOS) there is nothing to call and the loop does not start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from collections.abc import Callable

import trio

log = logging.getLogger(__name__)


def _find_malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _find_malloc_trim()


def can_trim() -> bool:
    """True where the C library has ``malloc_trim`` (glibc)."""
    return _MALLOC_TRIM is not None


def trim_heap() -> bool:
    """Return free heap pages to the OS (blocking: call it in a worker thread)."""
    return bool(_MALLOC_TRIM(0)) if _MALLOC_TRIM is not None else False


def python_heap_blocks() -> int:
    """Memory blocks the Python allocator has live (``sys.getallocatedblocks``).

    Cheap and always available: this, not RSS, says whether Python objects pile up.
    """
    return sys.getallocatedblocks()


async def trim_periodically(interval_s: float) -> None:
    """Run ``trim_heap`` every ``interval_s`` seconds until cancelled (0 or no glibc: return)."""
    if interval_s <= 0 or not can_trim():
        log.debug("malloc_trim loop off (interval %s, available %s)", interval_s, can_trim())
        return
    while True:
        await trio.sleep(interval_s)
        await trio.to_thread.run_sync(trim_heap)

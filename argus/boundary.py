"""Failure boundaries: where an unexpected exception in one task stops, on purpose.

Why: every task runs in some nursery under the daemon's, and trio propagates a child's
exception to its parent. Without a boundary one bad frame that hits a bug in a client's
sender task would travel up to the daemon's nursery and end ``argus serve`` for everyone.
The rule (docs/architecture.md, "Task tree"): a failure while serving one client ends at
most that client's connection (close 1011 and a log line); a failure inside one session
ends at most that session; a background job's failure ends only that job. Only
``Exception`` is contained: cancellation and KeyboardInterrupt still travel as trio needs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


def contained(fn: Callable[..., Awaitable[Any]], what: str) -> Callable[..., Awaitable[None]]:
    """``fn`` wrapped so that its exception is logged (with ``what``) and goes no further."""

    async def run(*args: Any) -> None:
        try:
            await fn(*args)
        except Exception:
            log.exception("%s failed; the failure is contained there", what)

    run.__name__ = getattr(fn, "__name__", "contained")
    return run

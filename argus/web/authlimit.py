"""Rate limiting of authentication failures per source address (sans-IO).

Why: tokens are long and compared in constant time, but nothing stopped a client from
trying them as fast as the daemon answers. An address that fails ``limit`` times within
``window_s`` seconds is refused (HTTP 429, WebSocket close 4429) for the rest of that
window, before its credential is even looked at; a correct token from the same address
waits too, or the limit would not slow a guesser down. Successful requests do not count.

Bounded: at most ``MAX_ADDRESSES`` addresses are tracked; the least recently failing one
is forgotten first (an attacker with that many addresses is not slowed by this anyway).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

from .. import metrics
from ..protocol import codes

MAX_ADDRESSES = 10_000
CLOSE_RATE_LIMITED = codes.CLOSE_RATE_LIMITED
REASON = "Too many authentication failures; retry later"


class AuthLimiter:
    """Failure counts per address in fixed windows; ``limited`` is checked first."""

    def __init__(
        self,
        limit: int = 20,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        # address -> (window start, failures in that window); oldest failure first.
        self._seen: collections.OrderedDict[str, tuple[float, int]] = collections.OrderedDict()

    def configure(self, limit: int, window_s: float) -> None:
        """Apply the daemon's settings (ARGUS_AUTH_FAIL_LIMIT, ARGUS_AUTH_FAIL_WINDOW_S)."""
        self.limit = limit
        self.window_s = window_s
        self._seen.clear()

    def limited(self, address: str, surface: str) -> bool:
        """True if ``address`` must be refused now (counted as rate-limited)."""
        entry = self._seen.get(address)
        if entry is None:
            return False
        start, failures = entry
        if self.clock() - start >= self.window_s:
            del self._seen[address]
            return False
        if failures >= self.limit:
            metrics.STATS.auth_rate_limited.add(surface)
            return True
        return False

    def failed(self, address: str, surface: str) -> None:
        """Record one refused credential from ``address`` on ``surface``."""
        metrics.STATS.auth_failures.add(surface)
        now = self.clock()
        start, failures = self._seen.pop(address, (now, 0))
        if now - start >= self.window_s:
            start, failures = now, 0
        self._seen[address] = (start, failures + 1)
        while len(self._seen) > MAX_ADDRESSES:
            self._seen.popitem(last=False)


#: The daemon's limiter (configured at start-up; one daemon per process).
LIMITER = AuthLimiter()


def client_address(scope: dict) -> str:
    """The peer address of an ASGI scope (``?`` when the server did not say)."""
    client = scope.get("client")
    if client:
        return str(client[0])
    return "?"

"""``argus.client``: a small Trio client library for Argus, over ``/ws``.

``open_session(url, token=..., session=...)`` gives an ``ArgusSession`` with ``request()``,
``notifications()`` and an approval callback; it reconnects by itself with ``since`` so the
caller sees every message once, in order. ``run_turn(thread, text)`` returns the final text
and status. See docs/client-guide.md. It imports no gateway internals: only the wire.
"""

from .connection import (
    DEFAULT_URL,
    ArgusClientError,
    ConnectionLost,
    RequestInterrupted,
    RpcError,
)
from .session import ArgusSession, Subscription, open_session
from .turns import TurnResult

__all__ = [
    "DEFAULT_URL",
    "ArgusClientError",
    "ArgusSession",
    "ConnectionLost",
    "RequestInterrupted",
    "RpcError",
    "Subscription",
    "TurnResult",
    "open_session",
]

"""The one WebSocket accept path: every surface (``/ws``, ``/nodes/ws``) opens through it.

Why one path: the Origin rule, the token extraction and the close-reason limit are
security rules, and a second copy drifts (``/nodes/ws`` once accepted any Origin, so a page
on any site could register a node that offers ``system.run`` on a loopback gateway with
auth off). Here a foreign ``Origin`` (not loopback, not in ARGUS_ALLOWED_ORIGINS, not the
gateway's own origin when a token is set) is refused before the upgrade (HTTP 403); the
token comes from the ``bearer.<token>`` subprotocol, ``Authorization`` or ``?token=``; and a
close reason is cut to what a close frame can carry, in bytes, on a character boundary.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from .. import auth
from ..protocol import codes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    """An accepted connection: its query string and the token it presented (if any)."""

    query: dict[str, list[str]]
    token: str | None


def close_reason(text: str) -> str:
    """``text`` cut to ``codes.MAX_CLOSE_REASON_BYTES`` of UTF-8, never inside a character."""
    data = text.encode("utf-8", "replace")  # "replace": a lone surrogate cannot fail a close
    return data[: codes.MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore")


async def accept(
    scope: dict[str, Any],
    receive: Any,
    send: Any,
    allowed_origins: Iterable[str],
    expected_token: str | None = None,
) -> Accepted | None:
    """Accept the upgrade unless its Origin is foreign; None when refused or gone.

    ``expected_token`` (the admin token of ``/ws``) enables two browser rules: the
    gateway's own origin (its console) is allowed when a token is set, and a client that
    offers the ``argus.v1`` subprotocol with a missing or wrong token is refused before the
    handshake (HTTP 403). Such a client may carry its token as ``bearer.<token>``; the
    answer is ``argus.v1``, never the token.
    """
    if (await receive())["type"] != "websocket.connect":
        return None
    headers = scope["headers"]
    origin = auth.header(headers, b"origin")
    same_site = expected_token is not None and auth.same_origin(
        origin, auth.header(headers, b"host")
    )
    if not same_site and not auth.origin_allowed(origin, allowed_origins):
        log.warning("websocket refused on %s: origin %r is not allowed", scope.get("path"), origin)
        await send({"type": "websocket.close", "code": codes.CLOSE_POLICY_VIOLATION})  # HTTP 403
        return None
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    offered = list(scope.get("subprotocols") or [])
    token = auth.subprotocol_token(offered)
    if token is None:
        token = auth.extract_token(auth.header(headers, b"authorization"), query)
    if auth.ARGUS_SUBPROTOCOL in offered:
        if not auth.token_matches(expected_token, token):
            await send({"type": "websocket.close", "code": codes.CLOSE_POLICY_VIOLATION})
            return None
        await send({"type": "websocket.accept", "subprotocol": auth.ARGUS_SUBPROTOCOL})
    else:
        await send({"type": "websocket.accept"})
    return Accepted(query, token)

"""Credentials: token extraction, constant-time checks, derived session tokens, Origins.

A leaf: it imports only ``config``, so every layer and every program may use it.

Tokens come from ``Authorization: Bearer <token>`` or, for browsers that cannot set
headers on a WebSocket, the subprotocol ``bearer.<token>`` offered next to ``argus.v1``
(the web console's way: the token never enters a URL) or ``?token=``. When the header is
present the query string is not consulted (the original's rule). Comparison is
constant-time, and nothing here ever logs a token.

Per-session credentials are derived from the gateway's secret. A runtime (a local bridge,
a container, the node-host beside it) needs a credential to talk back to the gateway, but
the admin token must never enter a runtime. Each session instead gets
HMAC-SHA256(secret, session id): the gateway can recompute it for any session without
storing it, a leaked session token opens only that session's scope, and it cannot be turned
into the admin token or another session's token. The secret is ``ARGUS_TOKEN`` when set.
Without one (loopback-only, auth off), a random secret is created once per home in
``<home>/gateway/secret`` (mode 0600) so that derived tokens stay stable across restarts and
detached runtimes can be re-adopted.

The Origin check closes cross-site WebSocket hijacking: CORS does not apply to WebSockets,
so without it any page a user visits could open ``ws://127.0.0.1:8080/ws`` and drive their
agent, which matters most exactly when auth is off (the loopback default).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from .config import Settings

Headers = Iterable[tuple[bytes, bytes]]


def header(headers: Headers, name: bytes) -> str | None:
    """The first value of header ``name`` (lower-case bytes), decoded as latin-1."""
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def token_from_authorization(value: str) -> str | None:
    """``Bearer <token>`` gives the token; a bare value is taken as the token (original)."""
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    if rest and scheme.lower() == "bearer":
        return rest.strip() or None
    return value or None


def extract_token(authorization: str | None, query: Mapping[str, list[str]]) -> str | None:
    """The token a request presents, header first."""
    if authorization is not None:
        return token_from_authorization(authorization)
    values = query.get("token")
    return values[0] if values else None


ARGUS_SUBPROTOCOL = "argus.v1"
BEARER_PREFIX = "bearer."


def subprotocol_token(subprotocols: Iterable[str]) -> str | None:
    """The token of a ``bearer.<token>`` subprotocol, if one was offered.

    Browsers can set no header on a WebSocket, but they can offer subprotocols; the console
    offers ``argus.v1`` plus ``bearer.<token>``, and the gateway answers ``argus.v1`` only,
    so the token is never echoed back.
    """
    for proto in subprotocols:
        if proto.startswith(BEARER_PREFIX):
            return proto[len(BEARER_PREFIX) :] or None
    return None


def same_origin(origin: str | None, host: str | None) -> bool:
    """Whether ``Origin`` names the host the request was sent to (the console's own page).

    Only meaningful with a token configured: without one, a DNS-rebinding page also looks
    same-origin, so the loopback rule of :func:`origin_allowed` applies alone.
    """
    if not origin or not host:
        return False
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.strip().lower()


def token_matches(expected: str | None, provided: str | None) -> bool:
    """True if auth is off or the token matches, compared in constant time."""
    if expected is None:
        return True
    if provided is None:
        return False
    return hmac.compare_digest(provided.encode("utf-8"), expected.encode("utf-8"))


def _is_loopback_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def origin_allowed(origin: str | None, allowed: Iterable[str]) -> bool:
    """Whether a WebSocket upgrade with this ``Origin`` may proceed.

    No Origin header means a non-browser client (scripts, bots, the node host), which
    browsers cannot fake; loopback origins are the local console; anything else must be
    listed in ARGUS_ALLOWED_ORIGINS (``*`` allows all, for deployments behind their own
    auth).
    """
    if origin is None:
        return True
    origin = origin.strip().rstrip("/")
    allowed = tuple(allowed)
    if "*" in allowed or origin in allowed:
        return True
    if origin == "null":
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and _is_loopback_host(parts.hostname or "")


SECRET_FILE = Path("gateway") / "secret"
PREFIX = "ast."  # "argus session token": recognisable in a leak report


def _mac(secret: str, session_id: str) -> str:
    digest = hmac.new(secret.encode(), b"argus-session:" + session_id.encode(), hashlib.sha256)
    return digest.hexdigest()


def derive_session_token(secret: str, session_id: str) -> str:
    """The token of ``session_id``: ``ast.<sessionId>.<HMAC-SHA256(secret, sessionId)>``.

    The session id is in clear so the gateway knows which session a token claims without a
    lookup table; only the MAC proves it, and it cannot be forged without the secret.
    """
    return f"{PREFIX}{session_id}.{_mac(secret, session_id)}"


def session_of_token(secret: str, token: str | None) -> str | None:
    """The session a token proves, or None (compared in constant time)."""
    if not token or not token.startswith(PREFIX):
        return None
    session_id, _, mac = token[len(PREFIX) :].rpartition(".")
    if not session_id:
        return None
    if not hmac.compare_digest(mac.encode(), _mac(secret, session_id).encode()):
        return None
    return session_id


def load_or_create_secret(home: Path) -> str:
    """The per-home random secret (blocking file I/O: call it from a worker thread)."""
    path = home / SECRET_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


def gateway_secret(settings: Settings) -> str:
    """ARGUS_TOKEN if set, else the per-home secret (blocking: call from a worker thread)."""
    return settings.admin_token or load_or_create_secret(settings.home_host_path)

"""Per-session credentials derived from the gateway's secret.

Why derived tokens: a runtime (a local bridge, a container, the node-host beside it) needs a
credential to talk back to the gateway, but the admin token must never enter a runtime. Each
session instead gets HMAC-SHA256(secret, session id): the gateway can recompute it for any
session without storing it, a leaked session token opens only that session's scope, and it
cannot be turned into the admin token or another session's token.

The secret is ``ARGUS_TOKEN`` when set. Without one (loopback-only, auth off), a random
secret is created once per home in ``<home>/gateway/secret`` (mode 0600) so that derived
tokens stay stable across restarts and detached runtimes can be re-adopted.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from .config import Settings

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


__all__ = ["derive_session_token", "gateway_secret", "load_or_create_secret", "session_of_token"]

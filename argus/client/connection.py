"""Addresses, credentials and close codes of the client library (no I/O beyond TLS setup).

Kept apart from the session logic so the CLI and tests can reuse the same rules: how an
``ARGUS_URL`` becomes the ``/ws`` address, how the token travels (only ever in the
``Authorization`` header, never in a URL we build), and which close codes are final.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

DEFAULT_URL = "http://127.0.0.1:8080"

# Closes after which reconnecting cannot help: bad token, unknown session, bad ``since``.
FINAL_CLOSE_CODES = frozenset({1008})
# 1001 means either "Session deleted" (final) or "Server shutting down" (a restart: retry).
SESSION_DELETED_REASON = "Session deleted"


class ArgusClientError(Exception):
    """Base class of the library's errors."""


class ConnectionLost(ArgusClientError):
    """The gateway cannot be reached (any more), or closed us for good; ``code`` if closed."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class RequestInterrupted(ArgusClientError):
    """The connection dropped before the response came; the request may or may not have run."""


class RpcError(ArgusClientError):
    """The runtime or the gateway answered a request with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message
        self.data = data


@dataclass(frozen=True)
class Endpoint:
    """Where a gateway is: its HTTP base URL, its WebSocket base URL and TLS settings."""

    http_url: str
    ws_url: str
    secure: bool

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """``http(s)://host:port`` or ``ws(s)://host:port`` (a trailing ``/ws`` is accepted)."""
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
            raise ArgusClientError(f"invalid gateway URL {url!r}: expected http(s):// or ws(s)://")
        if parts.query or parts.fragment:
            raise ArgusClientError(f"invalid gateway URL {url!r}: no query or fragment please")
        secure = scheme in ("https", "wss")
        path = parts.path.rstrip("/")
        if path.endswith("/ws"):
            path = path[: -len("/ws")]
        http = f"{'https' if secure else 'http'}://{parts.netloc}{path}"
        ws = f"{'wss' if secure else 'ws'}://{parts.netloc}{path}"
        return cls(http, ws, secure)

    def session_url(self, session: str | None, since: int | None) -> str:
        """The ``/ws`` URL: always ``seq=1`` (resuming needs the numbers), never a token."""
        query: dict[str, str] = {"seq": "1"}
        if session is not None:
            query["session"] = session
        if since is not None:
            query["since"] = str(since)
        return f"{self.ws_url}/ws?{urlencode(query)}"


def auth_headers(token: str | None) -> list[tuple[str, str]]:
    """The ``Authorization`` header for ``token`` (none when auth is off)."""
    return [("Authorization", f"Bearer {token}")] if token else []


def ssl_context(cafile: str | None = None) -> ssl.SSLContext:
    """Verification against the system's CAs, or against ``cafile`` (a self-signed cert).

    Blocking (reads certificate files): call it before entering async code or from a thread.
    """
    return ssl.create_default_context(cafile=cafile)


def is_final_close(code: int | None, reason: str) -> bool:
    """Whether a close means "do not reconnect"."""
    if code in FINAL_CLOSE_CODES:
        return True
    return code == 1001 and reason.startswith(SESSION_DELETED_REASON)

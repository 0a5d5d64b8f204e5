"""A thin Telegram Bot API client on ``httpx.AsyncClient`` (which runs on trio).

Why our own: python-telegram-bot and aiogram are asyncio-only, and the one trio library
drops ``error_code``/``parameters``. Calls are ``POST {base}/bot{token}/{method}`` with a
JSON body. The outcome is one of three things, and callers must treat them differently:

* a result (``ok: true``);
* ``TelegramError``: the server answered ``ok: false`` (``error_code``, ``description``,
  ``parameters.retry_after`` / ``migrate_to_chat_id``) -- the request was not carried out;
* ``NotSent``: the connection failed before the request was written (safe to retry);
* ``UnknownOutcome``: the connection broke after the request was written, or the answer
  was unreadable -- the server may or may not have carried it out.

The token is never logged: httpx's own INFO line (which prints the full URL) is silenced,
and every error text we build goes through ``redact``.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import httpx

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.telegram.org"
CALL_TIMEOUT_S = 30.0
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_TOKEN_IN_URL = re.compile(r"/(file/)?bot[^/\s]+")


def redact(text: str) -> str:
    """``text`` with any ``/bot<token>`` path segment replaced by ``/bot***``."""
    return _TOKEN_IN_URL.sub(lambda m: "/" + (m.group(1) or "") + "bot***", text)


class _RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(str(record.msg))
        if record.args:
            record.args = tuple(redact(str(a)) for a in record.args)  # type: ignore[assignment]
        return True


def quiet_http_loggers() -> None:
    """httpx logs every request URL (with the token) at INFO: keep it at WARNING, redacted."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        if not any(isinstance(f, _RedactFilter) for f in logger.filters):
            logger.addFilter(_RedactFilter())


class TelegramError(Exception):
    """``ok: false`` from the Bot API: the request was refused and nothing happened."""

    def __init__(self, method: str, error_code: int, description: str, parameters: dict) -> None:
        super().__init__(f"Telegram {method} failed: {error_code} {description}")
        self.method = method
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    @property
    def retry_after(self) -> float | None:
        """``parameters.retry_after`` of a 429, in seconds."""
        value = self.parameters.get("retry_after")
        return float(value) if isinstance(value, int | float) else None

    @property
    def migrate_to_chat_id(self) -> int | None:
        """``parameters.migrate_to_chat_id``: the group became a supergroup with this id."""
        value = self.parameters.get("migrate_to_chat_id")
        return value if isinstance(value, int) else None

    def says(self, *fragments: str) -> bool:
        """Whether the description contains any of ``fragments`` (case-insensitive)."""
        low = self.description.lower()
        return any(f.lower() in low for f in fragments)


class NotSent(Exception):
    """The request never reached the server (connect failure): retrying is safe."""


class UnknownOutcome(Exception):
    """The request may have been carried out: do not repeat it blindly."""


class BotApi:
    """One bot's Bot API endpoint. Not tied to a task: every call is self-contained."""

    def __init__(self, token: str, base_url: str = DEFAULT_API_URL) -> None:
        self._token = token
        self.base_url = base_url.rstrip("/")
        self._client = self._new_client()
        quiet_http_loggers()

    def _new_client(self) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=8)
        return httpx.AsyncClient(limits=limits, timeout=CALL_TIMEOUT_S, follow_redirects=False)

    async def rebuild(self) -> None:
        """Drop every pooled connection (after a 409, connections may be stuck server-side)."""
        old, self._client = self._client, self._new_client()
        await old.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    def _url(self, method: str) -> str:
        return f"{self.base_url}/bot{self._token}/{method}"

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float = CALL_TIMEOUT_S
    ) -> Any:
        """Call ``method``; its ``result``, or one of the three exceptions above."""
        body = json.dumps(params or {}, ensure_ascii=False).encode()
        try:
            response = await self._client.post(
                self._url(method),
                content=body,
                headers={"content-type": "application/json"},
                timeout=httpx.Timeout(timeout, connect=10.0),
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NotSent(f"{method}: {redact(str(exc)) or type(exc).__name__}") from None
        except httpx.HTTPError as exc:
            raise UnknownOutcome(f"{method}: {redact(str(exc)) or type(exc).__name__}") from None
        return self._decode(method, response)

    def _decode(self, method: str, response: httpx.Response) -> Any:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
            if response.status_code >= 500 or response.status_code == 429:
                # A proxy's 5xx page: the bot server did not answer, so nothing was done
                # only if it never got there; we cannot tell, so treat it as unknown.
                raise UnknownOutcome(f"{method}: HTTP {response.status_code}, not a Bot API reply")
            raise UnknownOutcome(f"{method}: bad response (HTTP {response.status_code})")
        if data["ok"]:
            return data.get("result")
        code = data.get("error_code")
        params = data.get("parameters")
        raise TelegramError(
            method,
            code if isinstance(code, int) else response.status_code,
            str(data.get("description") or "unknown error"),
            params if isinstance(params, dict) else {},
        )

    async def download(self, file_path: str, max_bytes: int) -> bytes:
        """The bytes of ``getFile``'s ``file_path``; ``ValueError`` past ``max_bytes``."""
        url = f"{self.base_url}/file/bot{self._token}/{file_path}"
        chunks: list[bytes] = []
        size = 0
        try:
            async with self._client.stream("GET", url, timeout=60.0) as response:
                if response.status_code != 200:
                    raise ValueError(f"file download failed: HTTP {response.status_code}")
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise ValueError(f"file larger than {max_bytes} bytes")
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise ValueError(f"file download failed: {redact(str(exc))}") from None
        return b"".join(chunks)

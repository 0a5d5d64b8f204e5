"""``/console/``: the web console's static files, served from package data (argus/console/).

Why from the gateway: no second container, no Node at run time, and the page is
same-origin with ``/ws`` and the HTTP API, so no CORS and no token in a URL.

Caching: ``index.html`` is ``no-cache``; every other asset lives under
``/console/v/<version>/`` where ``<version>`` is a hash of all the assets, so a browser may
keep them forever (``immutable``) and an upgrade is picked up by the next page load.

Security headers on every console response: ``Content-Security-Policy: default-src 'self'``
(no inline script, no import map; the app imports ``./vendor.js`` by relative path), no
framing (approval buttons must not be clickjacked), no referrer, no MIME sniffing.

The assets are read once, in a worker thread, and kept in memory: a fixed, small set (about
200 KB) shipped with the package, so the cache is bounded by construction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

import trio
from quart import Response, request
from quart_trio import QuartTrio

from .. import __version__
from ..config import Settings
from ..sessions.manager import SessionManager

CSP = (
    "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
}
VERSION_MARK = "{{version}}"
WHAT_CREATE_STARTS = {
    "local": "a new runtime process on the gateway's machine",
    "docker": "a new Docker container running the runtime",
    "tcp": "a new connection to the configured TCP runtime",
}


@dataclass(frozen=True)
class ConsoleAssets:
    """The console's files: name -> bytes, and the version that names their directory."""

    files: dict[str, bytes]
    version: str

    @classmethod
    def load(cls) -> ConsoleAssets:
        """Read argus/console/ (blocking: call it in a worker thread)."""
        root = resources.files("argus") / "console"
        files = {
            entry.name: entry.read_bytes()
            for entry in root.iterdir()
            if entry.is_file() and any(entry.name.endswith(ext) for ext in CONTENT_TYPES)
        }
        digest = hashlib.sha256()
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + files[name])
        return cls(files, digest.hexdigest()[:12])


class ConsoleFiles:
    """Loads the assets once (in a worker thread) on first use."""

    def __init__(self) -> None:
        self._assets: ConsoleAssets | None = None
        self._lock = trio.Lock()

    async def get(self) -> ConsoleAssets:
        """The assets, read on the first call."""
        async with self._lock:
            if self._assets is None:
                self._assets = await trio.to_thread.run_sync(ConsoleAssets.load)
            return self._assets


def _response(body: bytes, name: str, cache: str, status: int = 200) -> Response:
    suffix = name[name.rfind(".") :] if "." in name else ""
    content_type = CONTENT_TYPES.get(suffix, "text/plain; charset=utf-8")
    headers = {**SECURITY_HEADERS, "Cache-Control": cache}
    return Response(body, status=status, content_type=content_type, headers=headers)


def wants_html(accept: str | None) -> bool:
    """Whether an ``Accept`` header is a browser's (``text/html`` explicitly listed)."""
    return bool(accept) and "text/html" in accept.lower()


def add_console_routes(
    app: QuartTrio, admin: Any, settings: Settings, manager: SessionManager
) -> None:
    """Register ``/console/`` and ``GET /info`` (the gateway facts the console shows)."""
    files = ConsoleFiles()

    @app.get("/console")
    async def console_redirect() -> Any:
        return Response("", status=308, headers={"Location": "/console/"})

    @app.get("/console/")
    async def console_index() -> Any:
        assets = await files.get()
        page = assets.files["index.html"].replace(VERSION_MARK.encode(), assets.version.encode())
        return _response(page, "index.html", "no-cache")

    @app.get("/console/v/<version>/<name>")
    async def console_asset(version: str, name: str) -> Any:
        assets = await files.get()
        body = assets.files.get(name)
        if version != assets.version or body is None or name == "index.html":
            return _response(b"Not found\n", "x.txt", "no-store", status=404)
        return _response(body, name, "public, max-age=31536000, immutable")

    @app.get("/info")
    @admin
    async def info() -> Any:
        mode = settings.provision_mode
        return {
            "version": __version__,
            "mode": mode,
            "createStarts": WHAT_CREATE_STARTS.get(mode, "a new session"),
            "sessions": len(manager.sessions),
            "maxSessions": settings.max_sessions,
            "authRequired": settings.admin_token is not None,
        }

    @app.before_request
    async def browser_root_to_console() -> Any:
        # GET / stays plain text for scripts and curl; a browser goes to the console.
        if (
            request.path == "/"
            and request.method == "GET"
            and wants_html(request.headers.get("accept"))
        ):
            return Response("", status=302, headers={"Location": "/console/"})
        return None

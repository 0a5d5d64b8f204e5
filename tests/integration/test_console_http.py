"""The console's HTTP surface and the browser's WebSocket auth, without a browser: asset
headers and versions, ``GET /`` for browsers and scripts, ``GET /info``, and the
``bearer.<token>`` subprotocol (accepted as ``argus.v1``; a bad token is a 403)."""

from __future__ import annotations

import json
import re

import pytest
from trio_websocket import ConnectionRejected, open_websocket_url

from tests.conftest import DaemonFactory

TOKEN = "console-secret"


async def test_assets_headers_and_versions(daemon_factory: DaemonFactory) -> None:
    async with daemon_factory() as daemon, daemon.http() as http:
        index = await http.get("/console/")
        assert index.status_code == 200
        assert index.headers["cache-control"] == "no-cache"
        csp = index.headers["content-security-policy"]
        assert csp.startswith("default-src 'self'") and "frame-ancestors 'none'" in csp
        assert "<script" in index.text and "<script>" not in index.text  # no inline script
        version = re.search(r'src="v/([0-9a-f]{12})/app.js"', index.text)
        assert version, index.text
        app = await http.get(f"/console/v/{version.group(1)}/app.js")
        assert app.status_code == 200
        assert app.headers["content-type"].startswith("text/javascript")
        assert "immutable" in app.headers["cache-control"]
        assert 'from "./vendor.js"' in app.text  # relative import, no import map
        vendor = await http.get(f"/console/v/{version.group(1)}/vendor.js")
        assert vendor.status_code == 200 and len(vendor.content) > 50_000  # through Hypercorn
        assert (await http.get("/console/v/000000000000/app.js")).status_code == 404
        assert (await http.get(f"/console/v/{version.group(1)}/index.html")).status_code == 404
        assert (await http.get("/console")).headers["location"] == "/console/"


async def test_root_is_text_for_scripts_and_the_console_for_browsers(
    daemon_factory: DaemonFactory,
) -> None:
    async with daemon_factory() as daemon, daemon.http() as http:
        plain = await http.get("/")
        assert plain.status_code == 200 and plain.headers["content-type"].startswith("text/plain")
        browser = await http.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*"})
        assert browser.status_code == 302 and browser.headers["location"] == "/console/"


async def test_info_needs_the_admin_token(daemon_factory: DaemonFactory) -> None:
    async with daemon_factory(ARGUS_TOKEN=TOKEN) as daemon:
        async with daemon.http() as http:
            assert (await http.get("/info")).status_code == 401
            assert (await http.get("/console/")).status_code == 200  # the page itself is public
        async with daemon.http(TOKEN) as http:
            info = (await http.get("/info")).json()
        assert info["version"] == "0.1.0" and info["mode"] == "local"
        assert "process" in info["createStarts"] and info["authRequired"] is True


async def test_subprotocol_token(daemon_factory: DaemonFactory) -> None:
    async with daemon_factory(ARGUS_TOKEN=TOKEN) as daemon:
        url = daemon.ws_url + "/ws?seq=1"
        origin = [("Origin", daemon.base_url)]  # the console's own page
        async with open_websocket_url(
            url, subprotocols=["argus.v1", f"bearer.{TOKEN}"], extra_headers=origin
        ) as ws:
            assert ws.subprotocol == "argus.v1"  # never the token echoed back
            hello = json.loads(await ws.get_message())
            assert hello["method"] == "argus/session"
        for bad in (["argus.v1", "bearer.wrong"], ["argus.v1"]):
            with pytest.raises(ConnectionRejected) as refused:
                async with open_websocket_url(url, subprotocols=bad, extra_headers=origin):
                    pass
            assert refused.value.status_code == 403
        # Another site's page is refused even with the right token.
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(
                url,
                subprotocols=["argus.v1", f"bearer.{TOKEN}"],
                extra_headers=[("Origin", "https://evil.example")],
            ):
                pass
        assert refused.value.status_code == 403

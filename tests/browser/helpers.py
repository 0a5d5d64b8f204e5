"""Helpers of the browser tests: opening the console, and a plain WebSocket client that acts
as another party on the same session (setting up threads, flooding the replay buffer)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from playwright.sync_api import Page, expect
from trio_websocket import WebSocketConnection, open_websocket_url

from tests.browser.gateway import Gateway

TIMEOUT_MS = 15_000


def open_console(page: Page, gw: Gateway, token: str | None = None) -> None:
    """Load the console (signing in with ``token`` if given) and wait until connected."""
    page.goto(gw.console_url)
    if token is not None:
        page.get_by_label("Token").fill(token)
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("status")).to_have_text("connected", timeout=TIMEOUT_MS)


def send(page: Page, text: str) -> None:
    """Type ``text`` into the Message box and press Send."""
    page.get_by_role("textbox", name="Message").fill(text)
    page.get_by_role("button", name="Send").click()


def messages(page: Page) -> Any:
    """The message log."""
    return page.get_by_role("log", name="Messages")


def agent_texts(page: Page) -> list[str]:
    """The text of every agent message shown."""
    return page.locator("article.msg.agent .md").all_inner_texts()


def sessions(gw: Gateway, token: str | None = None) -> list[dict[str, Any]]:
    """``GET /sessions``."""
    with gw.http(token) as http:
        return http.get("/sessions").json()["sessions"]


class WsParty:
    """A second client on a session, over trio-websocket."""

    def __init__(self, ws: WebSocketConnection, session_id: str) -> None:
        self.ws = ws
        self.session_id = session_id
        self.n = 0

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        """A request; returns its result (raises on an error)."""
        self.n += 1
        req_id = f"party{self.n}"
        await self.ws.send_message(json.dumps({"id": req_id, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.get_message())
            if msg.get("id") == req_id and "method" not in msg:
                if "error" in msg:
                    raise RuntimeError(msg["error"])
                return msg["result"]

    async def wait_for(self, method: str) -> dict[str, Any]:
        """The next notification ``method``."""
        while True:
            msg = json.loads(await self.ws.get_message())
            if msg.get("method") == method:
                return msg

    async def turn(self, thread_id: str, text: str) -> None:
        """Run one turn to completion."""
        params = {
            "threadId": thread_id,
            "input": [{"type": "text", "text": text, "text_elements": []}],
        }
        await self.request("turn/start", params)
        await self.wait_for("turn/completed")


def with_party(
    gw: Gateway, session_id: str | None, body: Callable[[WsParty], Awaitable[Any]]
) -> Any:
    """Run ``body(party)`` on a fresh, initialized connection to ``session_id`` (None: new)."""

    async def main() -> Any:
        query = f"?session={session_id}" if session_id else ""
        url = gw.base_url.replace("http", "ws", 1) + "/ws" + query
        async with open_websocket_url(
            url, message_queue_size=100_000, max_message_size=1 << 26
        ) as ws:
            hello = json.loads(await ws.get_message())
            party = WsParty(ws, hello["params"]["id"])
            await party.request("initialize", {"clientInfo": {"name": "party", "version": "1"}})
            await ws.send_message(json.dumps({"method": "initialized"}))
            with trio.fail_after(60):
                return await body(party)

    return trio.run(main)

"""Reconnects in the browser: a reload mid-stream, a second browser watching live, the
gateway restarted mid-turn, and a replay gap healed with thread/read."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect
from trio_websocket import ConnectionClosed

from tests.browser.gateway import Gateway
from tests.browser.helpers import (
    TIMEOUT_MS,
    WsParty,
    agent_texts,
    messages,
    open_console,
    send,
    sessions,
    with_party,
)


def slow_text(count: int) -> str:
    """What ``/slow count MS`` streams."""
    return "".join(f"{i:08d}" for i in range(count))


def test_reload_during_a_streamed_turn_shows_the_whole_text_once(
    page: Page, gateway: Gateway
) -> None:
    open_console(page, gateway)
    send(page, "/slow 60 40")
    expect(messages(page).get_by_text("00000010", exact=False)).to_be_visible(timeout=TIMEOUT_MS)
    page.reload()
    expect(page.get_by_role("status")).to_have_text("connected", timeout=TIMEOUT_MS)
    expect(page.get_by_role("button", name="Send")).to_be_visible(timeout=TIMEOUT_MS)
    expect(messages(page).locator("article.msg.agent .md")).to_have_text(
        [slow_text(60)], timeout=TIMEOUT_MS
    )
    assert agent_texts(page) == [slow_text(60)]
    expect(messages(page).locator("article.msg.user")).to_have_count(1)


def test_a_second_browser_sees_the_first_ones_turn_live(browser: Browser, gateway: Gateway) -> None:
    first = browser.new_context().new_page()
    second = browser.new_context().new_page()
    open_console(first, gateway)
    send(first, "hi")
    expect(messages(first).get_by_text("echo: hi")).to_be_visible(timeout=TIMEOUT_MS)
    open_console(second, gateway)
    send(first, "/slow 80 40")
    # The second browser shows the text while it streams (the first still shows Stop).
    expect(second.locator("article.msg.agent.streaming")).to_contain_text(
        "00000010", timeout=TIMEOUT_MS
    )
    expect(first.get_by_role("button", name="Stop")).to_be_visible()
    expect(second.locator("article.msg.agent .md").last).to_have_text(
        slow_text(80), timeout=TIMEOUT_MS
    )
    expect(second.locator("article.msg.user .plain")).to_have_text(["hi", "/slow 80 40"])


def test_gateway_restarted_mid_turn(page: Page, gateway: Gateway) -> None:
    open_console(page, gateway)
    send(page, "/slow 100 40")
    expect(messages(page).get_by_text("00000010", exact=False)).to_be_visible(timeout=TIMEOUT_MS)
    gateway.stop()
    expect(page.get_by_role("status")).not_to_have_text("connected", timeout=TIMEOUT_MS)
    gateway.start()
    expect(page.get_by_role("status")).to_have_text("connected", timeout=30_000)
    expect(messages(page).locator("article.msg.agent .md")).to_have_text(
        [slow_text(100)], timeout=TIMEOUT_MS
    )
    expect(page.get_by_role("button", name="Send")).to_be_visible(timeout=TIMEOUT_MS)
    assert agent_texts(page) == [slow_text(100)]


def test_replay_gap_is_healed_with_thread_read(page: Page, gateway_factory) -> None:  # type: ignore[no-untyped-def]
    gateway = gateway_factory(
        ARGUS_REPLAY_BUFFER_BYTES=str(1024 * 1024), ARGUS_CLIENT_QUEUE_BYTES=str(1024 * 1024)
    )
    open_console(page, gateway)
    send(page, "start")
    expect(messages(page).get_by_text("echo: start")).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_role("link", name="Health").click()
    page.get_by_role("button", name="Disconnect").click()
    expect(page.get_by_role("status")).to_have_text("offline")

    async def flood(party: WsParty) -> None:
        thread = (await party.request("thread/list", {}))["data"][0]["id"]
        text = "/stream 20000 64"  # ~3 MB: more than the replay buffer
        params = {
            "threadId": thread,
            "input": [{"type": "text", "text": text, "text_elements": []}],
        }
        await party.request("turn/start", params)
        try:
            while '"turn/completed"' not in await party.ws.get_message():
                pass
        except ConnectionClosed:
            pass  # closed as too slow (1013): the turn runs on regardless

    with_party(gateway, sessions(gateway)[0]["sessionId"], flood)

    def turn_over() -> bool:
        with gateway.http() as http:
            lanes = http.get("/automation/state").json()["runtime"]["lanes"]
        return not any(lane["busy"] for lane in lanes)

    gateway.wait_for(turn_over, timeout=30)
    page.get_by_role("button", name="Connect").click()
    expect(page.get_by_role("status")).to_have_text("connected", timeout=TIMEOUT_MS)
    page.get_by_role("link", name="Chat").click()
    expect(page.get_by_text("Missed messages", exact=False)).to_be_visible(timeout=TIMEOUT_MS)
    last = messages(page).locator("article.msg.agent .md").last
    expect(last).to_contain_text("00019999", timeout=TIMEOUT_MS)
    text = agent_texts(page)[-1]
    assert text.startswith("00000000") and len(text) == 20000 * 64
    expect(page.get_by_text("refresh", exact=False)).to_have_count(0)

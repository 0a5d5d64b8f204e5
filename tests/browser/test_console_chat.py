"""The console's chat in Debian's Chromium against the demo runtime: streaming Markdown,
folded reasoning, Stop, thread paging, history, the outbox and a 2,000-item thread."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

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


def test_markdown_streams_and_reasoning_folds(page: Page, gateway: Gateway) -> None:
    page.add_init_script(
        "window.cspViolations = []; document.addEventListener('securitypolicyviolation',"
        " (e) => window.cspViolations.push(`${e.violatedDirective} ${e.sourceFile}`));"
    )
    open_console(page, gateway)
    send(page, "hello **bold** and `code`")
    log = messages(page)
    expect(log.locator("article.msg.agent strong")).to_have_text("bold", timeout=TIMEOUT_MS)
    expect(log.locator("article.msg.agent code")).to_have_text("code")
    expect(page.get_by_role("button", name="Send")).to_be_visible()

    send(page, "/think pondering the question")
    fold = log.locator("details.reasoning")
    expect(fold).to_have_count(1, timeout=TIMEOUT_MS)
    expect(fold).not_to_have_attribute("open", "")  # folded by default
    expect(fold.locator(".md")).not_to_be_visible()
    fold.locator("summary").click()
    expect(fold.locator(".md")).to_have_text("pondering the question")
    expect(log.get_by_text("thought: pondering the question")).to_be_visible()

    # The console itself needs nothing the CSP forbids (no inline script or style).
    assert page.evaluate("window.cspViolations") == []
    # The runtime's text is untrusted: markup is sanitised. (Chromium reports DOMPurify's
    # inert parse of an inline handler as a violation, so the list is not checked again.)
    hostile = '<img src=x onerror="window.pwned=1"> <script>window.pwned=2</script>'
    send(page, hostile + " [x](javascript:alert(1))")
    expect(log.locator("article.msg.agent").last).to_contain_text("echo:", timeout=TIMEOUT_MS)
    expect(page.get_by_role("button", name="Send")).to_be_visible(timeout=TIMEOUT_MS)
    agent = log.locator("article.msg.agent").last
    assert agent.locator("[onerror], script, a[href^='javascript']").count() == 0
    assert page.evaluate("window.pwned") is None


def test_a_fast_stream_redraws_at_most_once_per_frame(page: Page, gateway: Gateway) -> None:
    open_console(page, gateway)
    send(page, "warm up")
    expect(messages(page).get_by_text("echo: warm up")).to_be_visible(timeout=TIMEOUT_MS)
    page.evaluate(
        """() => { window.frameCount = 0; window.redrawsBefore = window.argusStats.redraws;
                  const tick = () => { window.frameCount++; requestAnimationFrame(tick); };
                  requestAnimationFrame(tick); }"""
    )
    send(page, "/slow 400 2")
    last = "00000399"
    expect(messages(page).locator("article.msg.agent").last).to_contain_text(last, timeout=30_000)
    expect(page.get_by_role("button", name="Send")).to_be_visible(timeout=TIMEOUT_MS)
    stats: dict[str, Any] = page.evaluate(
        "() => ({frames: window.frameCount,"
        " redraws: window.argusStats.redraws - window.redrawsBefore,"
        " messages: window.argusStats.messages})"
    )
    # Hundreds of deltas arrived; the page redrew at most once per animation frame.
    assert stats["redraws"] <= stats["frames"] + 1, stats
    assert stats["messages"] > stats["redraws"], stats
    assert agent_texts(page)[-1] == "".join(f"{i:08d}" for i in range(400))


def test_stop_interrupts_the_turn(page: Page, gateway: Gateway) -> None:
    open_console(page, gateway)
    send(page, "/slow 400 30")
    expect(messages(page).get_by_text("00000003", exact=False)).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_role("button", name="Send")).to_have_count(0)
    page.get_by_role("button", name="Stop").click()
    # "stopping…" until turn/completed, then Send again.
    expect(page.get_by_role("button", name="Send")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_role("button", name="Stop")).to_have_count(0)
    assert "00000399" not in agent_texts(page)[-1]


def test_stopping_is_shown_until_the_turn_completes(page: Page, gateway: Gateway) -> None:
    open_console(page, gateway)
    send(page, "/slow 400 30")
    expect(page.get_by_role("button", name="Stop")).to_be_visible(timeout=TIMEOUT_MS)
    # Hold the interrupt back so the in-between state is observable.
    page.evaluate(
        """() => { const real = WebSocket.prototype.send;
                  WebSocket.prototype.send = function (data) {
                    if (String(data).includes('turn/interrupt')) {
                      setTimeout(() => real.call(this, data), 1500); return; }
                    return real.call(this, data); }; }"""
    )
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_role("button", name="stopping…")).to_be_disabled()
    expect(page.get_by_role("button", name="Send")).to_be_visible(timeout=TIMEOUT_MS)


def _threads_with_turns(count: int) -> Any:
    async def body(party: WsParty) -> list[str]:
        ids = []
        for i in range(count):
            thread = (await party.request("thread/start", {}))["thread"]["id"]
            await party.turn(thread, f"/quiet topic {i:02d}")
            ids.append(thread)
        return ids

    return body


def test_threads_page_and_history_loads(page: Page, gateway: Gateway) -> None:
    with_party(gateway, "default", _threads_with_turns(30))
    open_console(page, gateway)
    threads = page.get_by_role("navigation", name="Threads")
    expect(threads.get_by_role("button", name="/quiet topic 29")).to_be_visible(timeout=TIMEOUT_MS)
    # The newest opens; 25 per page, the rest behind "Load more threads".
    expect(messages(page).locator("article.msg.agent .md")).to_have_text(["topic 29"])
    expect(threads.locator("li")).to_have_count(25)
    expect(threads.get_by_role("button", name="/quiet topic 00")).to_have_count(0)
    threads.get_by_role("button", name="Load more threads").click()
    expect(threads.locator("li")).to_have_count(30)
    threads.get_by_role("button", name="/quiet topic 00").click()
    expect(messages(page).locator("article.msg.user .plain")).to_have_text(["/quiet topic 00"])
    expect(messages(page).locator("article.msg.agent .md")).to_have_text(["topic 00"])


def test_a_2000_item_thread_is_windowed_and_stays_usable(page: Page, gateway: Gateway) -> None:
    async def body(party: WsParty) -> None:
        thread = (await party.request("thread/start", {}))["thread"]["id"]
        await party.turn(thread, "/fill 2000")

    with_party(gateway, "default", body)
    open_console(page, gateway)
    log = messages(page)
    expect(log).to_have_attribute("data-count", "2001", timeout=TIMEOUT_MS)
    expect(log.get_by_text("history item 1999: answer text")).to_be_visible()
    rendered = log.locator("[data-item-id]").count()
    assert 0 < rendered < 100, rendered  # windowed: a screenful, not 2,001 nodes
    log.evaluate("el => { el.scrollTop = 0; }")
    expect(log.get_by_text("/fill 2000")).to_be_visible()
    expect(log.get_by_text("history item 0: question")).to_be_visible()
    send(page, "still responsive")
    expect(log.get_by_text("echo: still responsive")).to_be_visible(timeout=TIMEOUT_MS)
    expect(log).to_have_attribute("data-count", "2003")


def test_input_typed_while_disconnected_is_sent_once_on_reconnect(
    page: Page, gateway: Gateway
) -> None:
    open_console(page, gateway)
    send(page, "before the outage")
    expect(messages(page).get_by_text("echo: before the outage")).to_be_visible(timeout=TIMEOUT_MS)
    gateway.stop()
    expect(page.get_by_role("status")).not_to_have_text("connected", timeout=TIMEOUT_MS)
    send(page, "typed while away")
    expect(page.get_by_role("note")).to_contain_text("typed while away")
    gateway.start()
    expect(page.get_by_role("status")).to_have_text("connected", timeout=30_000)
    expect(messages(page).get_by_text("echo: typed while away")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_role("note")).to_have_count(0)
    session_id = sessions(gateway)[0]["sessionId"]

    async def history(party: WsParty) -> list[str]:
        threads = (await party.request("thread/list", {}))["data"]
        thread = await party.request(
            "thread/read", {"threadId": threads[0]["id"], "includeTurns": True}
        )
        return [
            item["content"][0]["text"]
            for turn in thread["thread"]["turns"]
            for item in turn["items"]
            if item["type"] == "userMessage"
        ]

    assert with_party(gateway, session_id, history) == ["before the outage", "typed while away"]

"""Approvals in the browser: cards with the command and one button per decision, answered
in one browser context and closed in every other, shown again after a reload."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from tests.browser.gateway import Gateway
from tests.browser.helpers import TIMEOUT_MS, agent_texts, messages, open_console, send


def test_approval_answered_in_one_browser_closes_in_every_other(
    browser: Browser, gateway: Gateway
) -> None:
    first = browser.new_context().new_page()
    second = browser.new_context().new_page()
    open_console(first, gateway)
    send(first, "hello")
    expect(messages(first).get_by_text("echo: hello")).to_be_visible(timeout=TIMEOUT_MS)
    send(first, "/approve touch /tmp/x")
    expect(first.get_by_role("group", name="Approve command")).to_be_visible(timeout=TIMEOUT_MS)
    # The gateway gives a pending request to its turn's owner and to every client that
    # attaches while it is pending: the second browser opens the same session now.
    open_console(second, gateway)
    for page in (first, second):
        card = page.get_by_role("group", name="Approve command")
        expect(card).to_be_visible(timeout=TIMEOUT_MS)
        expect(card.locator("pre")).to_have_text("touch /tmp/x")
        names = [b.inner_text() for b in card.get_by_role("button").all()]
        assert names == ["Accept", "Decline", "Cancel"]
        expect(page.get_by_role("link", name="1 pending approval")).to_be_visible()

    second.get_by_role("button", name="Accept").click()
    for page in (first, second):
        expect(page.get_by_role("group", name="Approve command")).to_have_count(
            0, timeout=TIMEOUT_MS
        )
        expect(page.get_by_role("link", name="1 pending approval")).to_have_count(0)
        expect(messages(page).locator("article.msg.agent .md").last).to_have_text(
            "approved", timeout=TIMEOUT_MS
        )
        expect(page.get_by_role("button", name="Send")).to_be_visible(timeout=TIMEOUT_MS)


def test_pending_approval_is_shown_again_after_a_reload(page: Page, gateway: Gateway) -> None:
    open_console(page, gateway)
    send(page, "/approve rm -rf build")
    expect(page.get_by_role("group", name="Approve command")).to_be_visible(timeout=TIMEOUT_MS)
    page.reload()
    expect(page.get_by_role("status")).to_have_text("connected", timeout=TIMEOUT_MS)
    card = page.get_by_role("group", name="Approve command")
    expect(card).to_be_visible(timeout=TIMEOUT_MS)
    expect(card.locator("pre")).to_have_text("rm -rf build")
    expect(page.get_by_role("link", name="1 pending approval")).to_be_visible()
    # The folded command item shows it is waiting.
    expect(messages(page).locator("details.command")).to_contain_text("rm -rf build")
    card.get_by_role("button", name="Decline").click()
    expect(card).to_have_count(0)
    expect(messages(page).locator("article.msg.agent .md").last).to_have_text(
        "declined", timeout=TIMEOUT_MS
    )
    expect(messages(page).locator("details.command")).to_contain_text("declined")
    assert agent_texts(page).count("declined") == 1


def test_badge_counts_cards_across_threads(page: Page, gateway: Gateway) -> None:
    open_console(page, gateway)
    send(page, "/approve first command")
    expect(page.get_by_role("link", name="1 pending approval")).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_role("button", name="New thread").click()
    expect(messages(page)).to_have_attribute("data-count", "0", timeout=TIMEOUT_MS)
    send(page, "/approve second command")
    expect(page.get_by_role("link", name="2 pending approvals")).to_be_visible(timeout=TIMEOUT_MS)
    cards = page.get_by_role("group", name="Approve command")
    expect(cards).to_have_count(2)
    cards.filter(has_text="first command").get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("link", name="1 pending approval")).to_be_visible(timeout=TIMEOUT_MS)

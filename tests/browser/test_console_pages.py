"""The supervision pages in the browser: Sessions, Nodes, Automation, Health; signing in with
a token (never in a URL); the page at phone width."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import ADMIN
from tests.browser.gateway import Gateway, env_without_argus
from tests.browser.helpers import TIMEOUT_MS, messages, open_console, send, sessions


@pytest.fixture
def secured(gateway_factory) -> Gateway:  # type: ignore[no-untyped-def]
    """A gateway with an admin token."""
    return gateway_factory(ARGUS_TOKEN=ADMIN)


def test_sign_in_keeps_the_token_out_of_urls(browser: Browser, secured: Gateway) -> None:
    context = browser.new_context()
    page = context.new_page()
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    page.on("websocket", lambda ws: urls.append(ws.url))
    page.goto(secured.console_url)
    page.get_by_label("Token").fill("wrong-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That token was refused.")
    page.get_by_label("Token").fill(ADMIN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("status")).to_have_text("connected", timeout=TIMEOUT_MS)
    send(page, "signed in")
    expect(messages(page).get_by_text("echo: signed in")).to_be_visible(timeout=TIMEOUT_MS)
    assert any("/ws?" in u for u in urls)
    assert not [u for u in urls if ADMIN in u or "token=" in u]
    assert page.evaluate("sessionStorage.getItem('argus.token')") == ADMIN
    assert page.evaluate("localStorage.length") == 0
    # A reload keeps the tab signed in; a new tab (new context) asks again.
    page.reload()
    expect(page.get_by_role("status")).to_have_text("connected", timeout=TIMEOUT_MS)
    other = browser.new_context().new_page()
    other.goto(secured.console_url)
    expect(other.get_by_label("Token")).to_be_visible()


def test_sessions_list_switch_create_and_delete(page: Page, gateway: Gateway) -> None:
    open_console(page, gateway)
    send(page, "in the first session")
    expect(messages(page).get_by_text("echo: in the first session")).to_be_visible(
        timeout=TIMEOUT_MS
    )
    first = sessions(gateway)[0]["sessionId"]
    page.get_by_role("link", name="Sessions").click()
    expect(page.get_by_text("Creating a session starts a new runtime process")).to_be_visible()
    row = page.get_by_role("row", name=f"Session {first}")
    expect(row).to_contain_text("current")
    expect(row).to_contain_text("running")
    page.get_by_role("button", name="Create session").click()
    expect(page.get_by_role("status")).to_have_text("connected", timeout=TIMEOUT_MS)
    expect(messages(page)).to_have_attribute("data-count", "0")
    gateway.wait_for(lambda: len(sessions(gateway)) == 2)
    second = next(s["sessionId"] for s in sessions(gateway) if s["sessionId"] != first)
    page.get_by_role("link", name="Sessions").click()
    expect(page.get_by_role("row", name=f"Session {second}")).to_contain_text("current")
    page.get_by_role("row", name=f"Session {first}").get_by_role("button", name="Open").click()
    expect(messages(page).get_by_text("echo: in the first session")).to_be_visible(
        timeout=TIMEOUT_MS
    )
    page.get_by_role("link", name="Sessions").click()
    target = page.get_by_role("row", name=f"Session {second}")
    target.get_by_role("button", name="Delete").click()
    expect(target.get_by_role("alertdialog")).to_contain_text("Its runtime stops")
    target.get_by_role("button", name="Cancel").click()
    assert len(sessions(gateway)) == 2  # nothing happens without the confirm
    target.get_by_role("button", name="Delete").click()
    target.get_by_role("button", name="Delete for good").click()
    expect(page.get_by_role("row", name=f"Session {second}")).to_have_count(0, timeout=TIMEOUT_MS)
    assert [s["sessionId"] for s in sessions(gateway)] == [first]


@pytest.fixture
def laptop_node(secured: Gateway, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``argus node-host`` connected to the secured gateway."""
    env = {**env_without_argus(), "ARGUS_NODE_TOKEN": ADMIN}
    url = secured.base_url.replace("http", "ws", 1) + "/nodes/ws"
    argv = [sys.executable, "-m", "argus", "node-host", "--url", url, "--node-id", "laptop"]
    argv += ["--state-dir", str(tmp_path / "node-state")]
    process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield process
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()


def test_nodes_listed_and_invoked(page: Page, secured: Gateway, laptop_node: object) -> None:
    open_console(page, secured, token=ADMIN)
    page.get_by_role("link", name="Nodes").click()
    node = page.get_by_role("listitem", name="Node laptop")
    expect(node).to_be_visible(timeout=TIMEOUT_MS)  # the page refreshes by itself
    expect(node).to_contain_text("system.run")
    expect(node).to_contain_text(re.compile(r"Last seen \d+ s ago"))
    form = page.get_by_role("form", name="Invoke a command")
    form.get_by_label("Node").select_option("laptop")
    form.get_by_label("Params (JSON)").fill("{not json")
    form.get_by_role("button", name="Invoke").click()
    expect(form.get_by_role("alert")).to_have_text("Params must be valid JSON")
    form.get_by_label("Params (JSON)").fill('{"argv": ["echo", "hello from the console"]}')
    form.get_by_label("Timeout (ms)").fill("")
    form.get_by_role("button", name="Invoke").click()
    expect(form.get_by_role("alert")).to_contain_text("Timeout must be a whole number")
    form.get_by_label("Timeout (ms)").fill("1.5")
    form.get_by_role("button", name="Invoke").click()
    expect(form.get_by_role("alert")).to_contain_text("Timeout must be a whole number")
    form.get_by_label("Timeout (ms)").fill("20000")
    form.get_by_role("button", name="Invoke").click()
    result = form.get_by_label("Invoke result")
    expect(result).to_contain_text("hello from the console", timeout=TIMEOUT_MS)
    expect(result).to_contain_text('"ok": true')


def test_automation_cron_heartbeat_and_system_event(page: Page, gateway: Gateway) -> None:
    open_console(page, gateway)
    send(page, "hello")
    expect(messages(page).get_by_text("echo: hello")).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_role("link", name="Automation").click()
    form = page.get_by_role("form", name="New cron job")
    form.get_by_label("Schedule (cron)").fill("* * * * * *")  # every second
    form.get_by_label("Text").fill("tick from cron")
    form.get_by_role("button", name="Create job").click()
    created = page.get_by_text(re.compile(r"^Created job \w+$"))
    expect(created).to_be_visible(timeout=TIMEOUT_MS)
    job_id = created.inner_text().split()[-1]
    row = page.get_by_role("row", name=f"Job {job_id}")
    expect(row).to_contain_text("tick from cron")
    expect(row.get_by_role("cell").nth(4)).not_to_have_text("—", timeout=TIMEOUT_MS)  # it ran
    row.get_by_role("button", name="Runs").click()
    expect(page.get_by_label("Run history").locator("li").first).to_be_visible()
    row.get_by_role("button", name="Disable").click()
    expect(row).to_contain_text("disabled", timeout=TIMEOUT_MS)
    row.get_by_role("button", name="Enable").click()
    expect(row).not_to_contain_text("disabled", timeout=TIMEOUT_MS)
    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("row", name=f"Job {job_id}")).to_have_count(0, timeout=TIMEOUT_MS)

    page.get_by_role("button", name="Heartbeat now").click()
    expect(page.get_by_text("Heartbeat requested")).to_be_visible()
    events = page.get_by_role("form", name="System event")
    events.get_by_label("Event text").fill("the build finished")
    events.get_by_role("button", name="Queue event").click()
    expect(page.get_by_text(re.compile(r"^Queued event \w+"))).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_role("status")).to_have_text("connected")  # the pill is the one status


def test_health_shows_gateway_and_frames(page: Page, gateway: Gateway) -> None:
    open_console(page, gateway)
    page.get_by_role("link", name="Health").click()
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text('200 {"ok":true}', timeout=TIMEOUT_MS)
    expect(facts).to_contain_text("0.1.0")
    frames = page.get_by_role("list", name="Frame log")
    expect(frames).to_contain_text("argus/session")
    expect(frames).to_contain_text('"method":"initialize"')


@pytest.mark.parametrize("route", ["chat", "sessions", "nodes", "automation", "health"])
def test_phone_width(browser: Browser, gateway: Gateway, route: str) -> None:
    page = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True).new_page()
    open_console(page, gateway)
    page.get_by_role("link", name=route.capitalize()).click()
    for name in ("Chat", "Sessions", "Nodes", "Automation"):
        expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    if route == "chat":
        expect(page.get_by_role("textbox", name="Message")).to_be_visible()
        expect(page.get_by_role("button", name="Send")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{route} scrolls sideways by {overflow}px at phone width"

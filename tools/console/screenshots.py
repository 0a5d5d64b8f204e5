"""Take the screenshots in docs/console.md: ``.venv/bin/python tools/console/screenshots.py``.

Runs a real gateway (demo runtime) and Debian's Chromium, fills each page with something to
show, and writes docs/console/<page>.png.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser.gateway import Gateway  # noqa: E402

OUT = REPO / "docs" / "console"


def main() -> None:
    """Write every screenshot."""
    OUT.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="argus-shots-"))
    gw = Gateway(home, {"ARGUS_TOKEN": "screenshot-token"}).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            page.goto(gw.console_url)
            page.screenshot(path=OUT / "signin.png")
            page.get_by_label("Token").fill("screenshot-token")
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("status").filter(has_text="connected").wait_for()
            box = page.get_by_role("textbox", name="Message")
            for text in (
                "Summarise the plan in **three** bullets:\n- build\n- test\n- ship",
                "/think weighing the options",
                "/approve make test",
            ):
                box.fill(text)
                page.get_by_role("button", name="Send").click()
                page.wait_for_timeout(700)
            page.get_by_role("group", name="Approve command").wait_for()
            page.locator("details.reasoning summary").first.click()
            page.screenshot(path=OUT / "chat.png")
            page.get_by_role("button", name="Accept").click()
            page.get_by_role("button", name="Send").wait_for()
            page.get_by_role("link", name="Sessions").click()
            page.get_by_role("button", name="Create session").wait_for()
            page.wait_for_timeout(300)
            page.screenshot(path=OUT / "sessions.png")
            page.get_by_role("link", name="Nodes").click()
            page.get_by_role("listitem").first.wait_for()
            page.get_by_role("button", name="Invoke").click()
            page.get_by_label("Invoke result").filter(has_text="ok").wait_for()
            page.screenshot(path=OUT / "nodes.png", full_page=True)
            page.get_by_role("link", name="Automation").click()
            form = page.get_by_role("form", name="New cron job")
            form.get_by_label("Text").fill("Check the build dashboard")
            form.get_by_role("button", name="Create job").click()
            page.get_by_text("Created job").wait_for()
            page.screenshot(path=OUT / "automation.png", full_page=True)
            page.get_by_role("link", name="Health").click()
            page.locator("dl.facts").filter(has_text="200").wait_for()
            page.screenshot(path=OUT / "health.png")
            phone = browser.new_context(
                viewport={"width": 390, "height": 780}, is_mobile=True, device_scale_factor=1
            ).new_page()
            phone.goto(gw.console_url)
            phone.get_by_label("Token").fill("screenshot-token")
            phone.get_by_role("button", name="Sign in").click()
            phone.get_by_role("status").filter(has_text="connected").wait_for()
            phone.locator("article.msg.agent").last.wait_for()
            phone.wait_for_timeout(500)
            phone.screenshot(path=OUT / "phone.png")
            browser.close()
    finally:
        gw.close()
        shutil.rmtree(home, ignore_errors=True)
    print(f"wrote {sorted(p.name for p in OUT.glob('*.png'))}")


if __name__ == "__main__":
    main()

"""The web console, measured in Debian's Chromium (``python -m bench --only console``).

- JS size: every module the page loads, minified and gzipped (``esbuild --bundle --minify``
  of app.js when node_modules has esbuild, else the served files gzipped as they are, which
  is an upper bound); target <= 100 KB.
- The time to render a 2,000-item thread: from the click on the thread to the frame after
  its last item is in the DOM (thread/read round trip included), on a freshly loaded page.
- Keypress to first streamed character: from the ``keydown`` of Enter in the Message box to
  the first character of the agent's answer in the DOM (the demo runtime echoes at once).

The gateway is a real subprocess on 127.0.0.1 running the demo runtime.
"""

from __future__ import annotations

import gzip
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONSOLE = REPO / "argus" / "console"
CHROMIUM = "/usr/bin/chromium"
ESBUILD = REPO / "node_modules" / ".bin" / "esbuild"

Row = dict[str, Any]


def js_size_rows() -> list[Row]:
    """Minified+gzipped size of the console's JavaScript."""
    served = sum(len(gzip.compress(p.read_bytes(), 9)) for p in CONSOLE.glob("*.js"))
    rows = [
        {"bench": "console", "case": "JS served, gzipped", "value": served / 1024, "unit": "KB"}
    ]
    if ESBUILD.exists():
        out = subprocess.run(
            [str(ESBUILD), str(CONSOLE / "app.js"), "--bundle", "--minify", "--format=esm"],
            capture_output=True,
            check=True,
        ).stdout
        size = len(gzip.compress(out, 9)) / 1024
        rows.append(
            {"bench": "console", "case": "JS minified+gzipped", "value": size, "unit": "KB"}
        )
    return rows


def _setup(gw: Any) -> None:
    """A 2,000-item thread, then a short thread (the newest, so the page opens that one)."""
    from tests.browser.helpers import WsParty, with_party

    async def body(party: WsParty) -> None:
        big = (await party.request("thread/start", {}))["thread"]["id"]
        await party.turn(big, "/fill 2000")
        small = (await party.request("thread/start", {}))["thread"]["id"]
        await party.turn(small, "short thread")

    with_party(gw, None, body)


RENDER_JS = """async (name) => {
  const button = [...document.querySelectorAll('nav[aria-label="Threads"] button')]
    .find((b) => b.textContent.trim() === name);
  const t0 = performance.now();
  button.click();
  const last = 'history item 1999: answer text';
  while (!document.querySelector('[role="log"]')?.textContent.includes(last)) {
    await new Promise((r) => requestAnimationFrame(r));
  }
  await new Promise((r) => requestAnimationFrame(r));
  return performance.now() - t0;
}"""

FIRST_CHAR_JS = """() => { window.__benchFirst = new Promise((resolve) => {
  const box = document.querySelector('textarea[aria-label="Message"]');
  const log = document.querySelector('[role="log"]');
  const ids = () => [...log.querySelectorAll('[data-item-id]')];
  const before = new Set(ids().map((el) => el.dataset.itemId));
  let t0 = null;
  box.addEventListener('keydown', (e) => { if (e.key === 'Enter') t0 = performance.now(); },
    { once: true });
  const seen = new MutationObserver(() => {
    const fresh = ids().filter((el) => !before.has(el.dataset.itemId));
    const answer = fresh.find((el) => el.querySelector('article.msg.agent .md')?.textContent);
    if (t0 !== null && answer) { seen.disconnect(); resolve(performance.now() - t0); }
  });
  seen.observe(log, { childList: true, subtree: true, characterData: true });
}); }"""


def browser_rows(quick: bool) -> list[Row]:
    """Render and keypress figures, measured in the page."""
    from playwright.sync_api import sync_playwright

    from tests.browser.gateway import Gateway

    runs = 3 if quick else 7
    home = Path(tempfile.mkdtemp(prefix="argus-console-bench-"))
    gw = Gateway(home).start()
    rows: list[Row] = []
    try:
        _setup(gw)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(gw.console_url)
            page.get_by_role("status").filter(has_text="connected").wait_for()
            threads = page.get_by_role("navigation", name="Threads")
            renders = []
            for _ in range(runs):
                threads.get_by_role("button", name="short thread").click()
                page.get_by_text("echo: short thread").wait_for()
                page.reload()
                page.get_by_role("status").filter(has_text="connected").wait_for()
                page.get_by_text("echo: short thread").wait_for()
                renders.append(page.evaluate(RENDER_JS, "/fill 2000"))
            rows.append(_row("render 2,000-item thread (median)", statistics.median(renders)))
            threads.get_by_role("button", name="short thread").click()
            page.get_by_text("echo: short thread").wait_for()
            box = page.get_by_role("textbox", name="Message")
            firsts = []
            for i in range(runs * 2):
                box.fill(f"bench {i}")
                page.evaluate(FIRST_CHAR_JS)
                box.press("Enter")
                firsts.append(page.evaluate("window.__benchFirst"))
                page.get_by_role("button", name="Send").wait_for()
            rows.append(_row("keypress -> first streamed char (median)", statistics.median(firsts)))
            rows.append(_row("keypress -> first streamed char (max)", max(firsts)))
            browser.close()
    finally:
        gw.close()
        shutil.rmtree(home, ignore_errors=True)
    return rows


def _row(case: str, ms: float) -> Row:
    return {"bench": "console", "case": case, "value": ms, "unit": "ms"}


def run(quick: bool = False) -> list[Row]:
    """Every console figure (the browser ones only when Chromium is installed)."""
    rows = js_size_rows()
    if Path(CHROMIUM).exists():
        rows += browser_rows(quick)
    else:
        print(f"console bench: {CHROMIUM} not found; browser figures skipped")
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row['case']:<45} {row['value']:8.1f} {row['unit']}")

"""Fixtures of the browser tier: Debian's Chromium under Playwright, and a real gateway.

Playwright is pointed at ``/usr/bin/chromium`` (``apt-get install chromium``); its own
browser download (``playwright install``) is never used. Without Chromium these tests skip
with a reason; ``ARGUS_REQUIRE_REAL_PEERS=1`` (set by .ci/run) turns that into a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.gateway import Gateway

CHROMIUM = os.environ.get("ARGUS_CHROMIUM", "/usr/bin/chromium")
ADMIN = "console-test-token"


def chromium_problem() -> str | None:
    """Why the browser tier cannot run here, or None."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"Chromium not found at {CHROMIUM}: apt-get install chromium (or run .ci/run)"
    if shutil.which("node") is None and not _playwright_driver():
        return "Playwright's driver is missing: pip install -e '.[dev]'"
    return None


def _playwright_driver() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Launch Debian's Chromium, never a downloaded one."""
    problem = chromium_problem()
    if problem:
        if os.environ.get("ARGUS_REQUIRE_REAL_PEERS") == "1":
            pytest.fail(f"{problem} (ARGUS_REQUIRE_REAL_PEERS=1)", pytrace=False)
        pytest.skip(problem)
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ["--no-sandbox"]}


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Any]:
    """``gateway_factory(**env)`` starts a gateway; every one is stopped after the test."""
    started: list[Gateway] = []
    counter = iter(range(100))

    def factory(**env: str) -> Gateway:
        gw = Gateway(tmp_path / f"home{next(counter)}", env).start()
        started.append(gw)
        return gw

    yield factory
    for gw in started:
        gw.close()


@pytest.fixture
def gateway(gateway_factory: Any) -> Gateway:
    """A gateway on its defaults (demo runtime, local mode, no token)."""
    return gateway_factory()

"""Fixtures of the real-peer tier: the real ``codex app-server`` and a fake model.

Without codex these tests skip with a reason, so ``make test`` works on a laptop without
npm. ``.ci/run`` sets ARGUS_REQUIRE_REAL_PEERS=1, which turns the skip into a failure: CI
cannot go green by silently skipping the tier that proves Argus works with real codex.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realpeer.codex_home import find_codex, make_codex_home
from tests.realpeer.fake_model import FakeModel

INSTALL_HINT = "run .ci/run or npm i @openai/codex"


def require(reason: str) -> None:
    """Skip with ``reason``, or fail when ARGUS_REQUIRE_REAL_PEERS=1 makes the peers mandatory."""
    if os.environ.get("ARGUS_REQUIRE_REAL_PEERS") == "1":
        pytest.fail(f"{reason} (ARGUS_REQUIRE_REAL_PEERS=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def codex_bin() -> str:
    """Path of the codex binary (see ``find_codex`` for the discovery order)."""
    path = find_codex()
    if path is None:
        explicit = os.environ.get("ARGUS_CODEX_BIN")
        if explicit:
            require(f"ARGUS_CODEX_BIN={explicit} is not an executable file; {INSTALL_HINT}")
        require(f"codex app-server not installed: {INSTALL_HINT}")
    assert path is not None
    return path


@pytest.fixture
def fake_model() -> Iterator[FakeModel]:
    """A started fake Responses-API server on 127.0.0.1 (port 0), stopped after the test."""
    with FakeModel() as model:
        yield model


@pytest.fixture
def codex_env(tmp_path: Path, fake_model: FakeModel) -> dict[str, str]:
    """Env overrides running codex offline against ``fake_model`` (``make_codex_home``)."""
    return make_codex_home(tmp_path, fake_model.base_url)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """This tier builds images and starts real peers: a longer per-test deadline (900 s)."""
    here = Path(__file__).parent
    for item in items:
        if (
            Path(str(item.fspath)).is_relative_to(here)
            and item.get_closest_marker("timeout") is None
        ):
            item.add_marker(pytest.mark.timeout(900))

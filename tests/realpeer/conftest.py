"""Fixtures of the real-peer tier: the real ``codex app-server`` and a fake model.

Without codex these tests skip with a reason; ``.ci/run`` sets ARGUS_REQUIRE_REAL_PEERS=1,
which turns the skip into a failure so CI cannot go green without them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.realpeer.codex_home import find_codex
from tests.realpeer.fake_model import FakeModel


def require(reason: str) -> None:
    """Skip, or fail when the real peers are mandatory."""
    if os.environ.get("ARGUS_REQUIRE_REAL_PEERS") == "1":
        pytest.fail(f"{reason} (ARGUS_REQUIRE_REAL_PEERS=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def codex_bin() -> str:
    """Path of the codex binary."""
    path = find_codex()
    if path is None:
        require("codex app-server is not installed: run .ci/run or npm i @openai/codex")
    assert path is not None
    return path


@pytest.fixture
def fake_model() -> Iterator[FakeModel]:
    """A fake Responses-API server on 127.0.0.1."""
    with FakeModel() as model:
        yield model

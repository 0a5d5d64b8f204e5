"""Shared fixtures: a running daemon per test, configurable through ``daemon_factory``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from tests.harness import Daemon, run_daemon

DaemonFactory = Callable[..., AbstractAsyncContextManager[Daemon]]


@pytest.fixture
def daemon_factory(tmp_path: Path) -> DaemonFactory:
    """``async with daemon_factory(*args, ENV=value) as d:`` starts a configured daemon."""
    counter = iter(range(1000))

    def factory(*args: str, **env: str) -> AbstractAsyncContextManager[Daemon]:
        return run_daemon(tmp_path / f"home{next(counter)}", *args, env=env)

    return factory


@pytest.fixture
async def daemon(daemon_factory: DaemonFactory) -> AsyncIterator[Daemon]:
    """The daemon on its defaults (local mode, demo runtime, no token), port 0."""
    async with daemon_factory() as d:
        yield d

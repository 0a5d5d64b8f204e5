"""Shared fixtures: a running daemon per test, configurable through ``daemon_factory``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from argus.auth import SECRET_FILE, derive_session_token
from argus.testing import LOG_SINKS
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


# -- no credential in any daemon log -------------------------------------------------------

SESSION_TOKEN_RE = re.compile(r"ast\.[A-Za-z0-9_-]{1,64}\.[0-9a-f]{64}")
_leaks: list[str] = []


def _secrets_of(daemon: Daemon, env: dict[str, str]) -> set[str]:
    """Every credential this daemon knew: admin, node and bot tokens, each session's token."""
    names = ("ARGUS_TOKEN", "ARGUS_NODE_TOKEN", "ARGUS_TELEGRAM_BOT_TOKEN", "TELEGRAM_BOT_TOKEN")
    found = {v for k, v in env.items() if k in names and v}
    secret_file = daemon.home / SECRET_FILE
    secret = env.get("ARGUS_TOKEN") or (
        secret_file.read_text().strip() if secret_file.is_file() else ""
    )
    if secret:
        for session_dir in (daemon.home / "sessions").glob("*"):
            found.add(derive_session_token(secret, session_dir.name))
    return {s for s in found if len(s) >= 8}


def _scan_log(daemon: Daemon, env: dict[str, str]) -> None:
    secrets = _secrets_of(daemon, env)
    for line in daemon.log_lines:
        if SESSION_TOKEN_RE.search(line) or any(s in line for s in secrets):
            _leaks.append(line[:300])


LOG_SINKS.append(_scan_log)


@pytest.fixture(autouse=True)
def no_token_in_daemon_logs() -> Iterator[None]:
    """Fails a test if any daemon it ran logged a token (admin, node or session)."""
    _leaks.clear()
    yield
    leaked, _leaks[:] = list(_leaks), []
    assert not leaked, f"a token appeared in a daemon log: {leaked[:3]}"

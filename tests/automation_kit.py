"""An automation engine over in-process demo runtimes, for tests on the autojump clock.

The runtime is the real ``argus.demo_runtime.DemoRuntime`` (the same code ``argus
demo-runtime`` runs), served inside the test's trio run over an in-memory stream instead
of a child process, so turn pacing (``/slow``), hangs (``/approve``) and the engine's
timers all run on the trio clock, and ``autojump_clock`` can skip hours in milliseconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
import trio.testing

from argus.automation.service import Automation
from argus.config import Settings
from argus.demo_runtime import DemoRuntime
from argus.provision.base import ExitStatus, Provisioner, Runtime
from argus.sessions.manager import SessionManager, SessionTable
from argus.store.db import Store, open_store


class InProcessRuntime(Runtime):
    """A DemoRuntime reached through an in-memory byte stream."""

    def __init__(self, home: Path, nursery: trio.Nursery) -> None:
        self.gateway_end, runtime_end = trio.testing.memory_stream_pair()
        self.demo = DemoRuntime(home, runtime_end)  # type: ignore[arg-type]
        self.demo.nursery = nursery
        self.info = {"pid": 0}
        self._buf = b""

    async def receive_some(self, max_bytes: int) -> bytes:
        """What the runtime wrote."""
        return await self.gateway_end.receive_some(max_bytes)

    async def send_all(self, data: bytes) -> None:
        """Feed whole lines to the runtime, in order."""
        *lines, self._buf = (self._buf + data).split(b"\n")
        for line in lines:
            await self.demo.handle_line(line)

    async def wait_exit(self) -> ExitStatus:
        """It only ends when the session stops it."""
        return ExitStatus(code=0, signal=None, stderr_tail="")


class InProcessProvisioner(Provisioner):
    """Runs each session's runtime as an in-process DemoRuntime."""

    mode = "local"

    def __init__(self, home: Path) -> None:
        self.home = home
        self.runtimes: dict[str, InProcessRuntime] = {}

    def workspace(self, session_id: str) -> tuple[Path | None, str | None]:
        """A workspace per session under the test's home."""
        path = self.home / "sessions" / session_id / "workspace"
        path.mkdir(parents=True, exist_ok=True)
        return path, str(path)

    @asynccontextmanager
    async def open_runtime(self, session_id: str) -> AsyncIterator[Runtime]:
        """A fresh runtime; its turns are cancelled when the session stops it."""
        async with trio.open_nursery() as nursery:
            runtime = InProcessRuntime(self.home / "sessions" / session_id / "demo", nursery)
            self.runtimes[session_id] = runtime
            try:
                yield runtime
            finally:
                nursery.cancel_scope.cancel()


class Kit:
    """A running engine, manager and store; ``engine.wall_ms`` follows the trio clock."""

    def __init__(
        self, settings: Settings, store: Store, engine: Automation, manager: SessionManager
    ) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.manager = manager

    async def call(self, session: Any, method: str, **params: Any) -> Any:
        """An ``argus/*`` call as a client would make it."""
        return await self.engine.call_gateway_method(session, method, params)


WALL_BASE_MS = 1_795_000_000_000  # 2026-11-18: a fixed wall clock, advanced by trio time


@asynccontextmanager
async def open_kit(home: Path, **overrides: Any) -> AsyncIterator[Kit]:
    """Store + engine + manager over in-process runtimes, served until the block ends."""
    settings = Settings(home_host_path=home, **overrides)
    store = await open_store(home, inline=True)

    async def inline(fn: Any, *args: Any) -> Any:
        await trio.lowlevel.checkpoint()
        return fn(*args)

    sessions = SessionTable()
    engine = Automation(
        settings,
        store,
        sessions,
        wall_ms=lambda: WALL_BASE_MS + int(trio.current_time() * 1000),
        offload=inline,
    )
    provisioner = InProcessProvisioner(home)
    manager = SessionManager(settings, provisioner, hooks=engine, store=store, sessions=sessions)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(manager.serve)
            await nursery.start(engine.serve)
            yield Kit(settings, store, engine, manager)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()

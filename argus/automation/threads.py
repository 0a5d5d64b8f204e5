"""The daemon's own threads in a runtime connection (part of ``Engine``).

Why a module of its own: which threads the current runtime connection has loaded, and the
daemon's ``thread/start`` / ``thread/resume`` with its approval and sandbox policy, are one
concern that the lane workers, the heartbeat and the ``argus/thread/main/ensure`` method
share. ``thread/resume`` is sent only for a thread not loaded in the current connection
(``loaded`` tracks thread ids per ``Session.runtime_generation``, bounded per session).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from ..protocol import codes
from ..sessions.internal_calls import RuntimeCallError
from ..sessions.session import Session
from ..store import records

if TYPE_CHECKING:
    from ..config import Settings
    from ..store.db import Store

log = logging.getLogger("argus.automation.engine")

START_TIMEOUT_S = 120.0
LOADED_MAX = 10_000  # threads remembered per session; past it they are simply resumed again


class ThreadLoading:
    """The loaded-threads half of ``Engine`` (it provides the attributes used here)."""

    settings: Settings
    store: Store
    loaded: dict[str, tuple[int, set[str]]]
    main_locks: dict[str, trio.Lock]

    def _mark_loaded(self, session: Session, thread_id: Any) -> None:
        if type(thread_id) is not str:
            return
        generation, threads = self.loaded.get(session.id, (-1, set()))
        if generation != session.runtime_generation:
            threads = set()
            self.loaded[session.id] = (session.runtime_generation, threads)
        if len(threads) < LOADED_MAX:
            threads.add(thread_id)

    def is_loaded(self, session: Session, thread_id: str) -> bool:
        """Whether the current runtime connection has ``thread_id`` loaded."""
        generation, threads = self.loaded.get(session.id, (-1, set()))
        return generation == session.runtime_generation and thread_id in threads

    def thread_policy(self) -> dict[str, Any]:
        """Approval and sandbox of the daemon's threads (safe defaults, configurable)."""
        return {
            "approvalPolicy": self.settings.automation_approval_policy,
            "sandbox": self.settings.automation_sandbox,
        }

    async def ensure_loaded(self, session: Session, thread_id: str) -> None:
        """``thread/resume`` unless the thread is loaded in this runtime connection."""
        if session.state == "running" and self.is_loaded(session, thread_id):
            return
        params = {"threadId": thread_id, **self.thread_policy()}
        cwd = session.workspace_cwd()
        if cwd:
            params["cwd"] = cwd
        await session.call("thread/resume", params, timeout=START_TIMEOUT_S)
        self._mark_loaded(session, thread_id)

    async def start_thread(self, session: Session) -> str:
        """``thread/start`` with the daemon's policy; the new thread's id."""
        params: dict[str, Any] = dict(self.thread_policy())
        cwd = session.workspace_cwd()
        if cwd:
            params["cwd"] = cwd
        result = await session.call("thread/start", params, timeout=START_TIMEOUT_S)
        thread = result.get("thread") if isinstance(result, dict) else None
        thread_id = thread.get("id") if isinstance(thread, dict) else None
        if not isinstance(thread_id, str) or not thread_id.strip():
            raise RuntimeCallError(
                {
                    "code": codes.GATEWAY_ERROR,
                    "message": "Invalid thread/start response (missing thread.id)",
                }
            )
        self._mark_loaded(session, thread_id)
        return thread_id

    async def ensure_main_thread(self, session: Session) -> str:
        """The session's main thread, created once: serialised per session."""
        lock = self.main_locks.setdefault(session.id, trio.Lock())
        async with lock:
            existing = await self.store.run(records.get_main_thread, session.id)
            if existing:
                try:
                    await self.ensure_loaded(session, existing)
                    return existing
                except RuntimeCallError as exc:
                    log.warning(
                        "cannot resume main thread, starting a new one session=%s thread=%s: %s",
                        session.id,
                        existing,
                        exc,
                    )
            thread_id = await self.start_thread(session)
            await self.store.run(records.set_main_thread, session.id, thread_id)
            log.info("main thread created session=%s thread=%s", session.id, thread_id)
            return thread_id

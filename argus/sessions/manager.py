"""The set of live sessions, owned by one nursery under the daemon.

Why a manager: sessions must outlive the WebSocket handlers that create them (a client
leaving never stops a runtime), so each session's nursery is a child of this one rather
than of any connection. The manager also bounds how many sessions exist
(ARGUS_MAX_SESSIONS; past it a new session is refused, never silently evicted).
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import trio

from ..boundary import contained
from ..config import Settings
from ..procs import now_ms
from ..protocol import codes
from ..provision.base import Provisioner, ProvisionError
from ..store import records
from ..store.db import Store
from .hooks import NO_HOOKS, SessionHooks
from .session import Session, SessionGone

log = logging.getLogger(__name__)

SESSION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class TooManySessions(Exception):
    """ARGUS_MAX_SESSIONS sessions exist already."""


def valid_session_id(value: str) -> bool:
    """Session ids are path components and container names: keep them tame."""
    return bool(SESSION_ID_RE.match(value))


class SessionTable(dict[str, Session]):
    """The live sessions by id: written by the manager, read by whoever needs a lookup.

    Why a table of its own: the manager calls automation (its ``SessionHooks``) and
    automation looks sessions up by id. Both get this one table through their
    constructors, so neither needs the other wired in after construction. Its size is
    bounded by the manager (ARGUS_MAX_SESSIONS).
    """


class SessionManager:
    """Creates, finds and stops sessions."""

    def __init__(
        self,
        settings: Settings,
        provisioner: Provisioner,
        hooks: SessionHooks = NO_HOOKS,
        store: Store | None = None,
        sessions: SessionTable | None = None,
    ) -> None:
        self.settings = settings
        self.provisioner = provisioner
        self.hooks = hooks
        self.store = store
        self.sessions = sessions if sessions is not None else SessionTable()
        self._nursery: trio.Nursery | None = None

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own every session's nursery until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self._restore()
            task_status.started()
            await trio.sleep_forever()

    async def _restore(self) -> None:
        """Bring back the sessions the store knows (their runtimes start on first use)."""
        if self.store is None:
            return
        assert self._nursery is not None
        for row in await self.store.run(records.list_sessions):
            if row["id"] in self.sessions or not valid_session_id(row["id"]):
                continue
            session = Session(
                row["id"], self.provisioner, self.settings, created=False, hooks=self.hooks
            )
            session.created_at_ms = row["createdAtMs"]
            self.sessions[session.id] = session
            await self._nursery.start(session.serve)
        if self.sessions:
            log.info("sessions restored from the store count=%s", len(self.sessions))

    async def readopt_live(self) -> None:
        """Reconnect, in the background, to runtimes that kept running while we were away.

        Called by the daemon once runtimes can reach the gateway (after HTTP is bound).
        Runtimes no known session owns are removed first (orphan containers); the index
        is never pruned from what the engine lists.
        """
        assert self._nursery is not None
        try:
            await self.provisioner.collect_orphans(list(self.sessions))
        except ProvisionError as exc:
            log.warning("orphan collection skipped: %s", exc)
        if getattr(self.provisioner, "stops_idle_runtimes", False):
            self._nursery.start_soon(contained(self.serve_idle_reaper, "idle reaper"))
        for session_id in await self.provisioner.live_sessions(list(self.sessions)):
            what = f"re-adopting session={session_id}"
            self._nursery.start_soon(contained(self._readopt, what), self.sessions[session_id])

    async def _readopt(self, session: Session) -> None:
        """Reconnect to a runtime that kept running while the gateway was away."""
        try:
            await session.ensure_running()
            log.info("runtime re-adopted session=%s", session.id)
        except (ProvisionError, SessionGone) as exc:
            log.warning("cannot re-adopt runtime session=%s: %s", session.id, exc)

    def get(self, session_id: str) -> Session | None:
        """The live session with this id, if any."""
        return self.sessions.get(session_id)

    async def create(self) -> Session:
        """A new session (its runtime is started by the first attach)."""
        if len(self.sessions) >= self.settings.max_sessions:
            raise TooManySessions(f"session limit reached ({self.settings.max_sessions})")
        assert self._nursery is not None, "SessionManager.serve is not running"
        session_id = uuid.uuid4().hex[:12]
        session = Session(
            session_id, self.provisioner, self.settings, created=True, hooks=self.hooks
        )
        self.sessions[session_id] = session
        try:
            if self.store is not None:
                await self.store.run(
                    records.add_session, session_id, self.provisioner.mode, session.created_at_ms
                )
            await self._nursery.start(session.serve)
        except BaseException:
            self.sessions.pop(session_id, None)
            raise
        log.info("session created session=%s mode=%s", session_id, self.provisioner.mode)
        return session

    async def serve_idle_reaper(self) -> None:
        """Stop (not remove) runtimes with no client and no turn for ARGUS_SESSION_IDLE_S."""
        idle_ms = self.settings.session_idle_s * codes.CLOSE_NORMAL
        while True:
            await trio.sleep(max(0.5, min(30.0, self.settings.session_idle_s / 4)))
            now = now_ms()
            for session in list(self.sessions.values()):
                if session.state != "running" or session.subscribers:
                    continue
                if now - session.last_active_ms < idle_ms or self.hooks.session_busy(session.id):
                    continue
                log.info("stopping idle runtime session=%s", session.id)
                session.stop_runtime()

    async def delete(
        self,
        session_id: str,
        *,
        code: int = codes.CLOSE_GOING_AWAY,
        reason: str = "",
        purge: bool = False,
    ) -> bool:
        """Stop a session's runtime, close its clients with ``code`` and forget it."""
        session = self.sessions.pop(session_id, None)
        if session is None:
            return False
        session.stop(code, reason or "Session deleted")
        with trio.move_on_after(self.settings.stop_timeout_s * 3):
            await session.finished.wait()
        if self.store is not None:
            await self.store.run(records.delete_session, session_id)
        try:
            await self.provisioner.destroy(session_id, purge)
        except ProvisionError as exc:
            log.warning("cannot remove the runtime of session=%s: %s", session_id, exc)
        self.hooks.on_session_deleted(session_id)
        log.info("session deleted session=%s", session_id)
        return True

    async def stop_all(self, reason: str = "Server shutting down") -> None:
        """Graceful shutdown: every client gets 1001; bridged runtimes keep running.

        A detached runtime (bridge, container) carries on with its turns and is adopted by
        the next gateway; a plain child process is stopped.
        """
        sessions = list(self.sessions.values())
        self.sessions.clear()
        for session in sessions:
            session.stop(codes.CLOSE_GOING_AWAY, reason, keep_runtime=True)
        for session in sessions:
            await session.finished.wait()

    def describe(self) -> list[dict[str, Any]]:
        """``GET /sessions`` entries, newest first."""
        entries = [s.describe() for s in self.sessions.values()]
        entries.sort(key=lambda e: e["createdAtMs"], reverse=True)
        return entries


__all__ = ["SessionGone", "SessionManager", "SessionTable", "TooManySessions", "valid_session_id"]

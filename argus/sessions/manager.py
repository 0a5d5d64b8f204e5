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
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..config import Settings
from ..provision.base import Provisioner
from .session import Session, SessionGone

log = logging.getLogger(__name__)

SESSION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class TooManySessions(Exception):
    """ARGUS_MAX_SESSIONS sessions exist already."""


def valid_session_id(value: str) -> bool:
    """Session ids are path components and container names: keep them tame."""
    return bool(SESSION_ID_RE.match(value))


class SessionManager:
    """Creates, finds and stops sessions."""

    def __init__(self, settings: Settings, provisioner: Provisioner) -> None:
        self.settings = settings
        self.provisioner = provisioner
        self.sessions: dict[str, Session] = {}
        self._nursery: trio.Nursery | None = None
        # Run beside every session's runtime (nodes: the runtime node); set by the daemon.
        self.runtime_companion: Callable[[str], Awaitable[None]] | None = None

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own every session's nursery until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def get(self, session_id: str) -> Session | None:
        """The live session with this id, if any."""
        return self.sessions.get(session_id)

    async def create(self) -> Session:
        """A new session (its runtime is started by the first attach)."""
        if len(self.sessions) >= self.settings.max_sessions:
            raise TooManySessions(f"session limit reached ({self.settings.max_sessions})")
        assert self._nursery is not None, "SessionManager.serve is not running"
        session_id = uuid.uuid4().hex[:12]
        session = Session(session_id, self.provisioner, self.settings, created=True)
        session.runtime_companion = self.runtime_companion
        self.sessions[session_id] = session
        try:
            await self._nursery.start(session.serve)
        except BaseException:
            self.sessions.pop(session_id, None)
            raise
        log.info("session created session=%s mode=%s", session_id, self.provisioner.mode)
        return session

    async def delete(self, session_id: str, *, code: int = 1001, reason: str = "") -> bool:
        """Stop a session's runtime, close its clients with ``code`` and forget it."""
        session = self.sessions.pop(session_id, None)
        if session is None:
            return False
        session.stop(code, reason or "Session deleted")
        with trio.move_on_after(self.settings.stop_timeout_s * 3):
            await session.finished.wait()
        log.info("session deleted session=%s", session_id)
        return True

    async def stop_all(self, reason: str = "Server shutting down") -> None:
        """Graceful shutdown: every client gets 1001 and every runtime is stopped."""
        sessions = list(self.sessions.values())
        self.sessions.clear()
        for session in sessions:
            session.stop(1001, reason)
        for session in sessions:
            await session.finished.wait()

    def describe(self) -> list[dict[str, Any]]:
        """``GET /sessions`` entries, newest first."""
        entries = [s.describe() for s in self.sessions.values()]
        entries.sort(key=lambda e: e["createdAtMs"], reverse=True)
        return entries


__all__ = ["SessionGone", "SessionManager", "TooManySessions", "valid_session_id"]

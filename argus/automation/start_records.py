"""Resolving an earlier gateway's "starting" records after a restart (part of ``Engine``).

Why: a gateway killed between the runtime accepting its ``turn/start`` and the commit
that records the turn would otherwise run the inputs again. The engine writes a record
before each gateway ``turn/start`` (``store.turn_starts``); after a restart this mixin
loads them before any runtime is adopted and resolves each one: the old request's
response (replayed by the re-adopted bridge, or forwarded live) commits it as started
or, an error, releases its inputs; with no answer possible (plain child runtime, new
bridge instance) it is released at once, else ``turn_start_grace_s`` after the backlog.
``in_doubt`` holds at most one record per lane.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from ..provision.base import ProvisionError
from ..sessions.internal_calls import RuntimeCallError
from ..sessions.session import Session, SessionGone
from ..store import turn_starts
from ..store.turn_starts import TurnStart

if TYPE_CHECKING:
    from ..config import Settings
    from ..store.db import Store
    from .lanes import Lane, LaneTable

log = logging.getLogger("argus.automation.engine")

START_ERRORS = (RuntimeCallError, SessionGone, ProvisionError, trio.TooSlowError, OSError)


class StartResolution:
    """The "starting"-record half of ``Engine`` (it provides the attributes used here)."""

    settings: Settings
    store: Store
    lanes: LaneTable
    in_doubt: dict[tuple[str, int], TurnStart]
    _in_doubt_loaded: bool

    def spawn(self, fn: Any, *args: Any) -> None:  # pragma: no cover - Engine's
        raise NotImplementedError

    def session(self, session_id: str) -> Session | None:  # pragma: no cover - Engine's
        raise NotImplementedError

    def wake_lane(self, lane: Lane) -> None:  # pragma: no cover - Engine's
        raise NotImplementedError

    def wall_ms(self) -> int:  # pragma: no cover - replaced by the Engine's clock
        raise NotImplementedError

    async def load_starting(self) -> None:
        """Read the "starting" records an earlier gateway left (before runtimes are adopted,
        so their replayed responses find them)."""
        if self._in_doubt_loaded:
            return
        for start in await self.store.run(turn_starts.list_all):
            self.in_doubt[(start.session_id, start.upstream_id)] = start
        self._in_doubt_loaded = True
        if self.in_doubt:
            log.info("turn starts to resolve after the restart count=%s", len(self.in_doubt))

    async def resolve_after_restart(self) -> None:
        """Load the records and get each session's runtime adopted, so they resolve."""
        await self.load_starting()
        for session_id in {key[0] for key in self.in_doubt}:
            session = self.session(session_id)
            if session is None:
                continue
            if session.state == "running":
                self.on_runtime_caught_up(session)  # adopted before we looked
            else:
                self.spawn(self._adopt_for_resolution, session)

    def start_recorder(
        self,
        session: Session,
        lane: Lane,
        kind: str,
        source: tuple[str | None, str | None],
        followups: list[Any],
        plan: Any,
        recorded: list[TurnStart],
    ) -> Callable[[int], Awaitable[None]]:
        """The ``before_send`` of a gateway ``turn/start``: commit its "starting" record."""

        async def record_start(upstream_id: int) -> None:
            start = TurnStart(
                session.id,
                upstream_id,
                lane.thread_id,
                session.bridge_instance if session.bridged else None,
                kind,
                source,
                [f.id for f in followups],
                [e.id for e in plan.events],
                self.wall_ms(),
            )
            await self.store.run(turn_starts.begin, start)
            recorded.append(start)

        return record_start

    async def _adopt_for_resolution(self, session: Session) -> None:
        """Start (or adopt) the runtime so its backlog resolves the session's records."""
        try:
            await session.ensure_running()
        except START_ERRORS as exc:
            log.warning(
                "cannot reach the runtime to resolve turn starts session=%s: %s", session.id, exc
            )

    def on_runtime_caught_up(self, session: Session) -> None:
        """The backlog is read: release the records no answer can come for; time the rest."""
        for key, start in list(self.in_doubt.items()):
            if key[0] != session.id:
                continue
            same_bridge = session.bridged and start.bridge_instance is not None
            if same_bridge and start.bridge_instance == session.bridge_instance:
                self.spawn(self._release_after_grace, start)
            else:
                del self.in_doubt[key]
                log.info(
                    "turn start released (its runtime is gone) session=%s thread=%s",
                    session.id,
                    start.thread_id,
                )
                self.spawn(self._release, start)

    async def _release_after_grace(self, start: TurnStart) -> None:
        await trio.sleep(self.settings.turn_start_grace_s)
        key = (start.session_id, start.upstream_id)
        if self.in_doubt.get(key) is start:
            del self.in_doubt[key]
            log.info(
                "turn start released (no answer within %ss) session=%s thread=%s",
                self.settings.turn_start_grace_s,
                start.session_id,
                start.thread_id,
            )
            await self._release(start)

    async def _release(self, start: TurnStart) -> None:
        """The request started nothing: its inputs are eligible again."""
        await self.store.run(turn_starts.release, start.session_id, start.upstream_id)
        if self.session(start.session_id) is not None:
            self.wake_lane(self.lanes.get(start.session_id, start.thread_id))

    def on_unmatched_response(self, session: Session, upstream_id: Any, obj: dict) -> None:
        """An earlier gateway's request was answered: resolve its "starting" record."""
        if type(upstream_id) is not int:
            return
        key = (session.id, upstream_id)
        start = self.in_doubt.get(key)
        if start is None or start.bridge_instance != session.bridge_instance:
            return
        del self.in_doubt[key]
        result = obj.get("result")
        turn = result.get("turn") if isinstance(result, dict) else None
        turn_id = turn.get("id") if isinstance(turn, dict) else None
        if "error" in obj or not isinstance(turn_id, str):
            log.info(
                "earlier turn start was refused; inputs queued again session=%s thread=%s",
                session.id,
                start.thread_id,
            )
            self.spawn(self._release, start)
            return
        lane = self.lanes.get(session.id, start.thread_id)
        finished = turn_id in lane.recent_completed
        if not finished:
            # The response precedes its turn's notifications: the lane is this turn's now.
            lane.start(start.kind, start.source)
            lane.active_turn_id = turn_id
        log.info(
            "earlier %s turn start confirmed session=%s thread=%s turn=%s",
            start.kind,
            session.id,
            start.thread_id,
            turn_id,
        )
        self.spawn(self._commit_earlier, start, None if finished else turn_id)

    async def _commit_earlier(self, start: TurnStart, turn_id: str | None) -> None:
        await self.store.run(turn_starts.commit_started, start, turn_id, self.wall_ms())
        if self.session(start.session_id) is not None:
            self.wake_lane(self.lanes.get(start.session_id, start.thread_id))


def turn_in_progress(exc: BaseException) -> bool:
    """Whether a ``turn/start`` failed because the thread already runs a turn (-32600)."""
    if not isinstance(exc, RuntimeCallError) or exc.error.get("code") != -32600:
        return False
    message = str(exc.error.get("message") or "").lower()
    return "in progress" in message or "already running" in message or "active turn" in message

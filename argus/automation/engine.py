"""The automation engine: lanes, their workers, and every turn the daemon starts itself.

One ``Automation`` per daemon. It is the sessions' ``SessionHooks`` (so it sees every
notification, client ``turn/start`` and runtime exit), it owns one worker task per lane that
has work, and it is the only place that starts gateway turns (follow-ups, heartbeats, cron).

Invariants:

* At most one daemon-started turn per lane at a time; a lane's queued inputs run in order,
  one per turn (``ARGUS_FOLLOWUP_MODE=each``) or all in the next (``batch``).
* An input, and the system events a turn carries, leave the store only in the transaction
  that records the started turn (``records.commit_turn_start``), after that request's own
  ``turn/start`` response named the turn. A failed start leaves them queued with a growing
  ``not_before`` (backoff); a start refused because a turn we did not start is running
  (-32600, after re-adopting a runtime) leaves them queued, the lane busy until it ends.
* Exactly once across a gateway crash: a "starting" record is committed before each gateway
  ``turn/start`` is written and resolved after a restart (``start_records``).
* ``thread/resume`` is sent only for a thread not loaded in the current runtime connection
  (``loaded`` tracks thread ids per ``Session.runtime_generation``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from .. import metrics
from ..boundary import contained
from ..config import Settings
from ..procs import now_ms
from ..sessions.hooks import SessionHooks
from ..sessions.manager import SessionTable
from ..sessions.session import Session
from ..store import cron_records, records, turn_starts
from ..store.db import Store
from ..store.turn_starts import TurnStart
from . import heartbeat, turn_input
from .lanes import Lane, LaneTable
from .start_records import START_ERRORS, StartResolution, turn_in_progress
from .threads import START_TIMEOUT_S, ThreadLoading

log = logging.getLogger(__name__)

Offload = Callable[..., Awaitable[Any]]

ENQUEUE_WAIT_S = 30.0
BATCH_MAX = 50
RECENT_STARTS = 256
GATEWAY_KINDS = frozenset({"user", "followup", "heartbeat", "cron"})


def backoff_s(failures: int) -> float:
    """5 s doubling per failure, capped at 10 min (the original's per-session rule)."""
    return float(min(600, 5 * 2 ** min(max(failures, 1) - 1, 10)))


@dataclass
class StartWaiter:
    """An ``argus/input/enqueue`` caller waiting to learn whether its input started."""

    done: trio.Event = field(default_factory=trio.Event)
    turn_id: str | None = None
    started: bool = False
    error: str | None = None


@dataclass
class Plan:
    """What a lane's next turn would carry, read from the store in one go."""

    is_main: bool
    followups: list[records.FollowUp]
    events: list[records.SystemEvent]
    blocked: bool = False  # an earlier start of this lane is unresolved ("starting")


class Engine(StartResolution, ThreadLoading, SessionHooks):
    """Lanes, workers and gateway turns for every session of the daemon.

    The clocks (``scheduler``) and the ``argus/*`` methods (``api``) sit above it and call
    into it; ``service.Automation`` puts the three together.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        sessions: SessionTable,
        *,
        wall_ms: Callable[[], int] = now_ms,
        offload: Offload = trio.to_thread.run_sync,
    ) -> None:
        """``wall_ms`` is the wall clock (tests tie it to the trio clock); ``offload`` runs
        file reads (project context, HEARTBEAT.md) off the event loop (tests on the
        autojump clock run them inline, as a wait on a thread would let the clock jump).
        """
        self.settings = settings
        self.store = store
        self.sessions = sessions
        self.lanes = LaneTable()
        self.loaded: dict[str, tuple[int, set[str]]] = {}
        self.main_locks: dict[str, trio.Lock] = {}
        self.start_waiters: dict[int, StartWaiter] = {}
        # follow-up id -> turn id of recent starts, for an enqueue that registers its
        # waiter after a running worker already took the item (bounded, oldest dropped).
        self.recent_starts: dict[int, str | None] = {}
        self.session_backoff: dict[str, tuple[int, float]] = {}
        self.last_heartbeat: dict[str, float] = {}
        self.bootstrapped: set[str] = set()  # sessions whose workspace got the templates
        self.cron_turns: dict[str, str] = {}  # turn id -> cron run id (bounded, see below)
        self.heartbeat_wake = trio.Event()
        self.forced_heartbeats: set[str] = set()
        self.cron_wake = trio.Event()
        self.wall_ms = wall_ms
        self.offload = offload
        self.active_hours: Any = None
        if settings.heartbeat_active_hours:
            self.active_hours = heartbeat.parse_active_hours(settings.heartbeat_active_hours)
        # Channels (argus.channels) watch turns through this; the daemon sets it. It has
        # on_notification / on_turn_result / on_server_request / on_server_answer.
        self.observer: Any = None
        self._nursery: trio.Nursery | None = None
        # An earlier gateway's unresolved turn/starts by (session, upstream id).
        self.in_doubt: dict[tuple[str, int], TurnStart] = {}
        self._in_doubt_loaded = False

    # -- lifecycle -----------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the lane workers until cancelled (queued work resumes first)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self._recover()
            task_status.started()
            await trio.sleep_forever()

    async def _recover(self) -> None:
        """After a restart: no turn runs in a fresh runtime; queued work resumes."""
        await self.resolve_after_restart()
        for session_id, _thread, _turn, _kind in await self.store.run(records.active_lanes):
            session = self.session(session_id)
            if session is None or session.state != "running":
                await self.store.run(records.clear_session_lanes, session_id)
        for session_id, thread_id in await self.store.run(records.lanes_with_work):
            if self.session(session_id) is not None:
                self.wake_lane(self.lanes.get(session_id, thread_id))

    def session_busy(self, session_id: str) -> bool:
        """Whether any lane of the session runs a turn (the idle reaper asks)."""
        return any(lane.busy for lane in self.lanes.of_session(session_id))

    def session(self, session_id: str) -> Session | None:
        """The live session object, if the manager has it."""
        return self.sessions.get(session_id)

    def spawn(self, fn: Any, *args: Any) -> None:
        """Run a background job under the engine (store writes from synchronous hooks)."""
        if self._nursery is None:
            return
        try:
            self._nursery.start_soon(contained(fn, "automation job"), *args)
        except RuntimeError:
            log.debug("engine is shutting down; background job dropped: %s", fn)

    # -- SessionHooks: what the sessions tell us -----------------------------------------

    def on_notification(self, session: Session, method: str, params: dict[str, Any]) -> None:
        """Lane bookkeeping for every runtime notification (hot path: keep it cheap)."""
        completed = self.lanes.on_notification(session.id, method, params)
        if method == "turn/started":
            self._mark_loaded(session, params.get("threadId"))
        elif method == "thread/started":
            thread = params.get("thread")
            self._mark_loaded(session, thread.get("id") if isinstance(thread, dict) else None)
        if self.observer is not None:
            self.observer.on_notification(session, method, params)
        if completed is not None:
            self._turn_completed(session, completed, params)

    def on_server_request(
        self, session: Session, request_id: Any, method: str, params: dict
    ) -> None:
        """A runtime request (approval) is pending: channels may show it."""
        if self.observer is not None:
            self.observer.on_server_request(session, request_id, method, params)

    def on_server_answer(self, session: Session, request_id: Any, result: Any) -> None:
        """A client answered a runtime request first."""
        if self.observer is not None:
            self.observer.on_server_answer(session, request_id, result)

    def on_client_turn_start(self, session: Session, thread_id: str) -> None:
        """A client's own ``turn/start`` makes the lane busy too (the original did not)."""
        lane = self.lanes.get(session.id, thread_id)
        metrics.STATS.turns_started.add("client")
        if not lane.busy:
            lane.start("client")

    def on_client_turn_refused(self, session: Session, thread_id: str) -> None:
        """A refused client start made the lane busy for nothing: free it (if still its)."""
        lane = self.lanes.find(session.id, thread_id)
        if lane is not None and lane.busy and lane.kind == "client" and lane.active_turn_id is None:
            lane.release()
            self.wake_lane(lane)

    def on_runtime_started(self, session: Session) -> None:
        """A new runtime connection has no thread loaded."""
        self.loaded[session.id] = (session.runtime_generation, set())

    def on_runtime_exit(self, session: Session) -> None:
        """Every lane of the session is free again; queued work waits for the next start."""
        self.loaded.pop(session.id, None)
        for lane in self.lanes.of_session(session.id):
            if lane.busy:
                lane.release()
        self.spawn(self.store.run, records.clear_session_lanes, session.id)

    def on_session_deleted(self, session_id: str) -> None:
        """Forget everything in memory about the session (the store cascades its rows)."""
        self.loaded.pop(session_id, None)
        self.main_locks.pop(session_id, None)
        self.session_backoff.pop(session_id, None)
        self.last_heartbeat.pop(session_id, None)
        self.bootstrapped.discard(session_id)
        for key in [k for k in self.in_doubt if k[0] == session_id]:
            del self.in_doubt[key]
        for lane in self.lanes.of_session(session_id):
            lane.release()
            self.lanes.lanes.pop((session_id, lane.thread_id), None)

    # -- lane workers --------------------------------------------------------------------

    def wake_lane(self, lane: Lane) -> None:
        """Make sure the lane's worker looks at its queue (starting one if needed)."""
        if lane.worker:
            lane.notify()
            return
        if self._nursery is None:
            return
        lane.worker = True
        what = f"lane worker session={lane.session_id} thread={lane.thread_id}"
        self._nursery.start_soon(contained(self._serve_lane, what), lane)

    async def _serve_lane(self, lane: Lane) -> None:
        try:
            while True:
                if lane.busy:
                    await lane.changed.wait()
                    continue
                session = self.session(lane.session_id)
                if session is None:
                    return
                changed = lane.changed  # a wake while the plan is read is not lost
                plan = await self.store.run(_plan, lane.session_id, lane.thread_id)
                kind = self._next_kind(lane, plan)
                if kind is None:
                    if changed.is_set():
                        continue
                    return
                if kind == "followup":
                    wait_s = (plan.followups[0].not_before_ms - self.wall_ms()) / 1000
                    if wait_s > 0:
                        with trio.move_on_after(wait_s):
                            await lane.changed.wait()
                        continue
                await self._start_turn(session, lane, plan, kind)
        finally:
            lane.worker = False

    def _next_kind(self, lane: Lane, plan: Plan) -> str | None:
        if plan.blocked:
            return None
        if plan.followups:
            return "followup"
        if not plan.is_main:
            return None
        if lane.heartbeat_requested:
            return "heartbeat"
        if any(wakes_heartbeat(e) for e in plan.events):
            if self.heartbeat_allowed_now(lane.session_id):
                return "heartbeat"
        return None

    async def _start_turn(self, session: Session, lane: Lane, plan: Plan, kind: str) -> None:
        followups = plan.followups[:1]
        if kind == "followup" and self.settings.followup_mode == "batch":
            followups = plan.followups[:BATCH_MAX]
        waiter = self.start_waiters.get(followups[0].id) if followups else None
        if kind == "followup" and waiter is not None:
            kind = "user"
        source = (
            (followups[0].source_channel, followups[0].source_chat_key)
            if followups
            else (None, None)
        )
        text = (
            turn_input.followup_text(
                [f.text for f in followups],
                batched=len(followups) > 1
                or (self.settings.followup_mode == "batch" and waiter is None),
            )
            if followups
            else ""
        )
        completions = lane.completions
        recorded: list[TurnStart] = []
        record_start = self.start_recorder(session, lane, kind, source, followups, plan, recorded)
        try:
            with trio.fail_after(START_TIMEOUT_S):
                # Adopting a bridged runtime replays its backlog through the lanes first:
                # a turn still running there makes this lane busy, and the worker waits.
                await session.ensure_running()
                if lane.busy:
                    return
                lane.start(kind, source)
                lane.starting = True
                if kind == "heartbeat":
                    lane.heartbeat_requested = False
                await self.ensure_loaded(session, lane.thread_id)
                items = await turn_input.build(
                    self, session, text, plan.events, heartbeat=kind == "heartbeat"
                )
                items += turn_input.extra_items(followups)
                params = {
                    "threadId": lane.thread_id,
                    "input": items,
                    "approvalPolicy": self.settings.automation_approval_policy,
                }
                result = await session.call(
                    "turn/start", params, timeout=START_TIMEOUT_S, before_send=record_start
                )
        except START_ERRORS as exc:
            if recorded:  # it started nothing: the record goes, the inputs stay queued
                await self.store.run(turn_starts.release, session.id, recorded[0].upstream_id)
            if turn_in_progress(exc) and lane.busy:
                self._wait_for_running_turn(session, lane, kind, completions)
                if waiter is not None:
                    waiter.done.set()  # the caller learns it is queued, not failed
                return
            message = str(exc) or type(exc).__name__
            log.warning(
                "%s turn failed to start session=%s thread=%s: %s",
                kind,
                session.id,
                lane.thread_id,
                message,
            )
            lane.release()
            if followups:
                attempts = followups[0].attempts + 1
                retry_at = self.wall_ms() + int(backoff_s(attempts) * 1000)
                ids = [f.id for f in followups]
                await self.store.run(records.note_followup_failure, ids, message, retry_at)
            else:
                self.note_session_failure(session.id, f"{kind} turn", message)
            if waiter is not None:
                waiter.error = message
                waiter.done.set()
            return
        # The turn is the one this response names (ids never repeat across gateways, so
        # it is this request's own response); a turn/started seen meanwhile proves nothing.
        turn = result.get("turn") if isinstance(result, dict) else None
        turn_id = turn.get("id") if isinstance(turn, dict) else None
        turn_id = turn_id if isinstance(turn_id, str) else None
        finished_already = turn_id is not None and turn_id in lane.recent_completed
        still_running = lane.busy and not finished_already
        if lane.busy:
            lane.starting = False
            lane.active_turn_id = turn_id
        await self.store.run(
            turn_starts.commit_started,
            recorded[0],  # before_send ran: the request was written
            turn_id if still_running else None,
            self.wall_ms(),
        )
        metrics.STATS.turns_started.add(kind)
        if kind == "heartbeat":
            self.last_heartbeat[session.id] = trio.current_time()
        self.session_backoff.pop(session.id, None)
        log.info(
            "%s turn started session=%s thread=%s turn=%s events=%s",
            kind,
            session.id,
            lane.thread_id,
            turn_id,
            len(plan.events),
        )
        for item in followups:
            self.recent_starts[item.id] = turn_id
        while len(self.recent_starts) > RECENT_STARTS:
            del self.recent_starts[next(iter(self.recent_starts))]
        if waiter is not None:
            waiter.started, waiter.turn_id = True, turn_id
            waiter.done.set()
        if finished_already and lane.busy:
            # Its turn/completed came before the worker saw the response.
            completed = lane.last_completed
            if completed is None or lane.recent_completed[-1] != turn_id:
                completed = {"threadId": lane.thread_id, "turn": {"id": turn_id}}
            self._turn_completed(session, lane, completed)

    def _wait_for_running_turn(
        self, session: Session, lane: Lane, kind: str, completions: int
    ) -> None:
        """The runtime refused: a turn we did not start runs on this thread.

        Seen after re-adopting a bridged runtime whose running turn's ``turn/started`` is
        no longer in the bridge's ring. The input stays queued, with no failure counted:
        the lane is busy with that turn until its ``turn/completed``, then the worker
        starts the input. If a turn completed while the start was being refused, the
        worker tries again at once (one retry per completion, so this cannot spin).
        """
        log.info(
            "%s turn waits for the turn in progress session=%s thread=%s",
            kind,
            session.id,
            lane.thread_id,
        )
        lane.start("client")
        if lane.completions != completions:
            lane.release()

    def _turn_completed(self, session: Session, lane: Lane, params: dict[str, Any]) -> None:
        kind, source, text = lane.kind, lane.source, lane.reply_text()
        turn_id = lane.active_turn_id
        turn = params.get("turn")
        status = turn.get("status") if isinstance(turn, dict) else None
        metrics.STATS.turns_completed.add(kind or "client")
        lane.release()
        self.spawn(
            self.store.run,
            records.set_lane_turn,
            session.id,
            lane.thread_id,
            None,
            None,
            (None, None),
            self.wall_ms(),
        )
        if turn_id is not None and turn_id in self.cron_turns:
            run_id = self.cron_turns.pop(turn_id)
            self.spawn(self.finish_cron_turn, run_id, status, text)
        if self.observer is not None:
            self.observer.on_turn_result(
                session,
                {
                    "threadId": lane.thread_id,
                    "turnId": turn_id,
                    "kind": kind,
                    "status": status,
                    "text": text,
                    "source": source,
                },
            )
        if kind in GATEWAY_KINDS and not (kind == "heartbeat" and turn_input.is_heartbeat_ok(text)):
            result = {
                "threadId": lane.thread_id,
                "turnId": turn_id,
                "kind": kind,
                "status": status,
                "text": text,
            }
            if source[0] and source[1]:
                result["source"] = {"channel": source[0], "chatKey": source[1]}
            session.note("argus/turn/result", result)
        self.wake_lane(lane)

    async def finish_cron_turn(self, run_id: str, status: Any, text: str) -> None:
        """Record how an isolated cron turn ended."""
        outcome = {"completed": "success", "interrupted": "canceled", "failed": "error"}.get(
            status if isinstance(status, str) else "", "unknown"
        )
        await self.store.run(cron_records.finish_run, run_id, outcome, self.wall_ms())

    # -- failures ------------------------------------------------------------------------

    def note_session_failure(self, session_id: str, what: str, error: str) -> None:
        """Back a session's heartbeats and cron off (5 s doubling to 10 min)."""
        failures = self.session_backoff.get(session_id, (0, 0.0))[0] + 1
        delay = backoff_s(failures)
        self.session_backoff[session_id] = (failures, trio.current_time() + delay)
        log.warning(
            "%s failed for session %s; backing off %ss: %s", what, session_id, int(delay), error
        )

    def heartbeat_allowed_now(self, session_id: str) -> bool:
        """Inside the active hours and not backed off."""
        if self.backed_off(session_id):
            return False
        window = self.active_hours
        return window is None or heartbeat.within_active_hours(window, self.wall_ms())

    def backed_off(self, session_id: str) -> bool:
        """Whether the session is inside a failure backoff."""
        entry = self.session_backoff.get(session_id)
        return entry is not None and trio.current_time() < entry[1]

    def new_event(self, kind: str, text: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """A system event in the original's shape."""
        event: dict[str, Any] = {
            "eventId": uuid.uuid4().hex,
            "kind": kind,
            "text": text,
            "createdAtMs": self.wall_ms(),
        }
        if meta:
            event["meta"] = meta
        return event


def wakes_heartbeat(event: records.SystemEvent) -> bool:
    """Node churn and cron writebacks wait for the next turn; ``meta.wakeHeartbeat`` overrides."""
    meta = event.meta or {}
    if isinstance(meta.get("wakeHeartbeat"), bool):
        return meta["wakeHeartbeat"]
    return event.kind not in ("node", "cron_writeback")


def _plan(conn: Any, session_id: str, thread_id: str) -> Plan:
    is_main = records.get_main_thread(conn, session_id) == thread_id
    if turn_starts.lane_starting(conn, session_id, thread_id):
        return Plan(is_main, [], [], blocked=True)
    followups = records.peek_followups(conn, session_id, thread_id, BATCH_MAX)
    events = records.peek_events(conn, session_id, thread_id, turn_input.MAX_EVENTS_PER_TURN)
    return Plan(is_main, followups, events)

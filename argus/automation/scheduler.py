"""The engine's clocks: the stuck-turn watchdog, per-session heartbeats and cron.

All three run on the trio clock (``autojump_clock`` drives them in tests); cron compares
against wall time through ``engine.wall_ms`` so tests can tie the two together.

* Watchdog: a busy lane with no runtime output for ``ARGUS_TURN_STALL_S`` is freed, its
  turn is interrupted (``turn/interrupt``), and clients get ``argus/turn/stalled``.
* Heartbeat: every session with a main thread, every ``ARGUS_HEARTBEAT_INTERVAL_S``, when
  HEARTBEAT.md has tasks (or events wait on the main thread), the lane is idle, and we are
  inside ``ARGUS_HEARTBEAT_ACTIVE_HOURS``. At most ``HEARTBEATS_PER_TICK`` start per tick.
* Cron: sleeps until the earliest due job (0.2-30 s), runs what is due. A run, the job's
  new schedule and its system event commit together (``cron_records.record_run``).
"""

from __future__ import annotations

import logging
import uuid
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from ..protocol import codes
from ..sessions.internal_calls import RuntimeCallError
from ..store import cron_records, records
from . import cron_api, turn_input
from . import heartbeat as hb
from .engine import START_ERRORS, backoff_s

if TYPE_CHECKING:
    from ..sessions.session import Session
    from .engine import Engine
    from .lanes import Lane

log = logging.getLogger(__name__)

HEARTBEAT_TICK_S = 15.0
HEARTBEATS_PER_TICK = 3
CRON_MIN_SLEEP_S = 0.2
CRON_MAX_SLEEP_S = 30.0
INTERRUPT_TIMEOUT_S = 10.0
MAX_CRON_TURNS = 10_000


# -- watchdog ------------------------------------------------------------------------------


async def serve_watchdog(engine: Engine) -> None:
    """Free lanes whose turn went silent; also prune idle lanes."""
    stall = engine.settings.turn_stall_s
    period = max(0.05, min(stall / 4, 5.0))
    while True:
        await trio.sleep(period)
        now = trio.current_time()
        for lane in list(engine.lanes.lanes.values()):
            if lane.busy and now - lane.last_output >= stall:
                stalled(engine, lane, now - lane.last_output)
        engine.lanes.prune()


def stalled(engine: Engine, lane: Lane, idle_s: float) -> None:
    """Interrupt a silent turn, free its lane and tell the clients."""
    turn_id, kind = lane.active_turn_id, lane.kind
    log.warning(
        "turn stalled, interrupting session=%s thread=%s turn=%s idle=%.0fs",
        lane.session_id,
        lane.thread_id,
        turn_id,
        idle_s,
    )
    lane.release()
    session = engine.session(lane.session_id)
    if session is not None:
        params = {"threadId": lane.thread_id, "turnId": turn_id, "kind": kind, "idleS": idle_s}
        session.note("argus/turn/stalled", params)
        if turn_id is not None and session.state == "running":
            engine.spawn(_interrupt, session, lane.thread_id, turn_id)
    engine.spawn(
        engine.store.run,
        records.set_lane_turn,
        lane.session_id,
        lane.thread_id,
        None,
        None,
        (None, None),
        engine.wall_ms(),
    )
    engine.wake_lane(lane)


async def _interrupt(session: Session, thread_id: str, turn_id: str) -> None:
    try:
        await session.call(
            "turn/interrupt",
            {"threadId": thread_id, "turnId": turn_id},
            timeout=INTERRUPT_TIMEOUT_S,
        )
    except (*START_ERRORS, RuntimeCallError) as exc:
        log.warning("turn/interrupt failed session=%s turn=%s: %s", session.id, turn_id, exc)


# -- heartbeat -----------------------------------------------------------------------------


def force_heartbeat(engine: Engine, session_id: str | None) -> None:
    """Run the heartbeat tick now, ignoring the interval (for one session or all)."""
    engine.forced_heartbeats.add(session_id or "*")
    engine.heartbeat_wake.set()


async def serve_heartbeat(engine: Engine) -> None:
    """Tick every ``HEARTBEAT_TICK_S`` (or when woken), start due heartbeats."""
    while True:
        with trio.move_on_after(min(HEARTBEAT_TICK_S, engine.settings.heartbeat_interval_s)):
            await engine.heartbeat_wake.wait()
        engine.heartbeat_wake = trio.Event()
        forced, engine.forced_heartbeats = engine.forced_heartbeats, set()
        try:
            await heartbeat_tick(engine, forced)
        except Exception:
            log.exception("heartbeat tick failed")
            await trio.sleep(2.0)


async def heartbeat_tick(engine: Engine, forced: set[str]) -> int:
    """Request heartbeat turns where due; how many were requested."""
    started = 0
    now = trio.current_time()
    for row in await engine.store.run(records.list_sessions):
        if started >= HEARTBEATS_PER_TICK:
            engine.heartbeat_wake.set()  # the rest on the next round
            break
        session_id, main = row["id"], row["mainThreadId"]
        session = engine.session(session_id)
        if session is None or not main:
            continue
        is_forced = "*" in forced or session_id in forced
        if not is_forced and not engine.heartbeat_allowed_now(session_id):
            continue
        lane = engine.lanes.get(session_id, main)
        if lane.busy or lane.heartbeat_requested:
            continue
        events = await engine.store.run(records.event_depth, session_id, main)
        workspace = session.workspace_path()
        has_tasks = workspace is not None and await engine.offload(
            hb.heartbeat_has_tasks, workspace
        )
        if not events and not has_tasks:
            continue
        last = engine.last_heartbeat.get(session_id)
        due = last is None or now - last >= engine.settings.heartbeat_interval_s
        if not (events or is_forced or due):
            continue
        lane.heartbeat_requested = True
        engine.wake_lane(lane)
        started += 1
    return started


# -- cron ----------------------------------------------------------------------------------


async def serve_cron(engine: Engine) -> None:
    """Run due jobs, then sleep until the next one (or until a job changes)."""
    while True:
        try:
            sleep_s = await cron_tick(engine)
        except Exception:
            log.exception("cron tick failed")
            sleep_s = 2.0
        with trio.move_on_after(sleep_s):
            await engine.cron_wake.wait()
        engine.cron_wake = trio.Event()


async def cron_tick(engine: Engine) -> float:
    """Fire every due job once; seconds until the next one is due."""
    now = engine.wall_ms()
    next_due: int | None = None
    for job in await engine.store.run(cron_records.list_jobs, None):
        if not job["enabled"]:
            continue
        if job["nextRunAtMs"] is None:
            job["nextRunAtMs"] = cron_api.next_run_ms(job, job["lastRunAtMs"] or now)
            await engine.store.run(cron_records.set_schedule, job["jobId"], job["nextRunAtMs"])
        due_at = job["nextRunAtMs"]
        if due_at is None:
            continue
        if job["backoffUntilMs"] is not None and job["backoffUntilMs"] > now:
            due_at = max(due_at, job["backoffUntilMs"])
        if due_at <= now:
            await run_job(engine, job, now)
            continue
        next_due = due_at if next_due is None else min(next_due, due_at)
    if next_due is None:
        return 5.0
    return min(CRON_MAX_SLEEP_S, max(CRON_MIN_SLEEP_S, (next_due - now) / 1000))


async def run_job(engine: Engine, job: dict[str, Any], now: int) -> None:
    """One run of a due job (missed runs during downtime collapse into it)."""
    session = engine.session(job["sessionId"])
    job_id = job["jobId"]
    missed = cron_api.missed_runs(job, job["nextRunAtMs"], now)
    next_run = cron_api.next_run_ms(job, now)
    run: dict[str, Any] = {
        "runId": uuid.uuid4().hex[:16],
        "sessionId": job["sessionId"],
        "scheduledAtMs": job["nextRunAtMs"],
        "startedAtMs": now,
        "missed": missed,
    }
    keep = engine.settings.cron_run_history
    recorded = False
    try:
        if session is None:
            raise RuntimeCallError({"code": codes.GATEWAY_ERROR, "message": "Session not found"})
        if job.get("mode") == "turn":
            run["status"] = "starting"
            await engine.store.run(cron_records.record_run, job_id, run, now, next_run, None, keep)
            recorded = True
            await _start_isolated_turn(engine, session, job, run)
        else:
            thread_id = job.get("threadId") or await engine.ensure_main_thread(session)
            meta = {"jobId": job_id, "expr": job.get("expr")}
            if missed:
                meta["missed"] = missed
            event = engine.new_event("cron", job.get("text", ""), meta)
            run.update(status="enqueued", threadId=thread_id)
            max_events = engine.settings.system_events_max
            await engine.store.run(
                cron_records.record_run,
                job_id,
                run,
                now,
                next_run,
                (session.id, thread_id, event, max_events),
                keep,
            )
            engine.wake_lane(engine.lanes.get(session.id, thread_id))
        log.info("cron job ran job=%s session=%s missed=%s", job_id, job["sessionId"], missed)
    except (*START_ERRORS, records.QueueFull) as exc:
        message = str(exc) or type(exc).__name__
        failures = job.get("failures", 0) + 1
        until = now + int(backoff_s(failures) * 1000)
        await engine.store.run(cron_records.job_failed, job_id, message, until, now)
        if recorded:
            finish = partial(cron_records.finish_run, error=message)
            await engine.store.run(finish, run["runId"], "error", engine.wall_ms())
        log.warning("cron job failed job=%s failures=%s: %s", job_id, failures, message)


async def _start_isolated_turn(
    engine: Engine, session: Session, job: dict[str, Any], run: dict[str, Any]
) -> None:
    thread_id = await engine.start_thread(session)
    lane = engine.lanes.get(session.id, thread_id)
    lane.start("cron")
    try:
        items = await turn_input.build(engine, session, job.get("text", ""), [], heartbeat=False)
        params = {
            "threadId": thread_id,
            "input": items,
            "approvalPolicy": engine.settings.automation_approval_policy,
        }
        result = await session.call("turn/start", params)
    except BaseException:
        lane.release()
        raise
    turn = result.get("turn") if isinstance(result, dict) else None
    turn_id = turn.get("id") if isinstance(turn, dict) else None
    if isinstance(turn_id, str):
        if lane.busy and turn_id not in lane.recent_completed:
            lane.active_turn_id = turn_id
        if len(engine.cron_turns) < MAX_CRON_TURNS:
            engine.cron_turns[turn_id] = run["runId"]
    await engine.store.run(
        cron_records.mark_run_started,
        run["runId"],
        thread_id,
        turn_id if isinstance(turn_id, str) else None,
    )

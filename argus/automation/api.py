"""The automation operations clients call: ``argus/*`` on ``/ws`` and ``/automation/*`` HTTP.

Both surfaces share these functions, so a rule (validation before any side effect, queue
bounds, result shapes) holds on both. Results keep the original's shapes (``queued``,
``started``, ``turnId``, ``followupDepth``; ``event``/``threadId``). User errors raise
``GatewayMethodError`` with a JSON-RPC code; HTTP maps them to 400/404/409.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from ..procs import now_ms
from ..protocol import codes
from ..sessions.hooks import GatewayMethodError
from ..sessions.session import Session
from ..store import records
from . import cron_api, scheduler
from .engine import ENQUEUE_WAIT_S, StartWaiter

if TYPE_CHECKING:
    from .engine import Engine


def required_text(params: dict[str, Any]) -> str:
    """``text``: a non-blank string, else -32602 ``Missing 'text'`` (before any side effect)."""
    text = params.get("text")
    if not isinstance(text, str) or not text.strip():
        raise GatewayMethodError(codes.INVALID_PARAMS, "Missing 'text'")
    return text


def source_of(params: dict[str, Any]) -> tuple[str | None, str | None]:
    """``source {channel, chatKey}``, used only when both are non-blank strings."""
    source = params.get("source")
    if isinstance(source, dict):
        channel, chat_key = source.get("channel"), source.get("chatKey")
        if isinstance(channel, str) and channel.strip() and isinstance(chat_key, str):
            if chat_key.strip():
                return channel.strip(), chat_key.strip()
    return None, None


async def target_thread(engine: Engine, session: Session, params: dict[str, Any]) -> str:
    """``target: "main"`` or no ``threadId`` means the main thread; else the stripped id."""
    thread_id = params.get("threadId")
    if params.get("target") == "main" or not isinstance(thread_id, str) or not thread_id.strip():
        return await engine.ensure_main_thread(session)
    return thread_id.strip()


async def enqueue_input(engine: Engine, session: Session, params: dict[str, Any]) -> dict[str, Any]:
    """Run ``text`` as the lane's next turn: now if the lane is idle, else queued, in order."""
    text = required_text(params)
    source = source_of(params)
    thread_id = await target_thread(engine, session, params)
    lane = engine.lanes.get(session.id, thread_id)

    def enqueue(conn: Any) -> tuple[int, int]:
        if source[0] and source[1]:
            records.bind_channel(conn, session.id, thread_id, source[0], source[1], now_ms())
        return records.add_followup(
            conn, session.id, thread_id, text, source, now_ms(), engine.settings.followup_max
        )

    try:
        followup_id, depth = await engine.store.run(enqueue)
    except records.QueueFull as exc:
        raise GatewayMethodError(codes.QUEUE_FULL, str(exc)) from None
    queued = {"ok": True, "threadId": thread_id, "queued": True, "started": False}
    if lane.busy or depth > 1:
        engine.wake_lane(lane)
        return {**queued, "followupDepth": depth}
    # The lane is idle and this is its only input: it starts now; answer with the turn.
    waiter = engine.start_waiters[followup_id] = StartWaiter()
    try:
        engine.wake_lane(lane)
        early = engine.recent_starts.get(followup_id)
        if early is not None:  # a running worker took it before we could register
            waiter.started, waiter.turn_id = True, early
        else:
            with trio.move_on_after(ENQUEUE_WAIT_S):
                await waiter.done.wait()
    finally:
        engine.start_waiters.pop(followup_id, None)
    if waiter.started:
        return {
            "ok": True,
            "threadId": thread_id,
            "queued": False,
            "started": True,
            "turnId": waiter.turn_id,
        }
    depth = await engine.store.run(records.followup_depth, session.id, thread_id)
    result = {**queued, "followupDepth": depth}
    if waiter.error:
        result["startError"] = waiter.error  # it stays queued and is retried with backoff
    return result


async def enqueue_system_event(
    engine: Engine,
    session: Session,
    params: dict[str, Any],
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Queue a system event for the thread's next turn (a main-thread event wakes the heartbeat)."""
    text = required_text(params)
    kind = params.get("kind")
    kind = kind.strip() if isinstance(kind, str) and kind.strip() else "system"
    thread_id = await target_thread(engine, session, params)
    event = engine.new_event(kind, text, meta)
    try:
        await engine.store.run(
            records.add_event, session.id, thread_id, event, engine.settings.system_events_max
        )
    except records.QueueFull as exc:
        raise GatewayMethodError(codes.QUEUE_FULL, str(exc)) from None
    engine.wake_lane(engine.lanes.get(session.id, thread_id))
    return {"ok": True, "event": event, "threadId": thread_id}


def request_heartbeat(engine: Engine, session_id: str | None = None) -> dict[str, Any]:
    """Force a heartbeat tick (for one session, or all); it still needs tasks or events."""
    scheduler.force_heartbeat(engine, session_id)
    return {"ok": True}


async def call(engine: Engine, session: Session, method: str, params: dict[str, Any]) -> Any:
    """Dispatch one ``argus/*`` method of a ``/ws`` client, on its own session."""
    if method == "argus/thread/main/ensure":
        return {"threadId": await engine.ensure_main_thread(session)}
    if method == "argus/input/enqueue":
        return await enqueue_input(engine, session, params)
    if method == "argus/systemEvent/enqueue":
        return await enqueue_system_event(engine, session, params)
    if method == "argus/heartbeat/request":
        return request_heartbeat(engine, session.id)
    if method.startswith("argus/cron/"):
        return await cron_api.call(engine, session, method[len("argus/cron/") :], params)
    raise GatewayMethodError(codes.METHOD_NOT_FOUND, f"Method not found: {method}")

"""An earlier gateway's "starting" records: resolved by the old response, or released.

The engine runs over in-process demo runtimes on the autojump clock; the records are
written as a gateway killed mid-start would have left them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from argus.store import records, turn_starts
from argus.store.turn_starts import TurnStart
from tests.automation_kit import Kit, open_kit
from tests.unit.automation.test_engine import new_session, notes, wait_for


async def in_doubt(kit: Kit, session: Any, text: str, upstream_id: int) -> tuple[str, TurnStart]:
    """A queued follow-up with the record of a start nobody knows the outcome of."""
    thread_id = (await kit.call(session, "argus/thread/main/ensure"))["threadId"]
    followup_id, _ = await kit.store.run(
        records.add_followup, session.id, thread_id, text, (None, None), 0, 10
    )
    start = TurnStart(
        session.id, upstream_id, thread_id, None, "followup", (None, None), [followup_id], [], 0
    )
    await kit.store.run(turn_starts.begin, start)
    kit.engine.in_doubt[(session.id, upstream_id)] = start
    kit.engine.wake_lane(kit.engine.lanes.get(session.id, thread_id))
    return thread_id, start


async def queued(kit: Kit, session: Any, thread_id: str) -> list[str]:
    return [f.text for f in await kit.store.run(records.peek_followups, session.id, thread_id, 10)]


async def test_a_lane_with_a_record_starts_nothing_until_the_answer_commits_it(
    tmp_path: Path, autojump_clock: Any
) -> None:
    async with open_kit(tmp_path) as kit:
        session = await new_session(kit)
        thread_id, _ = await in_doubt(kit, session, "ran before the crash", 5)
        await trio.sleep(5)  # time for the woken lane worker to (not) start it
        assert await queued(kit, session, thread_id) == ["ran before the crash"]
        assert notes(session, "argus/turn/result") == []
        answer = {"id": 5, "result": {"turn": {"id": "turn-old", "status": "inProgress"}}}
        kit.engine.on_unmatched_response(session, 5, answer)
        lane = kit.engine.lanes.get(session.id, thread_id)
        assert lane.busy and lane.active_turn_id == "turn-old" and lane.kind == "followup"
        await wait_for(lambda: not kit.engine.in_doubt)
        await trio.sleep(1)  # the commit runs as a background job
        assert await queued(kit, session, thread_id) == []  # consumed, never run again
        assert not await kit.store.run(turn_starts.lane_starting, session.id, thread_id)
        done = {"threadId": thread_id, "turn": {"id": "turn-old", "status": "completed"}}
        kit.engine.on_notification(session, "turn/completed", done)
        assert not lane.busy
        results = notes(session, "argus/turn/result")
        assert [(r["turnId"], r["kind"]) for r in results] == [("turn-old", "followup")]


async def test_an_error_answer_puts_the_input_back_in_the_queue(
    tmp_path: Path, autojump_clock: Any
) -> None:
    async with open_kit(tmp_path) as kit:
        session = await new_session(kit)
        thread_id, _ = await in_doubt(kit, session, "refused before the crash", 6)
        error = {"id": 6, "error": {"code": -32603, "message": "boom"}}
        kit.engine.on_unmatched_response(session, 6, error)
        await wait_for(lambda: len(notes(session, "argus/turn/result")) == 1)
        assert "refused before the crash" in notes(session, "argus/turn/result")[0]["text"]
        assert await queued(kit, session, thread_id) == []


async def test_a_plain_child_runtime_releases_the_record_at_once(
    tmp_path: Path, autojump_clock: Any
) -> None:
    async with open_kit(tmp_path) as kit:
        session = await new_session(kit)
        _, start = await in_doubt(kit, session, "its runtime died with the gateway", 7)
        other = {"id": 99, "result": {"turn": {"id": "x"}}}
        kit.engine.on_unmatched_response(session, 99, other)  # not its request: ignored
        assert kit.engine.in_doubt
        kit.engine.on_runtime_caught_up(session)  # no bridge: nothing can answer it
        await wait_for(lambda: len(notes(session, "argus/turn/result")) == 1)
        assert "its runtime died" in notes(session, "argus/turn/result")[0]["text"]
        assert (session.id, start.upstream_id) not in kit.engine.in_doubt


async def test_same_bridge_waits_the_grace_period_then_releases(
    tmp_path: Path, autojump_clock: Any, monkeypatch: Any
) -> None:
    from argus.sessions.session import Session

    monkeypatch.setattr(Session, "bridged", property(lambda self: True))
    async with open_kit(tmp_path, turn_start_grace_s=30.0) as kit:
        session = await new_session(kit)
        session.bridge_instance = "bridge-a"
        thread_id, start = await in_doubt(kit, session, "never reached the runtime", 8)
        key = (session.id, start.upstream_id)
        kit.engine.in_doubt[key] = start = type(start)(
            **{**_fields(start), "bridge_instance": "bridge-a"}
        )
        kit.engine.on_runtime_caught_up(session)
        await trio.sleep(20)
        assert await queued(kit, session, thread_id) == ["never reached the runtime"]
        assert notes(session, "argus/turn/result") == []
        await wait_for(lambda: len(notes(session, "argus/turn/result")) == 1)
        assert "never reached the runtime" in notes(session, "argus/turn/result")[0]["text"]
        late = {"id": 8, "result": {"turn": {"id": "too-late"}}}
        kit.engine.on_unmatched_response(session, 8, late)  # after the grace: ignored
        assert kit.engine.lanes.get(session.id, thread_id).active_turn_id != "too-late"


async def test_a_new_bridge_instance_releases_at_once(
    tmp_path: Path, autojump_clock: Any, monkeypatch: Any
) -> None:
    from argus.sessions.session import Session

    monkeypatch.setattr(Session, "bridged", property(lambda self: True))
    async with open_kit(tmp_path, turn_start_grace_s=3000.0) as kit:
        session = await new_session(kit)
        session.bridge_instance = "bridge-new"
        _, start = await in_doubt(kit, session, "the old runtime is gone", 9)
        key = (session.id, start.upstream_id)
        kit.engine.in_doubt[key] = type(start)(
            **{**_fields(start), "bridge_instance": "bridge-old"}
        )
        kit.engine.on_runtime_caught_up(session)
        await wait_for(lambda: len(notes(session, "argus/turn/result")) == 1, timeout=60)


def _fields(start: TurnStart) -> dict[str, Any]:
    return {name: getattr(start, name) for name in TurnStart.__slots__}

"""While the daemon's own turn/start is in flight, other turns neither claim nor free the lane."""

from __future__ import annotations

import trio

from argus.automation.engine import turn_in_progress
from argus.automation.lanes import LaneTable
from argus.sessions.internal_calls import RuntimeCallError


def started(turn_id: str) -> dict:
    return {"threadId": "t", "turn": {"id": turn_id, "status": "inProgress"}}


def completed(turn_id: str) -> dict:
    return {"threadId": "t", "turn": {"id": turn_id, "status": "completed"}}


async def test_an_old_turn_replayed_during_a_start_is_not_taken_for_it() -> None:
    table = LaneTable()
    lane = table.get("s", "t")
    lane.start("followup")
    lane.starting = True
    assert table.on_notification("s", "turn/started", started("old")) is None
    assert lane.active_turn_id is None  # the old turn did not become the follow-up's
    assert table.on_notification("s", "turn/completed", completed("old")) is None
    assert lane.busy and lane.completions == 1  # the follow-up's start is still pending
    # Its own response names the turn; then that turn's completion frees the lane.
    lane.starting, lane.active_turn_id = False, "mine"
    assert table.on_notification("s", "turn/completed", completed("old2")) is None
    assert table.on_notification("s", "turn/completed", completed("mine")) is lane


async def test_another_turns_deltas_are_not_the_reply() -> None:
    table = LaneTable()
    lane = table.get("s", "t")
    lane.start("followup")
    lane.active_turn_id = "mine"
    delta = {"threadId": "t", "itemId": "i", "delta": "x"}
    table.on_notification("s", "item/agentMessage/delta", {**delta, "turnId": "old"})
    table.on_notification("s", "item/agentMessage/delta", {**delta, "turnId": "mine"})
    assert lane.reply_text() == "x"


async def test_a_client_turn_still_tracks_turn_started() -> None:
    table = LaneTable()
    assert table.on_notification("s", "turn/started", started("c1")) is None
    lane = table.get("s", "t")
    assert lane.busy and lane.kind == "client" and lane.active_turn_id == "c1"
    assert table.on_notification("s", "turn/completed", completed("c1")) is lane


def test_turn_in_progress_is_recognised() -> None:
    refused = RuntimeCallError({"code": -32600, "message": "turn already in progress"})
    other = RuntimeCallError({"code": -32600, "message": "thread not found: x"})
    assert turn_in_progress(refused)
    assert not turn_in_progress(other)
    assert not turn_in_progress(trio.TooSlowError())

"""Starting records: a lane with one starts nothing; commit consumes, release re-queues."""

from __future__ import annotations

from pathlib import Path

from argus.store import records, turn_starts
from argus.store.db import open_store
from argus.store.turn_starts import TurnStart


async def test_commit_consumes_the_inputs_and_release_requeues_them(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        await store.run(records.add_session, "s1", "local", 1)
        ids = [
            (await store.run(records.add_followup, "s1", "t1", f"x{i}", (None, None), 1, 10))[0]
            for i in range(2)
        ]
        first = TurnStart("s1", 7, "t1", "bridge-a", "followup", (None, None), ids[:1], [], 2)
        await store.run(turn_starts.begin, first)
        assert await store.run(turn_starts.lane_starting, "s1", "t1")
        assert not await store.run(turn_starts.lane_starting, "s1", "other")
        assert await store.run(turn_starts.list_all) == [first]
        await store.run(turn_starts.commit_started, first, "turn-1", 3)
        left = await store.run(records.peek_followups, "s1", "t1", 10)
        assert [f.id for f in left] == ids[1:]
        assert not await store.run(turn_starts.lane_starting, "s1", "t1")
        assert await store.run(records.active_lanes) == [("s1", "t1", "turn-1", "followup")]
        second = TurnStart("s1", 8, "t1", "bridge-a", "followup", (None, None), ids[1:], [], 4)
        await store.run(turn_starts.begin, second)
        assert await store.run(turn_starts.release, "s1", 8)
        assert not await store.run(turn_starts.release, "s1", 8)
        left = await store.run(records.peek_followups, "s1", "t1", 10)
        assert [f.id for f in left] == ids[1:]  # still queued, eligible again
        assert await store.run(turn_starts.list_all) == []
    finally:
        await store.aclose()

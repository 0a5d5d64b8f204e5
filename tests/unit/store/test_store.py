"""The SQLite store: durability settings, migrations, refusal of bad files, queue rules."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from argus.store import cron_records, records
from argus.store.db import DB_RELATIVE, StoreError, open_store
from argus.store.schema import LATEST


async def test_fresh_store_is_wal_full_sync_and_migrated(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        mode = await store.run(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
        sync = await store.run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        version = await store.run(lambda c: c.execute("PRAGMA user_version").fetchone()[0])
    finally:
        await store.aclose()
    assert (mode, sync, version) == ("wal", 2, LATEST)  # 2 = FULL


async def test_a_corrupt_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / DB_RELATIVE
    path.parent.mkdir(parents=True)
    garbage = b"this is not a database" * 100
    path.write_bytes(garbage)
    with pytest.raises(StoreError, match="not a usable SQLite database"):
        await open_store(tmp_path)
    assert path.read_bytes() == garbage


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / DB_RELATIVE
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST + 5}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this Argus"):
        await open_store(tmp_path)


async def test_followups_are_bounded_ordered_and_consumed_with_their_turn(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        await store.run(records.add_session, "s1", "local", 1)
        src = (None, None)
        assert await store.run(records.add_followup, "s1", "t", "a", src, 1, 2) == (1, 1)
        assert (await store.run(records.add_followup, "s1", "t", "b", src, 2, 2))[1] == 2
        with pytest.raises(records.QueueFull):
            await store.run(records.add_followup, "s1", "t", "c", src, 3, 2)
        event = {"eventId": "e1", "kind": "system", "text": "x", "createdAtMs": 5}
        await store.run(records.add_event, "s1", "t", event, 10)
        items = await store.run(records.peek_followups, "s1", "t", 10)
        assert [i.text for i in items] == ["a", "b"]
        events = await store.run(records.peek_events, "s1", "t", 20)
        await store.run(
            records.commit_turn_start, "s1", "t", [items[0].id], [events[0].id], "turn1",
            "followup", src, 9,
        )  # fmt: skip
        assert [i.text for i in await store.run(records.peek_followups, "s1", "t", 10)] == ["b"]
        assert await store.run(records.event_depth, "s1", "t") == 0
        assert await store.run(records.active_lanes) == [("s1", "t", "turn1", "followup")]
    finally:
        await store.aclose()


async def test_a_failed_transaction_changes_nothing(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        await store.run(records.add_session, "s1", "local", 1)
        await store.run(
            cron_records.put_job, "j1", "s1", {"expr": "* * * * *", "text": "t"}, True, 100, 1
        )
        event = {"eventId": "e1", "kind": "cron", "text": "x", "createdAtMs": 5}
        await store.run(records.add_event, "s1", "main", event, 1)
        run = {"runId": "r1", "sessionId": "s1", "startedAtMs": 200, "status": "enqueued"}
        full_queue = ("s1", "main", {**event, "eventId": "e2"}, 1)
        with pytest.raises(records.QueueFull):
            await store.run(cron_records.record_run, "j1", run, 200, 300, full_queue, 50)
        job = await store.run(cron_records.get_job, "j1")
        assert job is not None and job["lastRunAtMs"] is None and job["nextRunAtMs"] == 100
        assert await store.run(cron_records.list_runs, "j1") == []
    finally:
        await store.aclose()


async def test_main_thread_change_moves_queued_events(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        await store.run(records.add_session, "s1", "local", 1)
        await store.run(records.set_main_thread, "s1", "old")
        for i in range(3):
            event = {"eventId": f"e{i}", "kind": "system", "text": str(i), "createdAtMs": i}
            await store.run(records.add_event, "s1", "old", event, 10)
        await store.run(records.set_main_thread, "s1", "new")
        events = await store.run(records.peek_events, "s1", "new", 20)
        assert [e.text for e in events] == ["0", "1", "2"]
    finally:
        await store.aclose()

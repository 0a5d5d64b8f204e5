"""The automation engine on the autojump clock, over in-process demo runtimes.

Each test drives the engine the way clients do (``argus/*`` calls) and checks what a user
would see: which turns ran, in which order, what they carried, and what stayed queued.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio

from argus.automation import api
from argus.sessions.hooks import GatewayMethodError
from argus.store import cron_records, records
from tests.automation_kit import Kit, open_kit


def notes(session: Any, method: str) -> list[dict[str, Any]]:
    """Every ``method`` notification the session broadcast, oldest first."""
    out = []
    for seq in range(session.replay.first_seq, session.replay.last_seq + 1):
        entry = session.replay.get(seq)
        if entry is not None and not entry.directed and f'"{method}"' in entry.text:
            msg = json.loads(entry.text)
            if msg.get("method") == method:
                out.append(msg["params"])
    return out


async def wait_for(predicate: Any, timeout: float = 3600) -> None:
    """Poll (on the autojump clock) until ``predicate()`` holds."""
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.05)


async def new_session(kit: Kit) -> Any:
    session = await kit.manager.create()
    await session.ensure_running()
    return session


async def test_followups_run_in_order_one_per_turn(tmp_path: Path, autojump_clock: Any) -> None:
    async with open_kit(tmp_path) as kit:
        session = await new_session(kit)
        first = await kit.call(session, "argus/input/enqueue", text="/slow 3 1000")
        assert first["started"] is True and first["queued"] is False and first["turnId"]
        second = await kit.call(session, "argus/input/enqueue", text="second")
        third = await kit.call(session, "argus/input/enqueue", text="third")
        assert (second["queued"], second["followupDepth"]) == (True, 1)
        assert (third["queued"], third["followupDepth"]) == (True, 2)
        assert first["threadId"] == second["threadId"] == third["threadId"]
        await wait_for(lambda: len(notes(session, "argus/turn/result")) == 3)
        results = notes(session, "argus/turn/result")
        assert "00000002" in results[0]["text"]
        assert "second" in results[1]["text"] and "third" not in results[1]["text"]
        assert "third" in results[2]["text"]
        assert [r["kind"] for r in results] == ["user", "followup", "followup"]
        depth = await kit.store.run(records.followup_depth, session.id, first["threadId"])
        assert depth == 0


async def test_batch_mode_joins_queued_inputs(tmp_path: Path, autojump_clock: Any) -> None:
    async with open_kit(tmp_path, followup_mode="batch") as kit:
        session = await new_session(kit)
        await kit.call(session, "argus/input/enqueue", text="/slow 2 1000")
        await kit.call(session, "argus/input/enqueue", text="second")
        await kit.call(session, "argus/input/enqueue", text="third")
        await wait_for(lambda: len(notes(session, "argus/turn/result")) == 2)
        batched = notes(session, "argus/turn/result")[1]["text"]
        assert "Follow-ups (batched):" in batched and "1) second" in batched
        assert "2) third" in batched


async def test_queue_bound_is_an_error_not_a_drop(tmp_path: Path, autojump_clock: Any) -> None:
    async with open_kit(tmp_path, followup_max=2) as kit:
        session = await new_session(kit)
        await kit.call(session, "argus/input/enqueue", text="/slow 2 5000")
        await kit.call(session, "argus/input/enqueue", text="a")
        await kit.call(session, "argus/input/enqueue", text="b")
        try:
            await kit.call(session, "argus/input/enqueue", text="c")
        except GatewayMethodError as exc:
            assert exc.code == -32003 and "full" in exc.message
        else:
            raise AssertionError("a third queued input was accepted past the bound")
        await wait_for(lambda: len(notes(session, "argus/turn/result")) == 3)


async def test_missing_text_is_refused(tmp_path: Path, autojump_clock: Any) -> None:
    async with open_kit(tmp_path) as kit:
        session = await new_session(kit)
        for method in ("argus/input/enqueue", "argus/systemEvent/enqueue"):
            for params in ({}, {"text": "   "}, {"text": 5}):
                try:
                    await kit.engine.call_gateway_method(session, method, params)
                except GatewayMethodError as exc:
                    assert (exc.code, exc.message) == (-32602, "Missing 'text'")
                else:
                    raise AssertionError(f"{method} accepted {params}")
        # Nothing was created as a side effect: no main thread, nothing queued.
        assert await kit.store.run(records.get_main_thread, session.id) is None


async def test_main_thread_is_created_once_under_concurrency(
    tmp_path: Path, autojump_clock: Any
) -> None:
    async with open_kit(tmp_path) as kit:
        session = await new_session(kit)
        seen: list[str] = []

        async def ensure() -> None:
            seen.append((await kit.call(session, "argus/thread/main/ensure"))["threadId"])

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(ensure)
        assert len(set(seen)) == 1
        assert len(notes(session, "thread/started")) == 1


async def test_system_events_ride_the_next_turn_twenty_at_a_time(
    tmp_path: Path, autojump_clock: Any
) -> None:
    async with open_kit(tmp_path) as kit:
        session = await new_session(kit)
        started = await kit.call(session, "argus/input/enqueue", text="/slow 2 1000")
        for i in range(25):
            result = await kit.call(session, "argus/systemEvent/enqueue", text=f"event-{i:02d}")
            assert result["threadId"] == started["threadId"]
        await wait_for(lambda: len(notes(session, "argus/turn/result")) >= 3)
        texts = [r["text"] for r in notes(session, "argus/turn/result")]
        second, third = texts[1], texts[2]
        assert "System events (batched):" in second
        assert "event-00" in second and "event-19" in second and "event-20" not in second
        assert "event-20" in third and "event-24" in third
        assert second.index("event-00") < second.index("event-19")
        assert await kit.store.run(records.event_depth, session.id, started["threadId"]) == 0


async def test_a_failed_start_stays_queued_with_backoff(
    tmp_path: Path, autojump_clock: Any
) -> None:
    async with open_kit(tmp_path) as kit:
        session = await new_session(kit)
        result = await kit.call(session, "argus/input/enqueue", text="hello", threadId="nope")
        assert result["queued"] is True and result["started"] is False
        assert "thread not found" in result["startError"]

        async def item() -> records.FollowUp:
            return (await kit.store.run(records.peek_followups, session.id, "nope", 1))[0]

        first = await item()
        assert first.attempts == 1
        await trio.sleep(4)
        assert (await item()).attempts == 1  # 5 s backoff not over yet
        await trio.sleep(2)
        assert (await item()).attempts == 2
        await trio.sleep(9)
        assert (await item()).attempts == 2  # then 10 s
        await trio.sleep(2)
        assert (await item()).attempts == 3


async def test_watchdog_interrupts_a_silent_turn(tmp_path: Path, autojump_clock: Any) -> None:
    async with open_kit(tmp_path, turn_stall_s=60) as kit:
        session = await new_session(kit)
        hung = await kit.call(session, "argus/input/enqueue", text="/approve rm -rf /tmp/x")
        queued = await kit.call(session, "argus/input/enqueue", text="after the stall")
        assert hung["started"] and queued["queued"]
        await wait_for(lambda: notes(session, "argus/turn/stalled"))
        stalled = notes(session, "argus/turn/stalled")[0]
        assert stalled["turnId"] == hung["turnId"] and stalled["idleS"] >= 60
        # The interrupted turn completes as interrupted, and the queued input runs.
        await wait_for(
            lambda: any("after the stall" in r["text"] for r in notes(session, "argus/turn/result"))
        )
        completed = notes(session, "turn/completed")
        assert completed[0]["turn"]["status"] == "interrupted"


async def test_runtime_exit_frees_the_lanes(tmp_path: Path, autojump_clock: Any) -> None:
    async with open_kit(tmp_path) as kit:
        session = await new_session(kit)
        started = await kit.call(session, "argus/input/enqueue", text="/slow 100 1000")
        lane = kit.engine.lanes.get(session.id, started["threadId"])
        assert lane.busy
        kit.engine.on_runtime_exit(session)  # what the session reports when its runtime dies
        assert not lane.busy
        await trio.sleep(1)
        assert await kit.store.run(records.active_lanes) == []


async def test_heartbeat_runs_with_tasks_and_skips_without(
    tmp_path: Path, autojump_clock: Any
) -> None:
    async with open_kit(tmp_path, heartbeat_interval_s=600) as kit:
        quiet = await new_session(kit)
        busy = await new_session(kit)
        for session in (quiet, busy):
            await kit.call(session, "argus/thread/main/ensure")
        workspace = busy.workspace_path()
        (workspace / "HEARTBEAT.md").write_text("# HEARTBEAT.md\n\n## Tasks\n- check the mail\n")
        (quiet.workspace_path() / "HEARTBEAT.md").write_text("# HEARTBEAT.md\n\n## Tasks\n- [ ]\n")
        await trio.sleep(1300)
        beats = [r for r in notes(busy, "argus/turn/result") if r["kind"] == "heartbeat"]
        assert 2 <= len(beats) <= 3
        assert "HEARTBEAT: You are running a background heartbeat." in beats[0]["text"]
        assert "check the mail" in beats[0]["text"]
        assert notes(quiet, "argus/turn/result") == []


async def test_heartbeat_request_without_tasks_or_events_does_nothing(
    tmp_path: Path, autojump_clock: Any
) -> None:
    async with open_kit(tmp_path) as kit:
        session = await new_session(kit)
        await kit.call(session, "argus/thread/main/ensure")
        assert await kit.call(session, "argus/heartbeat/request") == {"ok": True}
        await trio.sleep(60)
        assert notes(session, "argus/turn/result") == []


async def test_cron_system_event_job_wakes_the_main_thread(
    tmp_path: Path, autojump_clock: Any
) -> None:
    async with open_kit(tmp_path) as kit:
        session = await new_session(kit)
        added = await kit.call(
            session, "argus/cron/add", expr="*/5 * * * *", text="check inbox", enabled=True
        )
        job_id = added["job"]["jobId"]
        await trio.sleep(11 * 60)
        results = notes(session, "argus/turn/result")
        assert len(results) == 2
        assert all("[cron at=" in r["text"] and "check inbox" in r["text"] for r in results)
        runs = (await kit.call(session, "argus/cron/runs", jobId=job_id))["runs"]
        assert [r["status"] for r in runs] == ["enqueued", "enqueued"]
        job = (await kit.call(session, "argus/cron/list"))["jobs"][0]
        assert job["lastRunAtMs"] is not None and job["nextRunAtMs"] > job["lastRunAtMs"]


async def test_cron_turn_job_runs_on_its_own_thread(tmp_path: Path, autojump_clock: Any) -> None:
    async with open_kit(tmp_path) as kit:
        session = await new_session(kit)
        main = (await kit.call(session, "argus/thread/main/ensure"))["threadId"]
        added = await kit.call(
            session, "argus/cron/add", expr="0 * * * *", text="report", mode="turn"
        )
        await trio.sleep(3600)
        results = notes(session, "argus/turn/result")
        assert len(results) == 1 and results[0]["kind"] == "cron"
        assert results[0]["threadId"] != main and "report" in results[0]["text"]
        await trio.sleep(1)
        runs = await kit.store.run(cron_records.list_runs, added["job"]["jobId"])
        assert runs[0]["status"] == "success" and runs[0]["threadId"] == results[0]["threadId"]


async def test_missed_runs_collapse_into_one(tmp_path: Path, autojump_clock: Any) -> None:
    async with open_kit(tmp_path) as kit:
        session = await new_session(kit)
        added = await kit.call(session, "argus/cron/add", expr="*/5 * * * *", text="tick")
        job_id = added["job"]["jobId"]
        past = kit.engine.wall_ms() - 60 * 60 * 1000  # as if the gateway was down an hour
        await kit.store.run(cron_records.set_schedule, job_id, past)
        kit.engine.cron_wake.set()
        await trio.sleep(1)
        runs = await kit.store.run(cron_records.list_runs, job_id)
        assert len(runs) == 1 and runs[0]["missed"] >= 11


async def test_invalid_cron_jobs_are_refused(tmp_path: Path, autojump_clock: Any) -> None:
    async with open_kit(tmp_path) as kit:
        session = await new_session(kit)
        for params in (
            {"expr": "not a cron", "text": "x"},
            {"expr": "* * * * *", "text": "x", "tz": "Mars/Olympus"},
            {"expr": "* * * * *", "text": "x", "enabled": "false"},
        ):
            try:
                await kit.engine.call_gateway_method(session, "argus/cron/add", params)
            except GatewayMethodError as exc:
                assert exc.code == -32602 and exc.message
            else:
                raise AssertionError(f"accepted {params}")
        assert (await kit.call(session, "argus/cron/list"))["jobs"] == []


async def test_enqueue_api_binds_the_source_channel(tmp_path: Path, autojump_clock: Any) -> None:
    async with open_kit(tmp_path) as kit:
        session = await new_session(kit)
        source = {"channel": "telegram", "chatKey": "-100:42"}
        result = await api.enqueue_input(kit.engine, session, {"text": "hi", "source": source})
        binding = await kit.store.run(records.get_binding, session.id, result["threadId"])
        assert binding is not None and binding["channel"] == "telegram"
        await wait_for(lambda: notes(session, "argus/turn/result"))
        assert notes(session, "argus/turn/result")[0]["source"] == source

"""Prompt format, heartbeat rules and cron arithmetic (pure functions)."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from argus import workspace
from argus.automation import cronspec, heartbeat, prompts, turn_input
from argus.store.records import SystemEvent

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


# -- prompt ----------------------------------------------------------------------------------


def test_user_turn_prompt_has_the_original_shape(tmp_path: Path) -> None:
    (tmp_path / "AGENTS.md").write_text("---\nsummary: x\n---\n\n# Agents\nbe nice\n")
    (tmp_path / "USER.md").write_text("# User\nAda\n")
    context = prompts.read_project_context(tmp_path, heartbeat=False, file_cap=1000, total_cap=5000)
    event = SystemEvent(1, "e1", "alert", "disk almost full", None, 1795561586392)
    prompt = turn_input.assemble(context or "", "  SLOW first ", [event], heartbeat=False)
    assert prompt == (
        "# Project Context\n\n[AGENTS.md]\n# Agents\nbe nice\n[/AGENTS.md]\n\n"
        "[USER.md]\n# User\nAda\n[/USER.md]\n\n"
        "SLOW first\n\n"
        "System events (batched):\n"
        "[alert at=2026-11-24T23:06:26.392000+00:00] disk almost full\n\n"
        + turn_input.USER_INSTRUCTIONS
    )


def test_heartbeat_prompt_includes_heartbeat_md_and_contract(tmp_path: Path) -> None:
    (tmp_path / "HEARTBEAT.md").write_text("# HEARTBEAT.md\n- water the plants\n")
    context = prompts.read_project_context(tmp_path, heartbeat=True, file_cap=1000, total_cap=5000)
    meta = {"jobId": "d801a6dc30", "expr": "*/5 * * * *"}
    event = SystemEvent(1, "e", "cron", "tick job", meta, 1795561645001)
    prompt = turn_input.assemble(context or "", "", [event], heartbeat=True)
    assert "[HEARTBEAT.md]\n# HEARTBEAT.md\n- water the plants\n[/HEARTBEAT.md]" in prompt
    assert turn_input.HEARTBEAT_PROMPT in prompt
    assert (
        "[cron at=2026-11-24T23:07:25.001000+00:00"
        ' meta={"jobId": "d801a6dc30", "expr": "*/5 * * * *"}] tick job' in prompt
    )
    assert prompt.endswith(turn_input.HEARTBEAT_CONTRACT)


def test_context_is_capped_per_file_and_in_total(tmp_path: Path) -> None:
    (tmp_path / "AGENTS.md").write_text("a" * 5000)
    (tmp_path / "SOUL.md").write_text("s" * 5000)
    (tmp_path / "USER.md").write_text("u" * 5000)
    context = prompts.read_project_context(tmp_path, heartbeat=False, file_cap=1000, total_cap=2500)
    assert context is not None
    assert "[... AGENTS.md truncated: 4000 more characters]" in context
    assert context.endswith("more characters]") and "Project Context truncated" in context
    assert len(context) < 2600


def test_no_context_without_files_and_unreadable_files_say_so(tmp_path: Path) -> None:
    assert prompts.read_project_context(tmp_path, heartbeat=True, file_cap=10, total_cap=10) is None
    (tmp_path / "SOUL.md").write_bytes(b"\xff\xfe bad")
    context = prompts.read_project_context(tmp_path, heartbeat=False, file_cap=100, total_cap=1000)
    assert context is not None and "(failed to read SOUL.md:" in context


def test_templates_bootstrap_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "SOUL.md").write_text("mine\n")
    written = workspace.bootstrap_templates(tmp_path)
    assert sorted(written) == ["AGENTS.md", "HEARTBEAT.md", "USER.md"]
    assert (tmp_path / "SOUL.md").read_text() == "mine\n"
    assert not (tmp_path / "AGENTS.md").read_text().startswith("---")
    assert workspace.bootstrap_templates(tmp_path) == []


def test_followup_wrapper() -> None:
    assert turn_input.followup_text(["hi"], batched=False) == "hi"
    assert (
        turn_input.followup_text([" a ", "b"], batched=True) == "Follow-ups (batched):\n1) a\n2) b"
    )


# -- heartbeat -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "empty"),
    [
        ("# HEARTBEAT.md\n\n<!-- keep empty -->\n## Tasks\n- [ ]\n* [x]\n+\n", True),
        ("---\ntitle: x\n---\n# Tasks\n", True),
        ("# Tasks\n- check mail\n", False),
        ("#notaheader\n", False),
        ("<!-- multi\nline -->\n", False),
    ],
)
def test_heartbeat_tasks_detection(text: str, empty: bool) -> None:
    assert heartbeat.is_effectively_empty(text) is empty


def test_shipped_heartbeat_template_has_no_tasks(tmp_path: Path) -> None:
    workspace.bootstrap_templates(tmp_path)
    assert heartbeat.heartbeat_has_tasks(tmp_path) is False


def test_active_hours_wrap_midnight_in_a_zone() -> None:
    window = heartbeat.parse_active_hours("22:00-06:00@Europe/Berlin")
    assert window.contains(at("2026-07-01T21:30:00+00:00"))  # 23:30 in Berlin (CEST)
    assert not window.contains(at("2026-07-01T12:00:00+00:00"))
    day = heartbeat.parse_active_hours("08:00-22:00")
    assert day.contains(at("2026-07-01T08:00:00+00:00"))
    assert not day.contains(at("2026-07-01T22:00:00+00:00"))
    for bad in ("8-22", "08:00-08:00", "08:00-22:00@Nowhere/City", "25:00-26:00"):
        with pytest.raises(ValueError):
            heartbeat.parse_active_hours(bad)


@pytest.mark.parametrize(
    ("reply", "suppressed"),
    [
        ("HEARTBEAT_OK", True),
        ("  **HEARTBEAT_OK**\n", True),
        ("HEARTBEAT_OK.", True),
        ("Disk is 95% full. HEARTBEAT_OK", False),
        ("The server is down!", False),
    ],
)
def test_heartbeat_ok_suppression(reply: str, suppressed: bool) -> None:
    assert heartbeat.is_heartbeat_ok(reply) is suppressed


# -- cron ------------------------------------------------------------------------------------


def job(**fields: object) -> dict:
    return cronspec.validate_job({"text": "x", **fields})


def test_validation_messages() -> None:
    cases = {
        "Invalid cron expr": {"expr": "61 * * * *"},
        "Invalid 'tz'": {"expr": "* * * * *", "tz": "Mars/Base"},
        "Invalid 'enabled'": {"expr": "* * * * *", "enabled": "false"},
        "exactly one of": {},
        "Invalid 'mode'": {"expr": "* * * * *", "mode": "shell"},
        "Invalid 'at'": {"at": "tomorrow"},
    }
    for message, fields in cases.items():
        with pytest.raises(cronspec.CronValidationError, match=message):
            job(**fields)
    with pytest.raises(cronspec.CronValidationError, match="Missing 'text'"):
        cronspec.validate_job({"expr": "* * * * *", "text": " "})


def test_daily_job_across_spring_forward_in_berlin() -> None:
    spec = job(expr="30 2 * * *", tz="Europe/Berlin")
    # 2026-03-29: clocks go from 02:00 to 03:00 CET->CEST; 02:30 does not exist.
    before = at("2026-03-28T12:00:00+00:00")
    first = cronspec.next_run(spec, before)
    assert first == at("2026-03-29T01:00:00+00:00")  # 03:00 CEST, the end of the gap
    second = cronspec.next_run(spec, first)  # type: ignore[arg-type]
    assert second == at("2026-03-30T00:30:00+00:00")  # 02:30 CEST
    assert second is not None and second > first  # type: ignore[operator]


def test_daily_job_across_fall_back_in_new_york_fires_once() -> None:
    spec = job(expr="30 1 * * *", tz="America/New_York")
    # 2026-11-01: 01:30 happens twice (EDT, then EST). One run, at the first.
    first = cronspec.next_run(spec, at("2026-10-31T12:00:00+00:00"))
    assert first == at("2026-11-01T05:30:00+00:00")  # 01:30 EDT
    second = cronspec.next_run(spec, first)  # type: ignore[arg-type]
    assert second == at("2026-11-02T06:30:00+00:00")  # 01:30 EST the next day


def test_hourly_job_never_runs_twice_for_one_local_time_across_fall_back() -> None:
    spec = job(expr="0 * * * *", tz="Europe/Berlin")
    cursor = at("2026-10-24T22:00:00+00:00")
    runs = []
    for _ in range(8):
        cursor = cronspec.next_run(spec, cursor)  # type: ignore[assignment]
        runs.append(cursor)
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    # 02:00 local happens twice on 2026-10-25; it fires once (at its first occurrence).
    assert gaps.count(dt.timedelta(hours=2)) == 1
    assert all(g == dt.timedelta(hours=1) for g in gaps if g != dt.timedelta(hours=2))
    local = [r.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H") for r in runs]
    assert len(local) == len(set(local))


def test_missed_runs_are_counted() -> None:
    spec = job(expr="*/5 * * * *")
    scheduled = at("2026-11-25T10:00:00+00:00")
    assert cronspec.count_missed(spec, scheduled, at("2026-11-25T11:02:00+00:00")) == 12
    assert cronspec.count_missed(spec, scheduled, scheduled) == 0


def test_one_shot_job() -> None:
    spec = job(at="2026-12-01T09:00:00Z")
    assert cronspec.next_run(spec, at("2026-11-25T00:00:00+00:00")) == at(
        "2026-12-01T09:00:00+00:00"
    )
    assert cronspec.next_run(spec, at("2026-12-01T09:00:00+00:00")) is None

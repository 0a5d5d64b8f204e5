"""Writing an original ``state.json`` into the store, in one transaction.

Sessions keep their ids (so clients can attach to them), main threads stay main, queued
events stay queued in order, cron jobs keep their schedule (as UTC expressions, which is
what the original evaluated), and Telegram bindings become channel bindings. Entries that
already exist (same session, event id or job id) are left as they are.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..store import records
from . import cronspec
from .legacy_state import LegacyState


def import_legacy(
    conn: sqlite3.Connection, state: LegacyState, mode: str, now_ms: int, valid_id: Any
) -> dict[str, Any]:
    """Import ``state``; returns counts and the problems met (added to the parse warnings)."""
    counts = {"sessions": 0, "mainThreads": 0, "events": 0, "cronJobs": 0, "bindings": 0}
    warnings = list(state.warnings)
    for session in state.sessions:
        if not valid_id(session.id):
            warnings.append(f"session {session.id!r}: not a valid session id, skipped")
            continue
        before = conn.total_changes
        records.add_session(conn, session.id, mode, now_ms)
        counts["sessions"] += conn.total_changes > before
        if session.main_thread_id and not records.get_main_thread(conn, session.id):
            records.set_main_thread(conn, session.id, session.main_thread_id)
            counts["mainThreads"] += 1
        for thread_id, events in session.events.items():
            for event in events:
                try:
                    records.add_event(conn, session.id, thread_id, event, 1_000_000)
                except sqlite3.IntegrityError:
                    continue  # already imported
                counts["events"] += 1
        for job in session.cron_jobs:
            try:
                spec = cronspec.validate_job(
                    {"expr": job["expr"], "text": job["text"], "enabled": job["enabled"]}
                )
            except cronspec.CronValidationError as exc:
                warnings.append(f"cron job {job['jobId']}: {exc}, skipped")
                continue
            exists = conn.execute(
                "SELECT 1 FROM cron_jobs WHERE job_id = ?", (job["jobId"],)
            ).fetchone()
            if exists:
                continue
            enabled = spec.pop("enabled")
            conn.execute(
                "INSERT INTO cron_jobs (job_id, session_id, spec, enabled, last_run_at_ms,"
                " next_run_at_ms, failures, backoff_until_ms, created_at_ms, updated_at_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, 0, NULL, ?, ?)",
                (
                    job["jobId"],
                    session.id,
                    json.dumps(spec),
                    int(enabled),
                    job["lastRunAtMs"],
                    job["nextRunAtMs"],
                    now_ms,
                    now_ms,
                ),
            )
            counts["cronJobs"] += 1
        for thread_id, binding in session.bindings.items():
            records.bind_channel(
                conn, session.id, thread_id, binding["channel"], binding["chatKey"], binding["atMs"]
            )
            counts["bindings"] += 1
    return {"imported": counts, "warnings": warnings}

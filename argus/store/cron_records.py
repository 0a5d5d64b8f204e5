"""Cron jobs and their run history in the store.

A job's definition is kept as one JSON document (``spec``, validated by
``argus.automation.cronspec`` before it gets here) next to the scheduling columns the
scheduler updates. ``record_run`` commits a run, the job's new ``last_run_at``/``next_run_at``
and the system event the run produces in one transaction: a crash can lose a run's effect
only together with the run's record, so a run is never fired twice.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from . import records

JOB_COLUMNS = (
    "job_id, session_id, spec, enabled, last_run_at_ms, next_run_at_ms, failures,"
    " backoff_until_ms, created_at_ms, updated_at_ms"
)


def _job(row: tuple[Any, ...]) -> dict[str, Any]:
    spec = json.loads(row[2])
    spec.update(
        jobId=row[0],
        sessionId=row[1],
        enabled=bool(row[3]),
        lastRunAtMs=row[4],
        nextRunAtMs=row[5],
        failures=row[6],
        backoffUntilMs=row[7],
        createdAtMs=row[8],
        updatedAtMs=row[9],
    )
    return spec


def put_job(
    conn: sqlite3.Connection,
    job_id: str,
    session_id: str,
    spec: dict[str, Any],
    enabled: bool,
    next_run_at_ms: int | None,
    now_ms: int,
) -> dict[str, Any]:
    """Create or replace a job (a replaced job starts afresh: no last run, no failures)."""
    conn.execute("DELETE FROM cron_jobs WHERE job_id = ?", (job_id,))
    conn.execute(
        f"INSERT INTO cron_jobs ({JOB_COLUMNS}) VALUES (?, ?, ?, ?, NULL, ?, 0, NULL, ?, ?)",
        (job_id, session_id, json.dumps(spec), int(enabled), next_run_at_ms, now_ms, now_ms),
    )
    job = get_job(conn, job_id)
    assert job is not None
    return job


def get_job(conn: sqlite3.Connection, job_id: str) -> dict[str, Any] | None:
    """One job, or None."""
    row = conn.execute(
        f"SELECT {JOB_COLUMNS} FROM cron_jobs WHERE job_id = ?", (job_id,)
    ).fetchone()
    return _job(row) if row else None


def delete_job(conn: sqlite3.Connection, job_id: str, session_id: str | None = None) -> bool:
    """Remove a job (only from ``session_id`` when given); whether it existed."""
    if session_id is None:
        cur = conn.execute("DELETE FROM cron_jobs WHERE job_id = ?", (job_id,))
    else:
        cur = conn.execute(
            "DELETE FROM cron_jobs WHERE job_id = ? AND session_id = ?", (job_id, session_id)
        )
    return cur.rowcount > 0


def list_jobs(conn: sqlite3.Connection, session_id: str | None = None) -> list[dict[str, Any]]:
    """Jobs, oldest first, of one session or of all."""
    if session_id is None:
        rows = conn.execute(
            f"SELECT {JOB_COLUMNS} FROM cron_jobs ORDER BY created_at_ms"
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {JOB_COLUMNS} FROM cron_jobs WHERE session_id = ? ORDER BY created_at_ms",
            (session_id,),
        ).fetchall()
    return [_job(r) for r in rows]


def set_schedule(conn: sqlite3.Connection, job_id: str, next_run_at_ms: int | None) -> None:
    """Store a freshly computed next run (e.g. for a job that never had one)."""
    conn.execute(
        "UPDATE cron_jobs SET next_run_at_ms = ? WHERE job_id = ?", (next_run_at_ms, job_id)
    )


def record_run(
    conn: sqlite3.Connection,
    job_id: str,
    run: dict[str, Any],
    last_run_at_ms: int,
    next_run_at_ms: int | None,
    event: tuple[str, str, dict[str, Any], int] | None,
    keep_runs: int,
) -> None:
    """Commit a run with the job's new schedule and, for systemEvent jobs, its event.

    A job with no next run (a one-shot ``at`` job) is disabled. ``event`` is
    ``(session, thread, event, max_events)``; a full queue raises ``records.QueueFull`` and
    rolls everything back, so the run is retried after the job's backoff.
    """
    conn.execute(
        "UPDATE cron_jobs SET last_run_at_ms = ?, next_run_at_ms = ?, failures = 0,"
        " backoff_until_ms = NULL, enabled = CASE WHEN ? IS NULL THEN 0 ELSE enabled END"
        " WHERE job_id = ?",
        (last_run_at_ms, next_run_at_ms, next_run_at_ms, job_id),
    )
    conn.execute(
        "INSERT INTO cron_runs (run_id, job_id, session_id, scheduled_at_ms, started_at_ms, missed,"
        " status, thread_id, turn_id, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            run["runId"],
            job_id,
            run["sessionId"],
            run.get("scheduledAtMs"),
            run["startedAtMs"],
            run.get("missed", 0),
            run["status"],
            run.get("threadId"),
            run.get("turnId"),
            run.get("error"),
        ),
    )
    if event is not None:
        session_id, thread_id, payload, max_events = event
        records.add_event(conn, session_id, thread_id, payload, max_events)
    conn.execute(
        "DELETE FROM cron_runs WHERE job_id = ? AND id NOT IN"
        " (SELECT id FROM cron_runs WHERE job_id = ? ORDER BY id DESC LIMIT ?)",
        (job_id, job_id, keep_runs),
    )


def finish_run(
    conn: sqlite3.Connection,
    run_id: str,
    status: str,
    now_ms: int,
    *,
    thread_id: str | None = None,
    turn_id: str | None = None,
    error: str | None = None,
) -> None:
    """Update a run's outcome (an isolated turn's start, completion or failure)."""
    conn.execute(
        "UPDATE cron_runs SET status = ?, finished_at_ms = ?, thread_id = COALESCE(?, thread_id),"
        " turn_id = COALESCE(?, turn_id), error = COALESCE(?, error) WHERE run_id = ?",
        (status, now_ms, thread_id, turn_id, error, run_id),
    )


def mark_run_started(
    conn: sqlite3.Connection, run_id: str, thread_id: str, turn_id: str | None
) -> None:
    """An isolated run's turn started; its status moves on only if it had not ended yet."""
    conn.execute(
        "UPDATE cron_runs SET thread_id = ?, turn_id = ?,"
        " status = CASE status WHEN 'starting' THEN 'running' ELSE status END WHERE run_id = ?",
        (thread_id, turn_id, run_id),
    )


def job_failed(
    conn: sqlite3.Connection, job_id: str, error: str, backoff_until_ms: int, now_ms: int
) -> int:
    """Count a failure and back the job off; returns the failure count."""
    conn.execute(
        "UPDATE cron_jobs SET failures = failures + 1, backoff_until_ms = ?, updated_at_ms = ?"
        " WHERE job_id = ?",
        (backoff_until_ms, now_ms, job_id),
    )
    row = conn.execute("SELECT failures FROM cron_jobs WHERE job_id = ?", (job_id,)).fetchone()
    return int(row[0]) if row else 0


def list_runs(conn: sqlite3.Connection, job_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """A job's most recent runs, newest first."""
    rows = conn.execute(
        "SELECT run_id, scheduled_at_ms, started_at_ms, missed, status, thread_id, turn_id, error,"
        " finished_at_ms FROM cron_runs WHERE job_id = ? ORDER BY id DESC LIMIT ?",
        (job_id, limit),
    ).fetchall()
    keys = (
        "runId",
        "scheduledAtMs",
        "startedAtMs",
        "missed",
        "status",
        "threadId",
        "turnId",
        "error",
        "finishedAtMs",
    )
    return [dict(zip(keys, r, strict=True)) for r in rows]

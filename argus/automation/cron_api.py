"""Cron job operations shared by ``argus/cron/*`` (the caller's session) and HTTP.

Validation is ``cronspec``'s; this module turns its verdicts into JSON-RPC errors, stores
the job and wakes the scheduler. Times cross this boundary as epoch milliseconds.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from ..protocol import codes
from ..sessions.hooks import GatewayMethodError
from ..store import cron_records
from . import cronspec

if TYPE_CHECKING:
    from ..sessions.session import Session
    from .engine import Engine


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def next_run_ms(job: dict[str, Any], after_ms: int) -> int | None:
    """The job's next run strictly after ``after_ms``; None when it will not run again."""
    when = cronspec.next_run(job, _utc(after_ms))
    return int(when.timestamp() * 1000) if when is not None else None


def missed_runs(job: dict[str, Any], scheduled_ms: int | None, now_ms: int) -> int:
    """Runs that fell due during downtime besides the one being fired now."""
    if scheduled_ms is None:
        return 0
    return cronspec.count_missed(job, _utc(scheduled_ms), _utc(now_ms))


def validate(body: dict[str, Any], session_id: str) -> dict[str, Any]:
    """A validated job spec, or -32602 with the validator's message."""
    try:
        return cronspec.validate_job({**body, "sessionId": session_id})
    except cronspec.CronValidationError as exc:
        raise GatewayMethodError(codes.INVALID_PARAMS, str(exc)) from None


async def add_job(engine: Engine, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create or replace a job of ``session_id``; the stored job."""
    spec = validate(body, session_id)
    job_id = spec.pop("jobId", None) or uuid.uuid4().hex[:10]
    spec.pop("sessionId", None)
    enabled = bool(spec.pop("enabled", True))
    now = engine.wall_ms()
    next_run = next_run_ms(spec, now) if enabled else None
    existing = await engine.store.run(cron_records.get_job, job_id)
    if existing is not None and existing["sessionId"] != session_id:
        raise GatewayMethodError(codes.INVALID_PARAMS, f"Job {job_id} belongs to another session")
    job = await engine.store.run(
        cron_records.put_job, job_id, session_id, spec, enabled, next_run, now
    )
    engine.cron_wake.set()
    return job


async def remove_job(engine: Engine, session_id: str | None, job_id: str) -> bool:
    """Delete a job (of ``session_id`` when given); whether it existed."""
    removed = await engine.store.run(cron_records.delete_job, job_id, session_id)
    engine.cron_wake.set()
    return removed


async def list_jobs(engine: Engine, session_id: str | None) -> list[dict[str, Any]]:
    """Jobs of one session, or of all."""
    return await engine.store.run(cron_records.list_jobs, session_id)


async def call(engine: Engine, session: Session, action: str, params: dict[str, Any]) -> Any:
    """``argus/cron/list|add|remove|runs`` for the calling session."""
    if action == "list":
        return {"ok": True, "sessionId": session.id, "jobs": await list_jobs(engine, session.id)}
    if action == "add":
        job = await add_job(engine, session.id, params)
        return {"ok": True, "sessionId": session.id, "job": job}
    job_id = params.get("jobId")
    if not isinstance(job_id, str) or not job_id.strip():
        raise GatewayMethodError(codes.INVALID_PARAMS, "Missing 'jobId'")
    if action == "remove":
        if not await remove_job(engine, session.id, job_id.strip()):
            raise GatewayMethodError(codes.INVALID_PARAMS, "Job not found")
        return {"ok": True, "sessionId": session.id, "jobId": job_id.strip()}
    if action == "runs":
        job = await engine.store.run(cron_records.get_job, job_id.strip())
        if job is None or job["sessionId"] != session.id:
            raise GatewayMethodError(codes.INVALID_PARAMS, "Job not found")
        runs = await engine.store.run(cron_records.list_runs, job_id.strip(), 50)
        return {"ok": True, "jobId": job_id.strip(), "runs": runs}
    raise GatewayMethodError(codes.METHOD_NOT_FOUND, f"Method not found: argus/cron/{action}")


def make_cron_provider(engine: Engine) -> Any:
    """The MCP ``cron`` tool's backend: one session's jobs (ValueError for a bad request)."""

    async def provider(session_id: str, action: str, args: dict[str, Any]) -> dict[str, Any]:
        try:
            if action == "list":
                return {"ok": True, "jobs": await list_jobs(engine, session_id)}
            if action == "add":
                job = args.get("job")
                if not isinstance(job, dict):
                    raise ValueError("action=add needs 'job': an object")
                return {"ok": True, "job": await add_job(engine, session_id, job)}
            job_id = args.get("jobId")
            if not isinstance(job_id, str) or not job_id.strip():
                raise ValueError("action=remove needs 'jobId'")
            if not await remove_job(engine, session_id, job_id.strip()):
                raise ValueError(f"no job {job_id} in this session")
            return {"ok": True, "jobId": job_id.strip()}
        except GatewayMethodError as exc:
            raise ValueError(exc.message) from None

    return provider

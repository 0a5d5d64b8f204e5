"""Cron job validation and schedule arithmetic (croniter + zoneinfo), as pure functions.

Jobs are plain dicts (what the store keeps as JSON): ``expr`` or ``at``, ``tz``, ``text``,
``mode``, ``threadId``/``target``, ``enabled``. Times are timezone-aware datetimes.

DST: an expression is evaluated on local wall time in ``tz``. A local time that does not
exist (spring forward, e.g. 02:30 in Europe/Berlin on the last Sunday of March) fires once,
at the first instant after the gap; a local time that occurs twice (fall back) fires once,
at its first occurrence. ``next_run`` never returns the same instant twice.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

MODES = ("systemEvent", "turn")
MAX_TEXT = 20_000
MAX_AT_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant datetime has
JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_MISSED_COUNT = 10_000  # counting stops here; the run still happens once
FIELDS = {"jobId", "sessionId", "expr", "tz", "at", "text", "mode", "threadId", "target", "enabled"}


class CronValidationError(ValueError):
    """A job definition a user must fix; ``str()`` is the message for a 400 / -32602."""


def _zone(name: Any) -> dt.tzinfo:
    if name is None or name == "" or name == "UTC":
        return dt.UTC
    if not isinstance(name, str):
        raise CronValidationError("Invalid 'tz': expected an IANA zone name such as Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronValidationError(f"Invalid 'tz': unknown time zone {name!r}") from None


def _parse_at(value: Any) -> dt.datetime:
    if isinstance(value, bool):
        raise CronValidationError("Invalid 'at': expected epoch milliseconds or an ISO-8601 time")
    if isinstance(value, int | float):
        # Checked before any arithmetic: 1e300 or a 400-digit integer would overflow.
        if not (0 <= value <= MAX_AT_MS):  # False for NaN too
            raise CronValidationError(
                f"Invalid 'at': epoch milliseconds must be between 0 and {MAX_AT_MS} (year 9999)"
            )
        return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise CronValidationError(f"Invalid 'at': {value!r} is not an ISO-8601 time") from None
        if when.tzinfo is None:
            raise CronValidationError("Invalid 'at': give a UTC offset (e.g. 2026-12-01T09:00Z)")
        try:
            return when.astimezone(dt.UTC)
        except OverflowError:
            raise CronValidationError("Invalid 'at': outside the years 1 to 9999 in UTC") from None
    raise CronValidationError("Invalid 'at': expected epoch milliseconds or an ISO-8601 time")


def validate_job(body: dict[str, Any]) -> dict[str, Any]:
    """A clean job dict from an API body, or ``CronValidationError``."""
    unknown = sorted(set(body) - FIELDS - {"token"})
    if unknown:
        raise CronValidationError(f"Unknown field(s): {', '.join(unknown)}")
    job: dict[str, Any] = {}
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise CronValidationError("Missing 'text'")
    if len(text) > MAX_TEXT:
        raise CronValidationError(f"'text' is longer than {MAX_TEXT} characters")
    job["text"] = text
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise CronValidationError("Invalid 'enabled': expected true or false (a JSON boolean)")
    job["enabled"] = enabled
    mode = body.get("mode", "systemEvent")
    if mode not in MODES:
        raise CronValidationError("Invalid 'mode': expected 'systemEvent' or 'turn'")
    job["mode"] = mode
    zone = _zone(body.get("tz"))
    job["tz"] = body.get("tz") or "UTC"
    expr, at = body.get("expr"), body.get("at")
    if (expr is None) == (at is None):
        raise CronValidationError(
            "Give exactly one of 'expr' (a cron expression) or 'at' (one run)"
        )
    if expr is not None:
        if not isinstance(expr, str) or not expr.strip():
            raise CronValidationError("Missing 'expr'")
        try:
            croniter(expr.strip(), dt.datetime.now(zone)).get_next(dt.datetime)
        except (CroniterBadCronError, CroniterBadDateError, ValueError, KeyError) as exc:
            raise CronValidationError(f"Invalid cron expr: {exc}") from None
        job["expr"] = expr.strip()
    else:
        job["at"] = int(_parse_at(at).timestamp() * 1000)
    job_id = body.get("jobId")
    if job_id is not None and not (isinstance(job_id, str) and JOB_ID_RE.match(job_id)):
        # Ids are URL path segments (DELETE /automation/cron/jobs/<id>): no '/', no '..'.
        raise CronValidationError(
            "Invalid 'jobId': 1-64 characters of letters, digits, '_', '.' and '-',"
            " starting with a letter or digit"
        )
    for key in ("threadId", "target", "jobId", "sessionId"):
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip() or len(value) > 200:
            raise CronValidationError(f"Invalid '{key}': expected a non-empty string")
        job[key] = value.strip()
    if job.get("target") not in (None, "main"):
        raise CronValidationError("Invalid 'target': only 'main' is supported")
    return job


def next_run(job: dict[str, Any], after: dt.datetime) -> dt.datetime | None:
    """The first run strictly after ``after`` (None: a one-shot job whose time has passed)."""
    if job.get("at") is not None:
        when = dt.datetime.fromtimestamp(job["at"] / 1000, dt.UTC)
        return when if when > after else None
    zone = _zone(job.get("tz"))
    local_after = after.astimezone(zone)
    itr = croniter(job["expr"], local_after)
    for _ in range(1000):
        candidate = itr.get_next(dt.datetime)
        # Normalise through UTC: a nonexistent local time maps past the gap; an ambiguous
        # one to its first occurrence (fold=0).
        if candidate.tzinfo is None:
            candidate = candidate.replace(tzinfo=zone)
        utc = candidate.replace(fold=0).astimezone(dt.UTC)
        if utc > after:
            return utc
    return None


def count_missed(job: dict[str, Any], scheduled: dt.datetime, now: dt.datetime) -> int:
    """How many further runs fell due in ``(scheduled, now]`` (they collapse into one run)."""
    missed = 0
    cursor = scheduled
    while missed < MAX_MISSED_COUNT:
        following = next_run(job, cursor)
        if following is None or following > now:
            break
        missed += 1
        cursor = following
    return missed

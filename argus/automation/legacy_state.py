"""Reading the original gateway's ``state.json`` (version 1), for ``argus import-state``.

The original loaded leniently (invalid entries dropped silently); we keep the leniency but
report every entry we skip, so a user knows what did not come across.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class LegacyStateError(Exception):
    """The file is not a state.json we can read at all."""


@dataclass
class LegacySession:
    """One session of the original: main thread, queued events, cron jobs, bindings."""

    id: str
    main_thread_id: str | None = None
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    cron_jobs: list[dict[str, Any]] = field(default_factory=list)
    bindings: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class LegacyState:
    """Everything importable, plus what was skipped and why."""

    default_session_id: str | None
    sessions: list[LegacySession]
    warnings: list[str]


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse(data: Any) -> LegacyState:
    """Parse a decoded state document."""
    if not isinstance(data, dict):
        raise LegacyStateError("state.json must contain a JSON object")
    warnings: list[str] = []
    sessions: list[LegacySession] = []
    raw_sessions = data.get("sessions")
    if not isinstance(raw_sessions, dict):
        raw_sessions = {}
        warnings.append("no 'sessions' object")
    for raw_id, raw in raw_sessions.items():
        sid = _text(raw_id)
        if sid is None or not isinstance(raw, dict):
            warnings.append(f"session {raw_id!r}: not an object, skipped")
            continue
        session = LegacySession(sid, _text(raw.get("mainThreadId")))
        for tid, queue in (raw.get("systemEventQueues") or {}).items():
            if _text(tid) is None or not isinstance(queue, list):
                warnings.append(f"session {sid}: event queue {tid!r} skipped")
                continue
            for event in queue:
                ok = isinstance(event, dict) and _text(event.get("eventId"))
                ok = ok and _text(event.get("kind")) and _int(event.get("createdAtMs")) is not None
                if not ok:
                    warnings.append(f"session {sid}: invalid event on thread {tid} skipped")
                    continue
                meta = event.get("meta") if isinstance(event.get("meta"), dict) else None
                session.events.setdefault(tid.strip(), []).append(
                    {
                        "eventId": event["eventId"].strip(),
                        "kind": event["kind"].strip(),
                        "text": str(event.get("text") or ""),
                        "createdAtMs": event["createdAtMs"],
                        **({"meta": meta} if meta else {}),
                    }
                )
        for job in raw.get("cronJobs") or []:
            if (
                not isinstance(job, dict)
                or not _text(job.get("jobId"))
                or not _text(job.get("expr"))
            ):
                warnings.append(f"session {sid}: invalid cron job skipped")
                continue
            session.cron_jobs.append(
                {
                    "jobId": job["jobId"].strip(),
                    "expr": job["expr"].strip(),
                    "text": str(job.get("text") or ""),
                    "enabled": bool(job.get("enabled", True)),
                    "lastRunAtMs": _int(job.get("lastRunAtMs")),
                    "nextRunAtMs": _int(job.get("nextRunAtMs")),
                }
            )
        for tid, binding in (raw.get("lastActiveByThread") or {}).items():
            ok = isinstance(binding, dict) and _text(tid)
            ok = ok and _text(binding.get("channel")) and _text(binding.get("chatKey"))
            if not ok:
                warnings.append(f"session {sid}: invalid binding for thread {tid!r} skipped")
                continue
            session.bindings[tid.strip()] = {
                "channel": binding["channel"].strip(),
                "chatKey": binding["chatKey"].strip(),
                "atMs": _int(binding.get("atMs")) or 0,
            }
        sessions.append(session)
    return LegacyState(_text(data.get("defaultSessionId")), sessions, warnings)


def load(path: Path) -> LegacyState:
    """Read and parse ``path`` (blocking)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LegacyStateError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise LegacyStateError(f"{path}: not a readable JSON file ({exc})") from None
    return parse(data)

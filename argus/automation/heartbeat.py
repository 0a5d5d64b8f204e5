"""Heartbeat rules: when HEARTBEAT.md has tasks, active hours, and ``HEARTBEAT_OK``.

Pure functions (``heartbeat_has_tasks`` reads one file: call it from a worker thread).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..workspace import HEARTBEAT_FILE, strip_front_matter

HEARTBEAT_OK = "HEARTBEAT_OK"
_HEADER = re.compile(r"^#+(\s|$)")
_EMPTY_ITEM = re.compile(r"^[-*+]\s*(\[[\sXx]?\]\s*)?$")
_COMMENT = re.compile(r"^<!--.*-->$")
_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})(?:@(.+))?$")


def is_effectively_empty(text: str) -> bool:
    """True when every line is blank, a header, an empty checklist item or a one-line comment."""
    for line in strip_front_matter(text).splitlines():
        stripped = line.strip()
        if not stripped or _HEADER.match(stripped) or _EMPTY_ITEM.match(stripped):
            continue
        if _COMMENT.match(stripped):
            continue
        return False
    return True


def heartbeat_has_tasks(workspace: Path) -> bool:
    """Whether ``workspace/HEARTBEAT.md`` asks for anything (missing/unreadable: no)."""
    try:
        text = (workspace / HEARTBEAT_FILE).read_text(encoding="utf-8")[:1_000_000]
    except (OSError, UnicodeDecodeError):
        return False
    return not is_effectively_empty(text)


@dataclass(frozen=True)
class ActiveHours:
    """A daily window ``start``-``end`` (minutes after midnight) in ``zone``; may wrap midnight."""

    start: int
    end: int
    zone: dt.tzinfo

    def contains(self, when: dt.datetime) -> bool:
        """Whether the local time of ``when`` is inside the window."""
        local = when.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        if self.start <= self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end


def parse_active_hours(spec: str) -> ActiveHours:
    """``HH:MM-HH:MM`` with an optional ``@Zone``; ValueError with a readable message."""
    match = _HOURS.match(spec.strip())
    if not match:
        raise ValueError(f"expected HH:MM-HH:MM or HH:MM-HH:MM@Zone, got {spec!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups()[:4])
    if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59:
        raise ValueError(f"not a time of day in {spec!r}")
    zone_name = match.group(5)
    try:
        zone: dt.tzinfo = ZoneInfo(zone_name) if zone_name else dt.UTC
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {zone_name!r}") from None
    start, end = min(h1 * 60 + m1, 1440), min(h2 * 60 + m2, 1440)
    if start == end:
        raise ValueError(f"empty window {spec!r}")
    return ActiveHours(start, end, zone)


def within_active_hours(window: ActiveHours, wall_ms: int) -> bool:
    """Whether the wall-clock instant ``wall_ms`` is inside ``window``."""
    return window.contains(dt.datetime.fromtimestamp(wall_ms / 1000, dt.UTC))


def is_heartbeat_ok(text: str) -> bool:
    """A heartbeat reply that is only the acknowledgement (at most 300 characters around it).

    Only heartbeat turns are judged by this (the original suppressed every turn's reply).
    """
    stripped = text.strip().strip("*_`").strip()
    if stripped == HEARTBEAT_OK:
        return True
    if HEARTBEAT_OK not in stripped or len(stripped) > 300:
        return False
    rest = stripped.replace(HEARTBEAT_OK, "").strip(" \n.!*_`")
    return not rest

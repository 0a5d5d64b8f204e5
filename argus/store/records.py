"""The store's queries: plain functions of a ``sqlite3.Connection``, run by ``Store.run``.

Each function is one unit of work inside the transaction ``Store.run`` opens, so the things
that must change together do: a turn's start deletes exactly the follow-up and the system
events it consumed and records the lane's active turn in one commit; a cron run's record,
the job's ``lastRunAt`` and the system event it produces commit together.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any


class QueueFull(Exception):
    """A per-lane bound (follow-ups or system events) is reached; nothing was added."""


@dataclass(frozen=True, slots=True)
class FollowUp:
    """One queued input of a lane, oldest first."""

    id: int
    text: str
    source_channel: str | None
    source_chat_key: str | None
    created_at_ms: int
    attempts: int
    not_before_ms: int
    input_items: str | None = None  # JSON list of extra turn input items (a chat's photos)


@dataclass(frozen=True, slots=True)
class SystemEvent:
    """One queued system event of a thread, drained into that thread's next turn."""

    id: int
    event_id: str
    kind: str
    text: str
    meta: dict[str, Any] | None
    created_at_ms: int


# -- sessions ------------------------------------------------------------------------------


def add_session(conn: sqlite3.Connection, session_id: str, mode: str, now_ms: int) -> None:
    """Record a session (idempotent)."""
    conn.execute(
        "INSERT OR IGNORE INTO sessions (id, mode, created_at_ms) VALUES (?, ?, ?)",
        (session_id, mode, now_ms),
    )


def delete_session(conn: sqlite3.Connection, session_id: str) -> None:
    """Forget a session and, by cascade, its lanes, queues, jobs and bindings."""
    conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))


def list_sessions(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every recorded session, oldest first."""
    rows = conn.execute(
        "SELECT id, mode, created_at_ms, main_thread_id, last_seq FROM sessions"
        " ORDER BY created_at_ms"
    ).fetchall()
    return [
        {"id": r[0], "mode": r[1], "createdAtMs": r[2], "mainThreadId": r[3], "lastSeq": r[4]}
        for r in rows
    ]


def get_main_thread(conn: sqlite3.Connection, session_id: str) -> str | None:
    """The session's main thread id, if it has one."""
    row = conn.execute("SELECT main_thread_id FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return row[0] if row else None


def set_main_thread(conn: sqlite3.Connection, session_id: str, thread_id: str) -> None:
    """Make ``thread_id`` the main thread; events queued on the old one move to it, in order."""
    old = get_main_thread(conn, session_id)
    conn.execute("UPDATE sessions SET main_thread_id = ? WHERE id = ?", (thread_id, session_id))
    if old and old != thread_id:
        conn.execute(
            "UPDATE system_events SET thread_id = ? WHERE session_id = ? AND thread_id = ?",
            (thread_id, session_id, old),
        )


# -- lanes ---------------------------------------------------------------------------------


def set_lane_turn(
    conn: sqlite3.Connection,
    session_id: str,
    thread_id: str,
    turn_id: str | None,
    kind: str | None,
    source: tuple[str | None, str | None],
    now_ms: int,
) -> None:
    """Record (or clear, with ``turn_id=None``) the lane's active turn."""
    conn.execute(
        "INSERT INTO lanes (session_id, thread_id, active_turn_id, active_kind, source_channel,"
        " source_chat_key, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (session_id, thread_id) DO UPDATE SET"
        " active_turn_id = excluded.active_turn_id,"
        " active_kind = excluded.active_kind, source_channel = excluded.source_channel,"
        " source_chat_key = excluded.source_chat_key, updated_at_ms = excluded.updated_at_ms",
        (session_id, thread_id, turn_id, kind, source[0], source[1], now_ms),
    )


def active_lanes(conn: sqlite3.Connection) -> list[tuple[str, str, str, str | None]]:
    """(session, thread, turn, kind) of every lane recorded as running a turn."""
    return conn.execute(
        "SELECT session_id, thread_id, active_turn_id, active_kind FROM lanes"
        " WHERE active_turn_id IS NOT NULL"
    ).fetchall()


def clear_session_lanes(conn: sqlite3.Connection, session_id: str) -> None:
    """The runtime went away: no turn of this session is running any more."""
    conn.execute(
        "UPDATE lanes SET active_turn_id = NULL, active_kind = NULL WHERE session_id = ?",
        (session_id,),
    )


def lanes_with_work(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """Every (session, thread) with queued follow-ups, or queued events on a main thread."""
    rows = conn.execute(
        "SELECT DISTINCT session_id, thread_id FROM followups"
        " UNION SELECT DISTINCT e.session_id, e.thread_id FROM system_events e"
        " JOIN sessions s ON s.id = e.session_id AND s.main_thread_id = e.thread_id"
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


# -- follow-ups ----------------------------------------------------------------------------


def add_followup(
    conn: sqlite3.Connection,
    session_id: str,
    thread_id: str,
    text: str,
    source: tuple[str | None, str | None],
    now_ms: int,
    max_depth: int,
) -> tuple[int, int]:
    """Queue an input at the back of its lane: (its id, the lane's depth).

    ``QueueFull`` past the bound: the caller gets an error, nothing is dropped.
    """
    depth = followup_depth(conn, session_id, thread_id)
    if depth >= max_depth:
        raise QueueFull(f"follow-up queue of thread {thread_id} is full ({max_depth} items)")
    cur = conn.execute(
        "INSERT INTO followups (session_id, thread_id, text, source_channel, source_chat_key,"
        " created_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
        (session_id, thread_id, text, source[0], source[1], now_ms),
    )
    return int(cur.lastrowid or 0), depth + 1


def followup_depth(conn: sqlite3.Connection, session_id: str, thread_id: str) -> int:
    """How many inputs wait in the lane."""
    row = conn.execute(
        "SELECT COUNT(*) FROM followups WHERE session_id = ? AND thread_id = ?",
        (session_id, thread_id),
    ).fetchone()
    return int(row[0])


def peek_followups(
    conn: sqlite3.Connection, session_id: str, thread_id: str, limit: int
) -> list[FollowUp]:
    """The oldest ``limit`` queued inputs of a lane (they stay queued)."""
    rows = conn.execute(
        "SELECT id, text, source_channel, source_chat_key, created_at_ms, attempts, not_before_ms,"
        " input_items FROM followups WHERE session_id = ? AND thread_id = ? ORDER BY id LIMIT ?",
        (session_id, thread_id, limit),
    ).fetchall()
    return [FollowUp(*r) for r in rows]


def note_followup_failure(
    conn: sqlite3.Connection, ids: list[int], error: str, not_before_ms: int
) -> None:
    """A start failed: the items stay queued, with a retry time and the error."""
    conn.executemany(
        "UPDATE followups SET attempts = attempts + 1, not_before_ms = ?, last_error = ?"
        " WHERE id = ?",
        [(not_before_ms, error[:500], i) for i in ids],
    )


# -- system events -------------------------------------------------------------------------


def add_event(
    conn: sqlite3.Connection,
    session_id: str,
    thread_id: str,
    event: dict[str, Any],
    max_events: int,
) -> None:
    """Queue a system event on a thread. ``QueueFull`` past the per-thread bound."""
    count = conn.execute(
        "SELECT COUNT(*) FROM system_events WHERE session_id = ? AND thread_id = ?",
        (session_id, thread_id),
    ).fetchone()[0]
    if count >= max_events:
        raise QueueFull(f"system event queue of thread {thread_id} is full ({max_events} events)")
    meta = event.get("meta")
    conn.execute(
        "INSERT INTO system_events (event_id, session_id, thread_id, kind, text, meta,"
        " created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            event["eventId"],
            session_id,
            thread_id,
            event["kind"],
            event["text"],
            json.dumps(meta, ensure_ascii=False) if meta else None,
            event["createdAtMs"],
        ),
    )


def peek_events(
    conn: sqlite3.Connection, session_id: str, thread_id: str, limit: int
) -> list[SystemEvent]:
    """The oldest ``limit`` events of a thread (they stay queued until a turn starts)."""
    rows = conn.execute(
        "SELECT id, event_id, kind, text, meta, created_at_ms FROM system_events"
        " WHERE session_id = ? AND thread_id = ? ORDER BY id LIMIT ?",
        (session_id, thread_id, limit),
    ).fetchall()
    return [
        SystemEvent(r[0], r[1], r[2], r[3], json.loads(r[4]) if r[4] else None, r[5]) for r in rows
    ]


def event_depth(conn: sqlite3.Connection, session_id: str, thread_id: str) -> int:
    """How many events wait on a thread."""
    row = conn.execute(
        "SELECT COUNT(*) FROM system_events WHERE session_id = ? AND thread_id = ?",
        (session_id, thread_id),
    ).fetchone()
    return int(row[0])


# -- turn start: what it consumed leaves the queues, atomically ----------------------------


def commit_turn_start(
    conn: sqlite3.Connection,
    session_id: str,
    thread_id: str,
    followup_ids: list[int],
    event_ids: list[int],
    turn_id: str | None,
    kind: str,
    source: tuple[str | None, str | None],
    now_ms: int,
) -> None:
    """The turn started: delete the inputs and events it carries and record it as active."""
    conn.executemany("DELETE FROM followups WHERE id = ?", [(i,) for i in followup_ids])
    conn.executemany("DELETE FROM system_events WHERE id = ?", [(i,) for i in event_ids])
    set_lane_turn(conn, session_id, thread_id, turn_id, kind, source, now_ms)


# -- channel bindings ----------------------------------------------------------------------


def bind_channel(
    conn: sqlite3.Connection,
    session_id: str,
    thread_id: str,
    channel: str,
    chat_key: str,
    now_ms: int,
) -> None:
    """Remember where a thread's replies are delivered (the original's lastActiveByThread)."""
    conn.execute(
        "INSERT INTO channel_bindings (session_id, thread_id, channel, chat_key, at_ms)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id, thread_id) DO UPDATE SET"
        " channel = excluded.channel, chat_key = excluded.chat_key, at_ms = excluded.at_ms",
        (session_id, thread_id, channel, chat_key, now_ms),
    )


def get_binding(conn: sqlite3.Connection, session_id: str, thread_id: str) -> dict[str, Any] | None:
    """A thread's delivery target, if any."""
    row = conn.execute(
        "SELECT channel, chat_key, at_ms FROM channel_bindings"
        " WHERE session_id = ? AND thread_id = ?",
        (session_id, thread_id),
    ).fetchone()
    return {"channel": row[0], "chatKey": row[1], "atMs": row[2]} if row else None


# -- a redacted overview for GET /automation/state ----------------------------------------


def overview(conn: sqlite3.Connection) -> dict[str, Any]:
    """Counts and ids, never texts: the debug view must not leak prompts."""
    sessions = list_sessions(conn)
    followups = conn.execute(
        "SELECT session_id, thread_id, COUNT(*), MIN(created_at_ms) FROM followups"
        " GROUP BY session_id, thread_id"
    ).fetchall()
    events = conn.execute(
        "SELECT session_id, thread_id, COUNT(*) FROM system_events GROUP BY session_id, thread_id"
    ).fetchall()
    bindings = conn.execute(
        "SELECT session_id, thread_id, channel FROM channel_bindings"
    ).fetchall()
    return {
        "sessions": [{k: s[k] for k in ("id", "mode", "mainThreadId")} for s in sessions],
        "followups": [
            {"sessionId": r[0], "threadId": r[1], "depth": r[2], "oldestAtMs": r[3]}
            for r in followups
        ],
        "systemEvents": [{"sessionId": r[0], "threadId": r[1], "depth": r[2]} for r in events],
        "bindings": [{"sessionId": r[0], "threadId": r[1], "channel": r[2]} for r in bindings],
    }

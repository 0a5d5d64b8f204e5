""" "Starting" records: a gateway ``turn/start`` that was sent but is not known to have run.

Why: the inputs a gateway turn carries leave the queues only when the turn is recorded as
started, after its ``turn/start`` response. A gateway killed between the runtime accepting
the request and that commit used to run the inputs again after the restart. Now the engine
writes one record (inputs, thread, bridge instance, upstream request id) in one
transaction *before* the request is written; the response clears it in the same
transaction that consumes the inputs (``commit_started``) or releases it (``release``).
While a lane has a record, nothing new starts on it (``lane_starting``): after a restart
the record is resolved by the replayed response of the old request, or released.

Bound: at most one record per lane (one daemon start in flight per lane at a time).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from . import records


@dataclass(frozen=True, slots=True)
class TurnStart:
    """One ``turn/start`` in flight (or in doubt, after a restart)."""

    session_id: str
    upstream_id: int
    thread_id: str
    bridge_instance: str | None
    kind: str
    source: tuple[str | None, str | None]
    followup_ids: list[int]
    event_ids: list[int]
    created_at_ms: int


def begin(conn: sqlite3.Connection, start: TurnStart) -> None:
    """Record a ``turn/start`` about to be written to the runtime."""
    conn.execute(
        "INSERT OR REPLACE INTO turn_starts (session_id, upstream_id, thread_id,"
        " bridge_instance, kind, source_channel, source_chat_key, followup_ids, event_ids,"
        " created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            start.session_id,
            start.upstream_id,
            start.thread_id,
            start.bridge_instance,
            start.kind,
            start.source[0],
            start.source[1],
            json.dumps(start.followup_ids),
            json.dumps(start.event_ids),
            start.created_at_ms,
        ),
    )


def list_all(conn: sqlite3.Connection) -> list[TurnStart]:
    """Every record (after a restart: the starts whose outcome this gateway must learn)."""
    rows = conn.execute(
        "SELECT session_id, upstream_id, thread_id, bridge_instance, kind, source_channel,"
        " source_chat_key, followup_ids, event_ids, created_at_ms FROM turn_starts"
        " ORDER BY created_at_ms"
    ).fetchall()
    return [
        TurnStart(
            r[0], r[1], r[2], r[3], r[4], (r[5], r[6]), json.loads(r[7]), json.loads(r[8]), r[9]
        )
        for r in rows
    ]


def lane_starting(conn: sqlite3.Connection, session_id: str, thread_id: str) -> bool:
    """Whether the lane has an unresolved start (its inputs are not eligible to run)."""
    row = conn.execute(
        "SELECT 1 FROM turn_starts WHERE session_id = ? AND thread_id = ? LIMIT 1",
        (session_id, thread_id),
    ).fetchone()
    return row is not None


def release(conn: sqlite3.Connection, session_id: str, upstream_id: int) -> bool:
    """The request did not start a turn: its inputs are eligible again. Whether it existed."""
    cur = conn.execute(
        "DELETE FROM turn_starts WHERE session_id = ? AND upstream_id = ?",
        (session_id, upstream_id),
    )
    return cur.rowcount > 0


def commit_started(
    conn: sqlite3.Connection, start: TurnStart, turn_id: str | None, now_ms: int
) -> None:
    """The request started a turn: consume its inputs, record the lane, drop the record.

    ``turn_id`` is the lane's active turn (None when that turn already completed).
    """
    records.commit_turn_start(
        conn,
        start.session_id,
        start.thread_id,
        start.followup_ids,
        start.event_ids,
        turn_id,
        start.kind,
        start.source,
        now_ms,
    )
    release(conn, start.session_id, start.upstream_id)

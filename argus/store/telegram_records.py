"""The Telegram channel's queries (tables from schema V2), run by ``Store.run``.

The exactly-once rules live here, as transactions:

* ``record_updates``: every update of a ``getUpdates`` page gets a ``(bot id, update_id)``
  ledger row, the accepted ones an inbox row, and the bot's stored offset moves past the
  page -- all in one commit. A crash before it re-reads the page (the offset did not move);
  after it, nothing is read twice (it did). The ledger also refuses a repeated update.
* ``take_inbox``: an inbox row leaves in the same commit that queues its follow-up (and
  binds the thread to the chat), or queues the command's reply in the outbox.
* Outbox rows are ``pending`` -> ``sending`` (committed before the request is written)
  -> ``sent``/``failed``. A row found ``sending`` after a crash has an unknown outcome and
  becomes ``unknown`` (see docs/telegram.md for what is done with it).

Bounds: the ledger keeps the newest ``LEDGER_KEEP`` rows per bot; finished outbox rows are
kept ``OUTBOX_KEEP_MS`` (they are also the dedupe record of delivered turns), at most
``OUTBOX_KEEP_ROWS``; the inbox and pending outbox are bounded by their producers.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from . import records

LEDGER_KEEP = 10_000
OUTBOX_KEEP_MS = 14 * 86400 * 1000
OUTBOX_KEEP_ROWS = 50_000
INBOX_MAX = 10_000
OUTBOX_PENDING_MAX = 10_000


@dataclass(frozen=True, slots=True)
class InboxItem:
    """An accepted update waiting to become an input (or a command's reply)."""

    id: int
    update_id: int
    chat_key: str
    payload: dict[str, Any]
    attempts: int
    not_before_ms: int = 0


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One message (or edit) to send."""

    id: int
    dedupe_key: str | None
    chat_key: str
    kind: str
    body: dict[str, Any]
    state: str
    attempts: int
    not_before_ms: int


# -- offsets and the ledger ------------------------------------------------------------------


def get_offset(conn: sqlite3.Connection, bot_id: int) -> int | None:
    """The next ``offset`` to ask this bot for, or None on a cold start."""
    row = conn.execute("SELECT next_offset FROM tg_bots WHERE bot_id = ?", (bot_id,)).fetchone()
    return row[0] if row and row[0] is not None else None


def set_offset(conn: sqlite3.Connection, bot_id: int, offset: int, now_ms: int) -> None:
    """Store the next offset (never moving it backwards)."""
    conn.execute(
        "INSERT INTO tg_bots (bot_id, next_offset, updated_at_ms) VALUES (?, ?, ?)"
        " ON CONFLICT (bot_id) DO UPDATE SET"
        " next_offset = MAX(COALESCE(next_offset, 0), excluded.next_offset),"
        " updated_at_ms = excluded.updated_at_ms",
        (bot_id, offset, now_ms),
    )


def record_updates(
    conn: sqlite3.Connection,
    bot_id: int,
    accepted: list[tuple[int, str | None, dict[str, Any] | None]],
    next_offset: int,
    now_ms: int,
) -> int:
    """Ledger + inbox for one page, and the offset past it; how many inbox rows were added.

    ``accepted`` is (update_id, chat_key, payload); a None payload is ledgered only (an
    update we ignore). An update already in the ledger is skipped. ``QueueFull`` when the
    inbox has no room for the page: nothing is written.
    """
    added = 0
    pending = conn.execute("SELECT COUNT(*) FROM tg_inbox").fetchone()[0]
    if pending + len(accepted) > INBOX_MAX:
        # Backpressure: nothing is stored and the offset stays, so Telegram (which keeps
        # updates for 24 h) hands the same page out again once there is room.
        raise records.QueueFull(f"telegram inbox is full ({INBOX_MAX} updates)")
    for update_id, chat_key, payload in accepted:
        cur = conn.execute(
            "INSERT OR IGNORE INTO tg_ledger (bot_id, update_id, at_ms) VALUES (?, ?, ?)",
            (bot_id, update_id, now_ms),
        )
        if cur.rowcount == 0 or payload is None or chat_key is None:
            continue
        conn.execute(
            "INSERT INTO tg_inbox (bot_id, update_id, chat_key, payload, created_at_ms)"
            " VALUES (?, ?, ?, ?, ?)",
            (bot_id, update_id, chat_key, json.dumps(payload, ensure_ascii=False), now_ms),
        )
        added += 1
    set_offset(conn, bot_id, next_offset, now_ms)
    conn.execute(
        "DELETE FROM tg_ledger WHERE bot_id = ? AND update_id <"
        " (SELECT MIN(update_id) FROM (SELECT update_id FROM tg_ledger WHERE bot_id = ?"
        " ORDER BY update_id DESC LIMIT ?))",
        (bot_id, bot_id, LEDGER_KEEP),
    )
    return added


def ledger_count(conn: sqlite3.Connection, bot_id: int) -> int:
    """How many updates of this bot are ledgered."""
    return int(
        conn.execute("SELECT COUNT(*) FROM tg_ledger WHERE bot_id = ?", (bot_id,)).fetchone()[0]
    )


# -- inbox -----------------------------------------------------------------------------------


def due_inbox(conn: sqlite3.Connection, now_ms: int, limit: int = 50) -> list[InboxItem]:
    """Inbox rows whose retry time has come, oldest first."""
    rows = conn.execute(
        "SELECT id, update_id, chat_key, payload, attempts, not_before_ms FROM tg_inbox"
        " WHERE not_before_ms <= ? ORDER BY id LIMIT ?",
        (now_ms, limit),
    ).fetchall()
    return [InboxItem(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in rows]


def first_of_chat(conn: sqlite3.Connection, chat_key: str) -> InboxItem | None:
    """The oldest inbox row of one chat (rows of a chat are handled in order)."""
    r = conn.execute(
        "SELECT id, update_id, chat_key, payload, attempts, not_before_ms FROM tg_inbox"
        " WHERE chat_key = ? ORDER BY id LIMIT 1",
        (chat_key,),
    ).fetchone()
    return InboxItem(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) if r else None


def inbox_retry_at(conn: sqlite3.Connection) -> int | None:
    """The earliest retry time of any inbox row."""
    row = conn.execute("SELECT MIN(not_before_ms) FROM tg_inbox").fetchone()
    return row[0] if row else None


def inbox_failure(conn: sqlite3.Connection, item_id: int, error: str, not_before_ms: int) -> None:
    """Processing failed: keep the row, retry later."""
    conn.execute(
        "UPDATE tg_inbox SET attempts = attempts + 1, last_error = ?, not_before_ms = ?"
        " WHERE id = ?",
        (error[:500], not_before_ms, item_id),
    )


def drop_inbox(conn: sqlite3.Connection, item_id: int) -> None:
    """Remove a processed (or unprocessable) row."""
    conn.execute("DELETE FROM tg_inbox WHERE id = ?", (item_id,))


def enqueue_from_inbox(
    conn: sqlite3.Connection,
    item_id: int,
    session_id: str,
    thread_id: str,
    text: str,
    chat_key: str,
    items: list[dict[str, Any]] | None,
    now_ms: int,
    max_depth: int,
) -> tuple[int, int] | None:
    """The inbox row becomes a follow-up, in one commit; None if it was taken already."""
    if conn.execute("SELECT 1 FROM tg_inbox WHERE id = ?", (item_id,)).fetchone() is None:
        return None
    records.bind_channel(conn, session_id, thread_id, "telegram", chat_key, now_ms)
    followup_id, depth = records.add_followup(
        conn, session_id, thread_id, text, ("telegram", chat_key), now_ms, max_depth
    )
    if items:
        conn.execute(
            "UPDATE followups SET input_items = ? WHERE id = ?",
            (json.dumps(items, ensure_ascii=False), followup_id),
        )
    drop_inbox(conn, item_id)
    return followup_id, depth


# -- chats -> threads ------------------------------------------------------------------------


def get_chat(conn: sqlite3.Connection, chat_key: str) -> tuple[str, str] | None:
    """(session, thread) of a chat that has its own thread."""
    row = conn.execute(
        "SELECT session_id, thread_id FROM tg_chats WHERE chat_key = ?", (chat_key,)
    ).fetchone()
    return (row[0], row[1]) if row else None


def set_chat(
    conn: sqlite3.Connection, chat_key: str, session_id: str, thread_id: str, now_ms: int
) -> None:
    """Map a chat to a thread (replacing an older mapping)."""
    conn.execute(
        "INSERT INTO tg_chats (chat_key, session_id, thread_id, updated_at_ms) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (chat_key) DO UPDATE SET session_id = excluded.session_id,"
        " thread_id = excluded.thread_id, updated_at_ms = excluded.updated_at_ms",
        (chat_key, session_id, thread_id, now_ms),
    )


def forget_chat(conn: sqlite3.Connection, chat_key: str) -> None:
    """Drop a chat's own thread (the next message gets the default routing again)."""
    conn.execute("DELETE FROM tg_chats WHERE chat_key = ?", (chat_key,))


def all_chats(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """(chat_key, session, thread) of every mapped chat."""
    return conn.execute("SELECT chat_key, session_id, thread_id FROM tg_chats").fetchall()


def telegram_bindings(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """(session, thread, chat_key) of every thread whose replies go to Telegram."""
    return conn.execute(
        "SELECT session_id, thread_id, chat_key FROM channel_bindings"
        " WHERE lower(channel) IN ('telegram', 'tg')"
    ).fetchall()


def migrate_chat(conn: sqlite3.Connection, old_chat: int, new_chat: int, now_ms: int) -> int:
    """A group became a supergroup: move its mappings, bindings and queued messages."""
    moved = 0
    old, new = str(old_chat), str(new_chat)
    for key, session_id, thread_id in all_chats(conn):
        chat, sep, topic = key.partition(":")
        if chat == old:
            forget_chat(conn, key)
            set_chat(conn, new + sep + topic, session_id, thread_id, now_ms)
            moved += 1
    for session_id, thread_id, key in telegram_bindings(conn):
        chat, sep, topic = key.partition(":")
        if chat == old:
            records.bind_channel(conn, session_id, thread_id, "telegram", new + sep + topic, now_ms)
    conn.execute(
        "UPDATE tg_outbox SET chat_key = ? || substr(chat_key, length(?) + 1)"
        " WHERE state IN ('pending', 'unknown') AND (chat_key = ? OR chat_key LIKE ? || ':%')",
        (new, old, old, old),
    )
    return moved


# -- outbox ----------------------------------------------------------------------------------


def add_outbox(
    conn: sqlite3.Connection,
    dedupe_key: str | None,
    chat_key: str,
    kind: str,
    body: dict[str, Any],
    now_ms: int,
) -> int | None:
    """Queue one message; None when ``dedupe_key`` was queued before (or the outbox is full)."""
    pending = conn.execute(
        "SELECT COUNT(*) FROM tg_outbox WHERE state IN ('pending', 'unknown')"
    ).fetchone()[0]
    if pending >= OUTBOX_PENDING_MAX:
        raise records.QueueFull(f"telegram outbox is full ({OUTBOX_PENDING_MAX} messages)")
    cur = conn.execute(
        "INSERT OR IGNORE INTO tg_outbox (dedupe_key, chat_key, kind, body, created_at_ms)"
        " VALUES (?, ?, ?, ?, ?)",
        (dedupe_key, chat_key, kind, json.dumps(body, ensure_ascii=False), now_ms),
    )
    return int(cur.lastrowid) if cur.rowcount else None


def has_dedupe(conn: sqlite3.Connection, prefix: str) -> bool:
    """Whether any row with a dedupe key starting with ``prefix`` exists."""
    row = conn.execute(
        "SELECT 1 FROM tg_outbox WHERE dedupe_key >= ? AND dedupe_key < ? LIMIT 1",
        (prefix, prefix + "\uffff"),
    ).fetchone()
    return row is not None


def due_outbox(conn: sqlite3.Connection, limit: int = 200) -> list[OutboxItem]:
    """Messages to send (pending or of unknown outcome), oldest first."""
    rows = conn.execute(
        "SELECT id, dedupe_key, chat_key, kind, body, state, attempts, not_before_ms"
        " FROM tg_outbox WHERE state IN ('pending', 'unknown') ORDER BY id LIMIT ?",
        (limit,),
    ).fetchall()
    return [OutboxItem(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7]) for r in rows]


def mark_outbox(
    conn: sqlite3.Connection,
    item_id: int,
    state: str,
    now_ms: int,
    *,
    message_id: int | None = None,
    error: str | None = None,
    not_before_ms: int | None = None,
) -> None:
    """Record a row's new state (and its message id, error or retry time)."""
    done = now_ms if state in ("sent", "failed", "dropped") else None
    conn.execute(
        "UPDATE tg_outbox SET state = ?, message_id = COALESCE(?, message_id),"
        " last_error = COALESCE(?, last_error), not_before_ms = COALESCE(?, not_before_ms),"
        " attempts = attempts + (? = 'sending'), done_at_ms = ? WHERE id = ?",
        (state, message_id, error and error[:500], not_before_ms, state, done, item_id),
    )


def outbox_message_id(conn: sqlite3.Connection, item_id: int) -> int | None:
    """The Telegram message id a sent row produced."""
    row = conn.execute("SELECT message_id FROM tg_outbox WHERE id = ?", (item_id,)).fetchone()
    return row[0] if row else None


def recover_outbox(conn: sqlite3.Connection, now_ms: int) -> int:
    """After a restart: a row left ``sending`` has an unknown outcome. Also prune old rows."""
    cur = conn.execute("UPDATE tg_outbox SET state = 'unknown' WHERE state = 'sending'")
    conn.execute(
        "DELETE FROM tg_outbox WHERE done_at_ms IS NOT NULL AND done_at_ms < ?",
        (now_ms - OUTBOX_KEEP_MS,),
    )
    conn.execute(
        "DELETE FROM tg_outbox WHERE done_at_ms IS NOT NULL AND id <"
        " (SELECT MIN(id) FROM (SELECT id FROM tg_outbox ORDER BY id DESC LIMIT ?))",
        (OUTBOX_KEEP_ROWS,),
    )
    return cur.rowcount


def outbox_stats(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows per state."""
    return dict(conn.execute("SELECT state, COUNT(*) FROM tg_outbox GROUP BY state").fetchall())


# -- approvals -------------------------------------------------------------------------------


def add_approval(
    conn: sqlite3.Connection,
    session_id: str,
    request_key: str,
    chat_key: str,
    body: dict[str, Any],
    now_ms: int,
) -> int | None:
    """Record an approval shown in a chat and queue its message; the outbox id (None: known)."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO tg_approvals (session_id, request_key, chat_key, body,"
        " created_at_ms) VALUES (?, ?, ?, ?, ?)",
        (session_id, request_key, chat_key, json.dumps(body, ensure_ascii=False), now_ms),
    )
    if not cur.rowcount:
        return None
    outbox_id = add_outbox(
        conn, f"approval:{session_id}:{request_key}", chat_key, "approval", body, now_ms
    )
    conn.execute(
        "UPDATE tg_approvals SET outbox_id = ? WHERE session_id = ? AND request_key = ?",
        (outbox_id, session_id, request_key),
    )
    return outbox_id


def get_approval(conn: sqlite3.Connection, session_id: str, request_key: str) -> dict | None:
    """An approval's chat, outbox row, body and outcome."""
    row = conn.execute(
        "SELECT chat_key, outbox_id, body, outcome FROM tg_approvals"
        " WHERE session_id = ? AND request_key = ?",
        (session_id, request_key),
    ).fetchone()
    if row is None:
        return None
    return {"chatKey": row[0], "outboxId": row[1], "body": json.loads(row[2]), "outcome": row[3]}


def settle_approval(
    conn: sqlite3.Connection, session_id: str, request_key: str, outcome: str, now_ms: int
) -> bool:
    """Record the outcome once and queue the edit of the message; False if settled before."""
    cur = conn.execute(
        "UPDATE tg_approvals SET outcome = ? WHERE session_id = ? AND request_key = ?"
        " AND outcome IS NULL",
        (outcome, session_id, request_key),
    )
    if not cur.rowcount:
        return False
    approval = get_approval(conn, session_id, request_key)
    assert approval is not None
    body = {
        "outboxId": approval["outboxId"],
        "text": approval["body"].get("text", ""),
        "outcome": outcome,
    }
    add_outbox(
        conn,
        f"approval-edit:{session_id}:{request_key}",
        approval["chatKey"],
        "approval_edit",
        body,
        now_ms,
    )
    return True


# -- small values ----------------------------------------------------------------------------


def kv_get(conn: sqlite3.Connection, key: str) -> str | None:
    """A stored value."""
    row = conn.execute("SELECT value FROM tg_kv WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def kv_set(conn: sqlite3.Connection, key: str, value: str) -> None:
    """Store a value."""
    conn.execute(
        "INSERT INTO tg_kv (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )

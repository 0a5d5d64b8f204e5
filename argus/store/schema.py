"""Versioned schema migrations, applied in order inside one transaction each.

Why ``PRAGMA user_version``: it is stored in the database header, so the version and the
tables it describes cannot disagree, and a database written by a newer Argus (a higher
version than this build knows) is refused instead of being half-understood.
"""

from __future__ import annotations

V1 = """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    main_thread_id TEXT,
    last_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE lanes (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    thread_id TEXT NOT NULL,
    active_turn_id TEXT,
    active_kind TEXT,
    source_channel TEXT,
    source_chat_key TEXT,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (session_id, thread_id)
);
CREATE TABLE followups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    thread_id TEXT NOT NULL,
    text TEXT NOT NULL,
    source_channel TEXT,
    source_chat_key TEXT,
    created_at_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before_ms INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX followups_lane ON followups (session_id, thread_id, id);
CREATE TABLE system_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    thread_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    meta TEXT,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX system_events_lane ON system_events (session_id, thread_id, id);
CREATE TABLE cron_jobs (
    job_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    spec TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    last_run_at_ms INTEGER,
    next_run_at_ms INTEGER,
    failures INTEGER NOT NULL DEFAULT 0,
    backoff_until_ms INTEGER,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE TABLE cron_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    job_id TEXT NOT NULL REFERENCES cron_jobs(job_id) ON DELETE CASCADE,
    session_id TEXT NOT NULL,
    scheduled_at_ms INTEGER,
    started_at_ms INTEGER NOT NULL,
    missed INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    thread_id TEXT,
    turn_id TEXT,
    error TEXT,
    finished_at_ms INTEGER
);
CREATE INDEX cron_runs_job ON cron_runs (job_id, id);
CREATE TABLE channel_bindings (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    thread_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    chat_key TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (session_id, thread_id)
);
"""

# The Telegram channel (issue 12): offsets and the update ledger per bot, the inbox of
# accepted updates, chat -> thread mappings, the outbox, approval messages, small values.
V2 = """
CREATE TABLE tg_bots (
    bot_id INTEGER PRIMARY KEY,
    next_offset INTEGER,
    updated_at_ms INTEGER NOT NULL
);
CREATE TABLE tg_ledger (
    bot_id INTEGER NOT NULL,
    update_id INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (bot_id, update_id)
);
CREATE TABLE tg_inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bot_id INTEGER NOT NULL,
    update_id INTEGER NOT NULL,
    chat_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before_ms INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE tg_chats (
    chat_key TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE TABLE tg_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key TEXT UNIQUE,
    chat_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before_ms INTEGER NOT NULL DEFAULT 0,
    message_id INTEGER,
    last_error TEXT,
    created_at_ms INTEGER NOT NULL,
    done_at_ms INTEGER
);
CREATE INDEX tg_outbox_due ON tg_outbox (state, id);
CREATE TABLE tg_approvals (
    session_id TEXT NOT NULL,
    request_key TEXT NOT NULL,
    chat_key TEXT NOT NULL,
    outbox_id INTEGER,
    body TEXT NOT NULL,
    outcome TEXT,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (session_id, request_key)
);
CREATE TABLE tg_kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
ALTER TABLE followups ADD COLUMN input_items TEXT
"""

# Exactly-once gateway turns: a "starting" record written before a gateway turn/start is
# sent, cleared in the transaction that records the turn as started (or releases it).
V3 = """
CREATE TABLE turn_starts (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    upstream_id INTEGER NOT NULL,
    thread_id TEXT NOT NULL,
    bridge_instance TEXT,
    kind TEXT NOT NULL,
    source_channel TEXT,
    source_chat_key TEXT,
    followup_ids TEXT NOT NULL,
    event_ids TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (session_id, upstream_id)
);
CREATE INDEX turn_starts_lane ON turn_starts (session_id, thread_id)
"""

#: MIGRATIONS[i] takes the schema from version i to i + 1.
MIGRATIONS: list[str] = [V1, V2, V3]

LATEST = len(MIGRATIONS)

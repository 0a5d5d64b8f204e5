"""Importing the original Telegram bot's ``state.json`` (version 2) into the store.

What comes across (one transaction, existing entries kept):

* ``defaultSessionId`` -> the channel's default session (``tg_kv``), recorded as a session;
* ``lastUpdateId`` -> ``tg_kv.legacy_last_update_id``; the poller continues after it on
  its first start, for whatever bot id the token has (the file does not name the bot);
* ``threads`` (chatKey -> threadId) -> chat mappings on the default session, for groups
  and topics; private chats used the main thread in the original and still do for the
  owner, so their entries are reported and skipped;
* ``lastActiveByThread`` (threadId -> chatKey) -> channel bindings (reply targets).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from . import records
from . import telegram_records as tgr


def looks_like_bot_state(data: Any) -> bool:
    """A v2 bot state: ``version`` 2 and bot fields, no gateway ``sessions``."""
    return (
        isinstance(data, dict)
        and data.get("version") == 2
        and "sessions" not in data
        and any(k in data for k in ("lastUpdateId", "threads", "lastActiveByThread"))
    )


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def import_bot_state(
    conn: sqlite3.Connection, data: dict[str, Any], mode: str, now_ms: int, valid_id: Any
) -> dict[str, Any]:
    """Import a decoded bot ``state.json``; counts and the problems met."""
    counts = {"defaultSession": 0, "lastUpdateId": 0, "chats": 0, "bindings": 0}
    warnings: list[str] = []
    sid = _text(data.get("defaultSessionId"))
    if sid is not None and not valid_id(sid):
        warnings.append(f"defaultSessionId {sid!r}: not a valid session id, skipped")
        sid = None
    if sid is not None:
        records.add_session(conn, sid, mode, now_ms)
        if tgr.kv_get(conn, "default_session_id") is None:
            tgr.kv_set(conn, "default_session_id", sid)
            counts["defaultSession"] = 1
    last = data.get("lastUpdateId")
    if isinstance(last, int | float) and not isinstance(last, bool):
        tgr.kv_set(conn, "legacy_last_update_id", str(int(last)))
        counts["lastUpdateId"] = 1
    threads = data.get("threads") if isinstance(data.get("threads"), dict) else {}
    for key, value in threads.items():
        thread_id = _text(value.get("threadId")) if isinstance(value, dict) else None
        chat = str(key).partition(":")[0]
        if thread_id is None or not chat.lstrip("-").isdigit():
            warnings.append(f"thread mapping {key!r}: invalid, skipped")
            continue
        if int(chat) > 0:
            warnings.append(f"thread mapping {key!r}: a private chat (main thread), skipped")
            continue
        if sid is None:
            warnings.append(f"thread mapping {key!r}: no defaultSessionId to attach it to")
            continue
        if tgr.get_chat(conn, str(key)) is None:
            tgr.set_chat(conn, str(key), sid, thread_id, now_ms)
            counts["chats"] += 1
    active = data.get("lastActiveByThread")
    for thread_id, value in (active if isinstance(active, dict) else {}).items():
        chat_key = _text(value.get("chatKey")) if isinstance(value, dict) else None
        if chat_key is None or _text(thread_id) is None or sid is None:
            warnings.append(f"lastActiveByThread {thread_id!r}: invalid, skipped")
            continue
        at = value.get("atMs") if isinstance(value.get("atMs"), int) else now_ms
        if records.get_binding(conn, sid, thread_id.strip()) is None:
            records.bind_channel(conn, sid, thread_id.strip(), "telegram", chat_key, at)
            counts["bindings"] += 1
    return {"imported": counts, "warnings": warnings}

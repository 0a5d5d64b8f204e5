"""Durable gateway state in SQLite: sessions, lanes, follow-ups, system events, cron, bindings.

``db.Store`` owns the connection on one worker thread; ``schema`` holds the versioned
migrations; ``records`` the queries, as plain functions of a ``sqlite3.Connection`` that run
on that thread.
"""

"""The SQLite store: one connection, owned by one worker thread, never touched by the loop.

Why a dedicated thread rather than ``trio.to_thread`` per call: a ``sqlite3.Connection`` is
not safe to share across threads, and funnelling every statement through one thread in
submission order also serialises writers without any lock on the trio side. Callers hand
it a function of the connection (``await store.run(fn, *args)``) that runs as one
transaction: committed when it returns, rolled back when it raises.

Durability: WAL journal with ``synchronous=FULL``, so a committed follow-up or system event
survives ``kill -9`` and power loss. Queue (work-submission) bound: ``MAX_PENDING`` jobs;
past it ``run`` waits for room (backpressure, never an unbounded backlog).

A database that cannot be opened, fails its integrity check or was written by a newer
schema raises ``StoreError`` and the daemon exits with that message. It is never deleted,
replaced or "repaired" behind the user's back.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import trio

from ..metrics import STORE_TXN_SECONDS
from .schema import LATEST, MIGRATIONS

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_PENDING = 1024
DB_RELATIVE = Path("gateway") / "argus.db"


class StoreError(Exception):
    """The database cannot be used; ``str()`` says which file and why, for the user."""


class StoreUnavailable(StoreError):
    """A transaction failed in SQLite itself (disk full, read-only, I/O error, locked).

    Nothing of it was committed. Callers answer with an error (nothing acknowledged), and
    the next transaction tries again: the daemon recovers when the disk does.
    """


def open_connection(path: Path) -> sqlite3.Connection:
    """Open, check and migrate the database at ``path`` (blocking; the worker thread calls it)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    hint = "it was left untouched; move it aside to start with an empty store"
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the store {path}: {exc}") from exc
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"cannot open the store {path}: WAL mode refused ({mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise StoreError(f"the store {path} is corrupt ({check}); {hint}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > LATEST:
            raise StoreError(
                f"the store {path} has schema version {version}, newer than this Argus "
                f"understands ({LATEST}); upgrade Argus or restore a backup"
            )
        for target in range(version, LATEST):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements(MIGRATIONS[target]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target + 1}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            log.info("store migrated path=%s version=%s", path, target + 1)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(
            f"the store {path} is not a usable SQLite database ({exc}); {hint}"
        ) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (it has no semicolons inside literals)."""
    return [s.strip() for s in script.split(";") if s.strip()]


class Store:
    """The gateway's database, served by one worker thread. Use ``open_store``."""

    def __init__(self, path: Path, *, inline: bool = False) -> None:
        self.path = path
        # Tests on trio's autojump clock run jobs on the trio thread: a wait on a worker
        # thread looks like idleness to the mock clock, which would then jump to the next
        # deadline mid-query. Production always uses the worker thread.
        self.inline = inline
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._room = trio.Semaphore(MAX_PENDING)
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None

    def _serve(self, ready: Callable[[BaseException | None], None]) -> None:
        try:
            self._conn = open_connection(self.path)
        except BaseException as exc:  # reported to the opener, then the thread ends
            ready(exc)
            return
        ready(None)
        while (job := self._jobs.get()) is not None:
            job()
        self._conn.close()

    async def start(self) -> None:
        """Start the worker thread and open the database; raises ``StoreError``."""
        if self.inline:
            self._conn = open_connection(self.path)
            return
        token = trio.lowlevel.current_trio_token()
        opened = trio.Event()
        outcome: list[BaseException | None] = []

        def ready(exc: BaseException | None) -> None:
            outcome.append(exc)
            token.run_sync_soon(opened.set)

        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name="argus-store", daemon=True
        )
        self._thread.start()
        await opened.wait()
        if outcome[0] is not None:
            self._thread.join()
            raise outcome[0]

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` as one transaction on the worker thread; its result.

        Once submitted, the job runs to completion even if the caller is cancelled (the
        wait is shielded), so a caller never has to wonder whether a write happened.
        """
        if self._conn is None and self._thread is None:
            raise StoreError("the store is not open")
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        box: list[Any] = []

        def job() -> None:
            conn = self._conn
            assert conn is not None
            started = time.perf_counter()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn, *args)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        try:
                            conn.execute("ROLLBACK")
                        except sqlite3.Error:  # SQLite may have rolled back already
                            pass
                    raise
                box.append((True, result))
            except sqlite3.OperationalError as exc:
                failed = StoreUnavailable(f"the store cannot write: {exc}")
                box.append((False, failed))
            except BaseException as exc:
                box.append((False, exc))
            STORE_TXN_SECONDS.observe(time.perf_counter() - started)
            try:
                token.run_sync_soon(done.set)
            except trio.RunFinishedError:
                pass

        if self.inline:
            job()
            await trio.lowlevel.checkpoint()
        else:
            async with self._room:
                self._jobs.put(job)
                with trio.CancelScope(shield=True):
                    await done.wait()
        ok, value = box[0]
        if not ok:
            raise value
        return value

    async def aclose(self) -> None:
        """Finish queued jobs, close the connection and stop the thread."""
        if self.inline and self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._thread is None:
            return
        self._jobs.put(None)
        await trio.to_thread.run_sync(self._thread.join)
        self._thread = None


async def open_store(home: Path, *, inline: bool = False) -> Store:
    """The store of this gateway home (``<home>/gateway/argus.db``), started."""
    store = Store(home / DB_RELATIVE, inline=inline)
    await store.start()
    return store

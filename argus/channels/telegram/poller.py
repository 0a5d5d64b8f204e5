"""The long poller: ``getUpdates`` into the store, exactly once.

* One poller per token: an exclusive, non-blocking ``flock`` on
  ``<home>/gateway/telegram-<bot id>.lock``; a second gateway on the same home and token
  waits (and says so) instead of fighting over the updates.
* ``getMe`` is retried with backoff (the original crashed when it failed).
* A webhook found active is deleted once, with a log line (getUpdates refuses to work
  while one is set).
* Cold start (no offset stored for this bot id): ``getUpdates(offset=-1)`` returns only
  the newest update; the offset is stored past it, which drops the whole backlog.
* Each page is stored by ``telegram_records.record_updates``: ledger, inbox and offset in
  one transaction. The offset sent to Telegram is the stored one, so a crash re-reads
  only what was not committed.
* A full inbox stores nothing and keeps the offset: the same page is read again later
  (Telegram keeps updates for 24 hours), so a flood is slowed down, never dropped.
* 409 Conflict (another getUpdates is running for this token, elsewhere): back off
  2 s doubling to 30 s and rebuild the connection pool. Other errors: 1 s doubling to 30 s.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from ...store import records
from ...store import telegram_records as tgr
from ...store.db import Store
from .botapi import BotApi, NotSent, TelegramError, UnknownOutcome
from .inbound import BotIdentity, classify
from .settings import TelegramSettings

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
LOCK_RETRY_S = 10.0
INBOX_FULL_WAIT_S = 5.0


def now_ms() -> int:
    """Wall-clock milliseconds."""
    return int(time.time() * 1000)


def try_lock(path: Path) -> int | None:
    """An fd holding an exclusive lock on ``path``, or None if another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


class Poller:
    """Reads updates for one bot and commits them to the inbox."""

    def __init__(
        self,
        api: BotApi,
        store: Store,
        settings: TelegramSettings,
        on_stored: Callable[[], None],
        on_migrated: Callable[[int, int], None] = lambda old, new: None,
    ) -> None:
        self.api = api
        self.store = store
        self.settings = settings
        self.on_stored = on_stored
        self.on_migrated = on_migrated
        self.bot: BotIdentity | None = None
        self.ready = trio.Event()
        self.conflicts = 0
        self._ignored_groups: set[int] = set()

    async def identify(self) -> BotIdentity:
        """``getMe``, retried with backoff until it works."""
        delay = 1.0
        while True:
            try:
                me = await self.api.call("getMe")
                if isinstance(me, dict) and isinstance(me.get("id"), int):
                    return BotIdentity(me["id"], str(me.get("username") or ""))
                log.warning("telegram: getMe gave an unexpected result")
            except (TelegramError, NotSent, UnknownOutcome) as exc:
                if isinstance(exc, TelegramError) and exc.error_code == 401:
                    log.error("telegram: the bot token was refused (401); check it")
                else:
                    log.warning("telegram: getMe failed, retrying in %.0fs: %s", delay, exc)
            await trio.sleep(delay)
            delay = min(30.0, delay * 2)

    async def serve(self) -> None:
        """Lock, identify, drop a webhook, skip a cold backlog, then poll until cancelled."""
        bot_id = int(self.settings.token.split(":", 1)[0])
        lock_path = Path(self.settings.state_dir) / f"telegram-{bot_id}.lock"
        fd = await trio.to_thread.run_sync(try_lock, lock_path)
        warned = False
        while fd is None:
            if not warned:
                log.warning(
                    "telegram: another poller holds %s; waiting (one poller per token)", lock_path
                )
                warned = True
            await trio.sleep(LOCK_RETRY_S)
            fd = await trio.to_thread.run_sync(try_lock, lock_path)
        try:
            self.bot = await self.identify()
            log.info("telegram: polling as @%s (id %s)", self.bot.username, self.bot.id)
            self.ready.set()
            await self._drop_webhook()
            offset = await self._start_offset(self.bot.id)
            await self._poll(self.bot, offset)
        finally:
            os.close(fd)

    async def _drop_webhook(self) -> None:
        try:
            info = await self.api.call("getWebhookInfo")
            if isinstance(info, dict) and info.get("url"):
                await self.api.call("deleteWebhook", {"drop_pending_updates": False})
                log.warning("telegram: an active webhook was deleted so that polling can work")
        except (TelegramError, NotSent, UnknownOutcome) as exc:
            log.warning("telegram: could not check the webhook: %s", exc)

    async def _start_offset(self, bot_id: int) -> int:
        stored = await self.store.run(tgr.get_offset, bot_id)
        if stored is not None:
            return stored
        legacy = await self.store.run(tgr.kv_get, "legacy_last_update_id")
        if legacy is not None:
            await self.store.run(tgr.set_offset, bot_id, int(legacy) + 1, now_ms())
            log.info("telegram: continuing after the imported update %s", legacy)
            return int(legacy) + 1
        delay = 1.0
        while True:
            try:
                page = await self.api.call(
                    "getUpdates",
                    {"offset": -1, "limit": 1, "timeout": 0, "allowed_updates": ALLOWED_UPDATES},
                )
                break
            except (TelegramError, NotSent, UnknownOutcome) as exc:
                log.warning("telegram: backlog skip failed, retrying: %s", exc)
                await trio.sleep(delay)
                delay = min(30.0, delay * 2)
        offset = 0
        if isinstance(page, list) and page:
            offset = int(page[-1]["update_id"]) + 1
            log.info("telegram: cold start, backlog skipped (up to update %s)", offset - 1)
        await self.store.run(tgr.set_offset, bot_id, offset, now_ms())
        return offset

    async def _poll(self, bot: BotIdentity, offset: int) -> None:
        timeout = self.settings.poll_timeout_s
        delay = 0.0
        while True:
            try:
                page = await self.api.call(
                    "getUpdates",
                    {"offset": offset, "timeout": timeout, "allowed_updates": ALLOWED_UPDATES},
                    timeout=timeout + 10.0,
                )
                delay = 0.0
                self.conflicts = 0
            except TelegramError as exc:
                if exc.error_code == 409:
                    self.conflicts += 1
                    delay = min(30.0, max(2.0, delay * 2))
                    log.warning(
                        "telegram: 409 conflict (%s); backing off %.0fs", exc.description, delay
                    )
                    await self.api.rebuild()
                else:
                    delay = min(30.0, max(1.0, delay * 2))
                    log.warning("telegram: getUpdates failed, retrying in %.0fs: %s", delay, exc)
                await trio.sleep(delay)
                continue
            except (NotSent, UnknownOutcome) as exc:
                delay = min(30.0, max(1.0, delay * 2))
                log.warning("telegram: getUpdates failed, retrying in %.0fs: %s", delay, exc)
                await trio.sleep(delay)
                continue
            if not isinstance(page, list) or not page:
                continue
            try:
                offset = await self.store_page(bot, page, offset)
            except records.QueueFull as exc:
                log.warning("telegram: %s; not reading more updates for a while", exc)
                await trio.sleep(INBOX_FULL_WAIT_S)

    def _note_ignored_group(self, update: dict[str, Any]) -> None:
        """Log (once per chat, bounded) a group that is not allowed, so its id can be found."""
        message = update.get("message")
        chat = message.get("chat") if isinstance(message, dict) else None
        chat_id = chat.get("id") if isinstance(chat, dict) else None
        if not isinstance(chat_id, int) or chat_id > 0 or chat_id in self.settings.allow_chats:
            return
        if chat_id in self._ignored_groups or len(self._ignored_groups) >= 1000:
            return
        self._ignored_groups.add(chat_id)
        log.info(
            "telegram: group %s is not in ARGUS_TELEGRAM_ALLOW_CHATS; its messages are ignored",
            chat_id,
        )

    async def store_page(self, bot: BotIdentity, page: list[Any], offset: int) -> int:
        """Commit one page (ledger, inbox, offset); the next offset."""
        accepted: list[tuple[int, str | None, dict[str, Any] | None]] = []
        migrations: list[tuple[int, int]] = []
        next_offset = offset
        for update in page:
            if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
                continue
            update_id = update["update_id"]
            next_offset = max(next_offset, update_id + 1)
            found = classify(update, bot, self.settings)
            if found is None:
                self._note_ignored_group(update)
                accepted.append((update_id, None, None))
            elif found[1].get("kind") == "migrate":
                migrations.append((found[1]["from"], found[1]["to"]))
                accepted.append((update_id, None, None))
            else:
                accepted.append((update_id, found[0], found[1]))

        def commit(conn: Any) -> int:
            # A migration commits with its page, before any later message is visible.
            added = tgr.record_updates(conn, bot.id, accepted, next_offset, now_ms())
            for old, new in migrations:
                tgr.migrate_chat(conn, old, new, now_ms())
            return added

        added = await self.store.run(commit)
        for old, new in migrations:
            self.on_migrated(old, new)
        if added:
            self.on_stored()
        return next_offset

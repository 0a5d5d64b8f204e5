"""Turning stored inbox rows into inputs, command replies, approval answers and migrations.

Rows are taken per chat, in order; different chats are handled in parallel (bounded by
``MAX_CHAT_WORKERS``), so one slow chat never holds the others up (the original ran one
global queue). A row leaves the inbox only in the transaction that queues what it became
(``enqueue_from_inbox``, or a command reply in the outbox). A failure (the runtime is not
up, a download broke) keeps the row and retries it with a backoff; a full follow-up queue
keeps it until there is room: nothing is dropped.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from ...provision.base import ProvisionError
from ...sessions.internal_calls import RuntimeCallError
from ...sessions.session import SessionGone
from ...store import records
from ...store import telegram_records as tgr
from . import routing
from .botapi import NotSent, TelegramError, UnknownOutcome
from .inbound import COMMANDS, chat_key

if TYPE_CHECKING:
    from .service import TelegramChannel

log = logging.getLogger(__name__)

MAX_CHAT_WORKERS = 32
QUEUE_FULL_WAIT_MS = 2000
RETRYABLE = (
    RuntimeCallError,
    SessionGone,
    ProvisionError,
    trio.TooSlowError,
    OSError,
    NotSent,
    UnknownOutcome,
    TelegramError,
)


def now_ms() -> int:
    """Wall-clock milliseconds."""
    return int(time.time() * 1000)


def backoff_ms(attempts: int) -> int:
    """1 s doubling to 60 s."""
    return min(60_000, 1000 * 2 ** min(attempts, 6))


class Dispatcher:
    """Works through ``tg_inbox``."""

    def __init__(self, channel: TelegramChannel) -> None:
        self.channel = channel
        self.store = channel.store
        self._wake = trio.Event()
        self._busy: set[str] = set()

    def wake(self) -> None:
        """New rows are stored."""
        self._wake.set()

    async def serve(self) -> None:
        """Start a worker per chat with due rows, until cancelled."""
        async with trio.open_nursery() as nursery:
            while True:
                self._wake = trio.Event()
                rows = await self.store.run(tgr.due_inbox, now_ms(), 500)
                for row in rows:
                    if row.chat_key not in self._busy and len(self._busy) < MAX_CHAT_WORKERS:
                        self._busy.add(row.chat_key)
                        nursery.start_soon(self._chat_worker, row.chat_key)
                retry_at = await self.store.run(tgr.inbox_retry_at)
                wait = 30.0
                if retry_at is not None:
                    wait = max(0.05, min(wait, (retry_at - now_ms()) / 1000))
                with trio.move_on_after(wait):
                    await self._wake.wait()

    async def _chat_worker(self, key: str) -> None:
        try:
            while True:
                row = await self.store.run(tgr.first_of_chat, key)
                if row is None:
                    return
                if row.not_before_ms > now_ms():
                    return  # waiting for its retry time; later rows of the chat wait too
                try:
                    await self.handle(row)
                except RETRYABLE as exc:
                    log.warning(
                        "telegram: update %s of chat %s will be retried: %s",
                        row.update_id,
                        key,
                        exc,
                    )
                    await self.store.run(
                        tgr.inbox_failure, row.id, str(exc), now_ms() + backoff_ms(row.attempts)
                    )
                    return
        finally:
            self._busy.discard(key)
            self.wake()

    async def handle(self, row: tgr.InboxItem) -> None:
        """Do what one stored update asks for."""
        payload = row.payload
        kind = payload.get("kind")
        if kind == "message":
            await self._message(row)
        elif kind == "command":
            await self._command(row)
        elif kind == "callback":
            await self.channel.approvals.on_press(row)
        elif kind == "deny":
            await self.store.run(
                _deny, row, self.channel.settings.deny_cooldown_s, self.channel.settings.deny_text
            )
            self.channel.outbox.wake()
        elif kind == "migrate":
            await self.channel.migrate(payload["from"], payload["to"])
            await self.store.run(tgr.drop_inbox, row.id)
        else:
            await self.store.run(tgr.drop_inbox, row.id)

    def _owner_private(self, payload: dict[str, Any]) -> bool:
        owner = self.channel.settings.owner_id
        return bool(payload.get("private")) and owner is not None and payload.get("userId") == owner

    async def _message(self, row: tgr.InboxItem) -> None:
        payload = row.payload
        session, thread_id = await routing.resolve(
            self.channel, row.chat_key, owner_private=self._owner_private(payload)
        )
        text = payload.get("text") or ""
        items: list[dict[str, Any]] = []
        media = payload.get("media")
        if media:
            note, items = await self.channel.media.save(session, row, media)
            text = f"{text}\n\n{note}".strip()
        if not text.strip():
            text = "(empty message)"
        text = f"{text}\n\n{input_marker(row.update_id)}"
        engine = self.channel.engine
        try:
            result = await self.store.run(
                tgr.enqueue_from_inbox,
                row.id,
                session.id,
                thread_id,
                text,
                row.chat_key,
                items,
                now_ms(),
                engine.settings.followup_max,
            )
        except records.QueueFull as exc:
            # The lane's queue is full: the update waits in the inbox (bounded itself, and
            # the poller stops reading when that is full) until the lane has room.
            log.info("telegram: update %s waits for room: %s", row.update_id, exc)
            await self.store.run(tgr.inbox_failure, row.id, str(exc), now_ms() + QUEUE_FULL_WAIT_MS)
            return
        self.channel.remember_thread(session.id, thread_id, row.chat_key)
        if result is not None:
            engine.wake_lane(engine.lanes.get(session.id, thread_id))
            if engine.lanes.get(session.id, thread_id).busy:
                self.channel.live.queued(row.chat_key)

    async def _reply(self, row: tgr.InboxItem, text: str) -> None:
        """A plain reply that leaves the inbox row in the same commit."""
        await self.store.run(_reply_and_drop, row.id, row.chat_key, text, row.update_id)
        self.channel.outbox.wake()

    async def _command(self, row: tgr.InboxItem) -> None:
        payload = row.payload
        command = payload["command"]
        channel = self.channel
        if command in ("help", "start"):
            lines = [f"/{name} - {what}" for name, what in COMMANDS.items()]
            await self._reply(row, "Write to talk to the agent. Commands:\n" + "\n".join(lines))
            return
        owner_private = self._owner_private(payload)
        if command == "new":
            session = await routing.default_session(channel)
            thread_id = await routing.new_thread(channel, session, row.chat_key)
            await self._reply(row, f"ok (new thread): {thread_id}")
            return
        mapped = await self.store.run(tgr.get_chat, row.chat_key)
        if mapped is not None and channel.manager.get(mapped[0]) is not None:
            session_id, thread_id = mapped
        elif owner_private:
            session = await routing.default_session(channel)
            session_id = session.id
            thread_id = await self.store.run(records.get_main_thread, session.id) or "(none yet)"
        else:
            session_id, thread_id = "(none yet)", "(none yet)"
        lane = channel.engine.lanes.find(session_id, thread_id)
        if command == "where":
            text = f"sessionId: {session_id}\nthreadId: {thread_id}\nchatKey: {row.chat_key}"
        elif command == "status":
            depth = 0
            if session_id != "(none yet)":
                depth = await self.store.run(records.followup_depth, session_id, thread_id)
            running = lane.active_turn_id or "yes" if lane is not None and lane.busy else "none"
            text = f"running turn: {running}\nqueued inputs: {depth}"
        else:  # stop
            text = await self._stop(session_id, thread_id, lane)
        await self._reply(row, text)

    async def _stop(self, session_id: str, thread_id: str, lane: Any) -> str:
        session = self.channel.manager.get(session_id)
        if session is None or lane is None or not lane.busy or not lane.active_turn_id:
            return "No turn is running."
        try:
            await session.call(
                "turn/interrupt",
                {"threadId": thread_id, "turnId": lane.active_turn_id},
                timeout=10.0,
            )
        except RuntimeCallError as exc:
            return f"Could not stop the turn: {exc.error.get('message')}"
        return f"Stopping turn {lane.active_turn_id}."


INPUT_MARKER = re.compile(r"\[telegram update (\d+)\]")


def input_marker(update_id: int) -> str:
    """The line that names the update an input came from.

    The runtime echoes a turn's input in its ``userMessage`` item, so a turn can be tied to
    the update it answers even when the engine started the input twice (a crash between
    ``turn/start`` and its commit): the second reply to the same update is not queued.
    """
    return f"[telegram update {update_id}]"


def _reply_and_drop(conn: Any, item_id: int, key: str, text: str, update_id: int) -> None:
    tgr.add_outbox(conn, f"reply:{update_id}", key, "notice", {"plain": text}, now_ms())
    tgr.drop_inbox(conn, item_id)


def _deny(conn: Any, row: tgr.InboxItem, cooldown_s: float, template: str) -> None:
    user_id = row.payload.get("userId")
    last = tgr.kv_get(conn, f"deny:{user_id}")
    now = now_ms()
    if last is None or now - int(last) >= cooldown_s * 1000:
        text = template.replace("{user_id}", str(user_id))
        tgr.add_outbox(conn, f"deny:{row.update_id}", row.chat_key, "notice", {"plain": text}, now)
        tgr.kv_set(conn, f"deny:{user_id}", str(now))
    tgr.drop_inbox(conn, row.id)


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A file name that stays inside its directory."""
    cleaned = _SAFE_NAME.sub("_", Path(name).name).strip("._") or "file"
    return cleaned[:100]


__all__ = ["Dispatcher", "chat_key", "safe_name"]

"""The outbox sender: every queued message leaves once, in order per chat, within the limits.

Rows come from ``telegram_records`` (one row per message part, approval or edit). Per chat
one row is in flight at a time and rows go in id order; different chats go in parallel
(bounded by ``MAX_IN_FLIGHT``). A row is committed as ``sending`` right before its request
is written, then ``sent`` (with the message id) or ``failed``. What each outcome does:

* ``TelegramError`` 429: the row stays pending, the chat is held for ``retry_after``.
* ``can't parse entities``: the same row is resent as its plain text.
* ``migrate_to_chat_id``: the chat's mappings and queued rows move, the row is resent.
* ``NotSent`` (connect failure), or a 5xx the server answered before doing anything we
  asked: pending again with a backoff -- a repeat is safe.
* ``UnknownOutcome`` (the connection broke after the request was written, an unreadable
  reply, a 5xx): the row becomes ``unknown``. With ARGUS_TELEGRAM_UNKNOWN_OUTCOME=mark (the
  default) it is sent once more, marked as a possible repeat; with ``drop`` it is recorded
  as dropped. Edits are idempotent and are simply repeated.
* Other 4xx (blocked, chat not found, ...): ``failed``, logged. Nothing is retried forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio

from ...store import telegram_records as tgr
from ...store.db import Store
from .botapi import BotApi, NotSent, TelegramError, UnknownOutcome
from .inbound import parse_chat_key
from .ratelimit import RateLimiter
from .settings import TelegramSettings

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 32
MAX_ATTEMPTS = 8
SEND_DEADLINE_S = 45.0  # above the call timeout (30 s)
RESENT_MARK = "↻ possibly repeated (the first attempt's outcome is unknown)\n\n"
PARSE_ERRORS = ("can't parse entities", "parse entities", "find end of the entity")


def now_ms() -> int:
    """Wall-clock milliseconds."""
    return int(time.time() * 1000)


def target(chat_key: str) -> dict[str, Any]:
    """``chat_id`` and, for a topic other than General (1), ``message_thread_id``."""
    chat_id, topic = parse_chat_key(chat_key)
    params: dict[str, Any] = {"chat_id": chat_id}
    if topic is not None and topic != 1:
        params["message_thread_id"] = topic
    return params


class Outbox:
    """Sends what ``tg_outbox`` holds."""

    def __init__(
        self,
        api: BotApi,
        store: Store,
        settings: TelegramSettings,
        limiter: RateLimiter,
        migrate: Callable[[int, int], Awaitable[None]],
    ) -> None:
        self.api = api
        self.store = store
        self.settings = settings
        self.limiter = limiter
        self.migrate = migrate
        self._wake = trio.Event()
        self._in_flight: set[str] = set()
        self.sent_hook: Callable[[tgr.OutboxItem, int | None], None] | None = None

    async def _mark(self, item_id: int, state: str, wall_ms: int, **kw: Any) -> None:
        await self.store.run(partial(tgr.mark_outbox, **kw), item_id, state, wall_ms)

    def wake(self) -> None:
        """New rows were committed: look at the outbox now."""
        self._wake.set()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Recover rows left ``sending`` by a crash, then send until cancelled."""
        unknown = await self.store.run(tgr.recover_outbox, now_ms())
        if unknown:
            log.warning("telegram: %s message(s) had an unknown outcome at start-up", unknown)
        task_status.started()
        async with trio.open_nursery() as nursery:
            while True:
                self._wake = trio.Event()
                next_at = await self._dispatch(nursery)
                with trio.move_on_at(next_at):
                    await self._wake.wait()

    async def _dispatch(self, nursery: trio.Nursery) -> float:
        rows = await self.store.run(tgr.due_outbox, 500)
        now, wall = trio.current_time(), now_ms()
        next_at = now + 30.0
        seen: set[str] = set()
        for row in rows:
            if row.chat_key in seen:
                continue  # order per chat: only its oldest row is a candidate
            seen.add(row.chat_key)
            if row.chat_key in self._in_flight or len(self._in_flight) >= MAX_IN_FLIGHT:
                continue
            try:
                chat_id = parse_chat_key(row.chat_key)[0]
            except ValueError:
                await self._mark(row.id, "failed", wall, error="bad chat")
                continue
            at = max(self.limiter.ready_at(chat_id), now + (row.not_before_ms - wall) / 1000)
            if at > now:
                next_at = min(next_at, at)
                continue
            self.limiter.note_sent(chat_id)
            self._in_flight.add(row.chat_key)
            nursery.start_soon(self._send_row, row)
        return next_at

    async def _send_row(self, row: tgr.OutboxItem) -> None:
        try:
            # Shielded (bounded): a shutdown must not land between the request and the
            # commit of its outcome, or a delivered message would look unknown.
            with trio.CancelScope(shield=True):
                with trio.move_on_after(SEND_DEADLINE_S) as deadline:
                    await self._send(row)
                if deadline.cancelled_caught:  # the answer never came: outcome unknown
                    log.warning("telegram: no answer for outbox row %s in time", row.id)
                    await self._mark(row.id, "unknown", now_ms(), error="no answer in time")
        except Exception:
            log.exception("telegram: sending outbox row %s failed", row.id)
            await self._mark(row.id, "pending", now_ms(), not_before_ms=now_ms() + 5000)
        finally:
            self._in_flight.discard(row.chat_key)
            self.wake()

    async def _send(self, row: tgr.OutboxItem) -> None:
        if row.attempts >= MAX_ATTEMPTS:
            await self._mark(row.id, "failed", now_ms(), error="too many attempts")
            log.warning(
                "telegram: giving up on outbox row %s after %s attempts", row.id, row.attempts
            )
            return
        body = dict(row.body)
        if row.kind == "approval_edit":
            await self._edit_approval(row, body)
            return
        if row.state == "unknown":
            if self.settings.unknown_outcome == "drop":
                await self._mark(row.id, "dropped", now_ms(), error="unknown outcome")
                log.warning("telegram: outbox row %s had an unknown outcome; not resent", row.id)
                return
            if body.get("html"):
                body["html"] = RESENT_MARK + body["html"]
            body["plain"] = RESENT_MARK + body.get("plain", "")
        params = {**target(row.chat_key), "link_preview_options": {"is_disabled": True}}
        if row.kind == "approval" and body.get("buttons"):
            params["reply_markup"] = {
                "inline_keyboard": [
                    [{"text": label, "callback_data": data}] for label, data in body["buttons"]
                ]
            }
        plain_only = not body.get("html")
        await self._mark(row.id, "sending", now_ms())
        while True:
            if plain_only:
                params["text"] = body.get("plain") or body.get("html") or "(empty)"
                params.pop("parse_mode", None)
            else:
                params["text"] = body["html"]
                params["parse_mode"] = "HTML"
            try:
                result = await self.api.call("sendMessage", params)
            except TelegramError as exc:
                if exc.error_code == 400 and exc.says(*PARSE_ERRORS) and not plain_only:
                    plain_only = True
                    continue
                await self._refused(row, exc)
                return
            except NotSent as exc:
                await self._retry_later(row, str(exc))
                return
            except UnknownOutcome as exc:
                log.warning("telegram: outcome of outbox row %s unknown: %s", row.id, exc)
                await self._mark(row.id, "unknown", now_ms(), error=str(exc))
                return
            message_id = result.get("message_id") if isinstance(result, dict) else None
            await self._mark(row.id, "sent", now_ms(), message_id=message_id)
            if self.sent_hook is not None:
                self.sent_hook(row, message_id)
            return

    async def _refused(self, row: tgr.OutboxItem, exc: TelegramError) -> None:
        if exc.error_code == 429:
            hold = exc.retry_after or 5.0
            self.limiter.hold(parse_chat_key(row.chat_key)[0], hold)
            await self._mark(
                row.id,
                "pending",
                now_ms(),
                error=exc.description,
                not_before_ms=now_ms() + int(hold * 1000),
            )
            log.info("telegram: 429 for chat %s, holding it %.0fs", row.chat_key, hold)
            return
        if exc.migrate_to_chat_id is not None:
            await self.migrate(parse_chat_key(row.chat_key)[0], exc.migrate_to_chat_id)
            await self._mark(row.id, "pending", now_ms())
            return
        if exc.error_code >= 500:
            # The server answered, but a 5xx does not say whether the message went out.
            await self._mark(row.id, "unknown", now_ms(), error=exc.description)
            return
        if exc.error_code == 400 and exc.says("message thread not found") and ":" in row.chat_key:
            log.warning("telegram: topic of %s is gone; sending to the chat itself", row.chat_key)
            await self.store.run(_retarget, row.id, row.chat_key.partition(":")[0])
            return
        log.warning("telegram: message to %s refused: %s", row.chat_key, exc)
        await self._mark(row.id, "failed", now_ms(), error=exc.description)

    async def _retry_later(self, row: tgr.OutboxItem, error: str) -> None:
        delay = min(60_000, 1000 * 2 ** min(row.attempts, 6))
        await self._mark(
            row.id,
            "pending",
            now_ms(),
            error=error,
            not_before_ms=now_ms() + delay,
        )

    async def _edit_approval(self, row: tgr.OutboxItem, body: dict[str, Any]) -> None:
        message_id = await self.store.run(tgr.outbox_message_id, body.get("outboxId"))
        if message_id is None:
            state = await self.store.run(_state_of, body.get("outboxId"))
            if state in ("pending", "unknown", "sending"):
                await self._retry_later(row, "approval message not sent yet")
            else:
                await self._mark(row.id, "failed", now_ms(), error="no message")
            return
        params = {
            **target(row.chat_key),
            "message_id": message_id,
            "text": f"{body.get('text', '')}\n\n→ {body.get('outcome', '')}",
            "reply_markup": {"inline_keyboard": []},
        }
        params.pop("message_thread_id", None)
        await self._mark(row.id, "sending", now_ms())
        try:
            await self.api.call("editMessageText", params)
        except TelegramError as exc:
            if exc.says("message is not modified"):
                await self._mark(row.id, "sent", now_ms())
                return
            await self._refused(row, exc)
            return
        except (NotSent, UnknownOutcome) as exc:  # an edit is idempotent: just repeat it
            await self._retry_later(row, str(exc))
            return
        await self._mark(row.id, "sent", now_ms())


def _state_of(conn: Any, item_id: Any) -> str | None:
    row = conn.execute("SELECT state FROM tg_outbox WHERE id = ?", (item_id,)).fetchone()
    return row[0] if row else None


def _retarget(conn: Any, item_id: int, chat_key: str) -> None:
    conn.execute(
        "UPDATE tg_outbox SET chat_key = ?, state = 'pending' WHERE id = ?", (chat_key, item_id)
    )

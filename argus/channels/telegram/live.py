"""What a chat sees while a turn runs: the typing indicator and a streaming preview.

Keyed to the turn: ``turn/started`` on a thread bound to a chat starts both, that turn's
``turn/completed`` stops them (the original stopped typing for whichever chat spoke last).

* Typing: ``sendChatAction`` every 4 s (Telegram shows it for about 5 s).
* Preview (on in private chats, off in groups; ARGUS_TELEGRAM_STREAM): one message, edited
  at most once a second with the text so far (cut to fit one message). "message is not
  modified" counts as success. The final reply still comes through the outbox; the
  preview is deleted when the turn ends. Preview and typing are best effort: a failure
  is logged at debug level and never retried.

Bounds: at most ``MAX_LIVE`` turns tracked (further turns get no live feedback); the
preview text is capped at ``PREVIEW_CAP`` characters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import trio

from .botapi import BotApi, NotSent, TelegramError, UnknownOutcome
from .outbox import target
from .ratelimit import RateLimiter

log = logging.getLogger(__name__)

TYPING_EVERY_S = 4.0
PREVIEW_EVERY_S = 1.0
PREVIEW_CAP = 3500
MAX_LIVE = 1000


@dataclass
class LiveTurn:
    """One running turn shown in one chat."""

    chat_key: str
    stream: bool
    turn_id: str | None
    text: list[str] = field(default_factory=list)
    size: int = 0
    done: trio.Event = field(default_factory=trio.Event)
    changed: trio.Event = field(default_factory=trio.Event)


class Live:
    """Typing and previews of running turns."""

    def __init__(self, api: BotApi, limiter: RateLimiter) -> None:
        self.api = api
        self.limiter = limiter
        self.turns: dict[tuple[str, str], LiveTurn] = {}
        self._nursery: trio.Nursery | None = None

    async def serve(self) -> None:
        """Own the per-turn tasks."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await trio.sleep_forever()

    def started(self, key: tuple[str, str], chat_key: str, stream: bool, turn_id: Any) -> None:
        """A turn started on a thread bound to ``chat_key``."""
        if self._nursery is None or len(self.turns) >= MAX_LIVE:
            return
        old = self.turns.pop(key, None)
        if old is not None:
            old.done.set()
        turn = self.turns[key] = LiveTurn(
            chat_key, stream, turn_id if isinstance(turn_id, str) else None
        )
        self._nursery.start_soon(self._typing, turn)
        if stream:
            self._nursery.start_soon(self._preview, turn)

    def delta(self, key: tuple[str, str], text: str) -> None:
        """Streamed agent text."""
        turn = self.turns.get(key)
        if turn is not None and turn.stream and turn.size < PREVIEW_CAP:
            turn.text.append(text)
            turn.size += len(text)
            turn.changed.set()

    def completed(self, key: tuple[str, str], turn_id: Any) -> None:
        """The turn ended: stop typing, drop the preview."""
        turn = self.turns.get(key)
        if turn is not None and (
            turn.turn_id is None or turn_id is None or turn.turn_id == turn_id
        ):
            del self.turns[key]
            turn.done.set()

    def queued(self, chat_key: str) -> None:
        """An input was queued behind a running turn: one typing action says it arrived."""
        if self._nursery is not None:
            self._nursery.start_soon(self._action, chat_key)

    async def _action(self, chat_key: str) -> None:
        params = {**target(chat_key), "action": "typing"}
        try:
            await self.api.call("sendChatAction", params, timeout=10.0)
        except (TelegramError, NotSent, UnknownOutcome) as exc:
            log.debug("telegram: typing failed for %s: %s", chat_key, exc)

    async def _typing(self, turn: LiveTurn) -> None:
        while not turn.done.is_set():
            await self._action(turn.chat_key)
            with trio.move_on_after(TYPING_EVERY_S):
                await turn.done.wait()

    async def _preview(self, turn: LiveTurn) -> None:
        message_id: int | None = None
        shown = ""
        chat_id = int(turn.chat_key.split(":")[0])
        try:
            while not turn.done.is_set():
                turn.changed = trio.Event()
                text = "".join(turn.text)[:PREVIEW_CAP].strip()
                if text and text != shown:
                    await self.limiter.wait(chat_id)
                    if turn.done.is_set():
                        break
                    message_id = await self._show(turn.chat_key, message_id, text + " …")
                    shown = text
                with trio.move_on_after(PREVIEW_EVERY_S):
                    await turn.done.wait()
                if not turn.done.is_set() and "".join(turn.text).strip() == shown:
                    with trio.move_on_after(30):
                        await _first(turn.done, turn.changed)
        finally:
            if message_id is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(10):
                    await self._delete(turn.chat_key, message_id)

    async def _show(self, chat_key: str, message_id: int | None, text: str) -> int | None:
        try:
            if message_id is None:
                result = await self.api.call("sendMessage", {**target(chat_key), "text": text})
                return result.get("message_id") if isinstance(result, dict) else None
            params = {
                "chat_id": target(chat_key)["chat_id"],
                "message_id": message_id,
                "text": text,
            }
            await self.api.call("editMessageText", params)
        except TelegramError as exc:
            if not exc.says("message is not modified"):
                log.debug("telegram: preview failed for %s: %s", chat_key, exc)
        except (NotSent, UnknownOutcome) as exc:
            log.debug("telegram: preview failed for %s: %s", chat_key, exc)
        return message_id

    async def _delete(self, chat_key: str, message_id: int) -> None:
        params = {"chat_id": target(chat_key)["chat_id"], "message_id": message_id}
        try:
            await self.api.call("deleteMessage", params, timeout=10.0)
        except (TelegramError, NotSent, UnknownOutcome) as exc:
            log.debug("telegram: preview delete failed for %s: %s", chat_key, exc)


async def _first(*events: trio.Event) -> None:
    """Return when any of ``events`` is set."""
    async with trio.open_nursery() as nursery:

        async def wait(event: trio.Event) -> None:
            await event.wait()
            nursery.cancel_scope.cancel()

        for event in events:
            nursery.start_soon(wait, event)

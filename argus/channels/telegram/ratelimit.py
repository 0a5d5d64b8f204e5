"""Telegram's send limits, kept on our side so the server rarely has to say 429.

Per chat about one message a second, per group 20 a minute, overall about 30 a second
(Bot API FAQ). A 429 holds that chat for ``parameters.retry_after`` seconds. Time is the
trio clock. Memory: one small record per chat seen recently (at most ``MAX_CHATS``; the
oldest idle ones are forgotten first).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import trio

MAX_CHATS = 10_000


@dataclass
class _Chat:
    last: float = -1e9
    hold_until: float = 0.0
    minute: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=1000))


class RateLimiter:
    """When the next message to a chat may go."""

    def __init__(self, chat_interval_s: float, group_per_minute: int, global_per_s: float) -> None:
        self.chat_interval_s = chat_interval_s
        self.group_per_minute = group_per_minute
        self.global_per_s = global_per_s
        self._chats: collections.OrderedDict[int, _Chat] = collections.OrderedDict()
        self._global: collections.deque[float] = collections.deque(maxlen=4096)

    def _chat(self, chat_id: int) -> _Chat:
        record = self._chats.get(chat_id)
        if record is None:
            while len(self._chats) >= MAX_CHATS:
                self._chats.popitem(last=False)
            record = self._chats[chat_id] = _Chat()
        self._chats.move_to_end(chat_id)
        return record

    def ready_at(self, chat_id: int) -> float:
        """The earliest trio time a message to ``chat_id`` may be sent."""
        record = self._chat(chat_id)
        at = max(record.hold_until, record.last + self.chat_interval_s)
        if chat_id < 0 and len(record.minute) >= self.group_per_minute:
            at = max(at, record.minute[-self.group_per_minute] + 60.0)
        window = int(self.global_per_s)
        if window and len(self._global) >= window:
            at = max(at, self._global[-window] + 1.0)
        return at

    def note_sent(self, chat_id: int) -> None:
        """A message to ``chat_id`` was just sent."""
        now = trio.current_time()
        record = self._chat(chat_id)
        record.last = now
        record.minute.append(now)
        self._global.append(now)

    def hold(self, chat_id: int, seconds: float) -> None:
        """A 429: nothing to this chat for ``seconds``."""
        record = self._chat(chat_id)
        record.hold_until = max(record.hold_until, trio.current_time() + seconds)

    async def wait(self, chat_id: int) -> None:
        """Sleep until a message to ``chat_id`` may go, then count it as sent."""
        while True:
            at = self.ready_at(chat_id)
            if at <= trio.current_time():
                self.note_sent(chat_id)
                return
            await trio.sleep_until(at)

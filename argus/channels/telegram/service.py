"""``TelegramChannel``: the channel as one service in the daemon's nursery.

It owns five tasks: the poller (updates -> inbox), the dispatcher (inbox -> inputs), the
outbox sender, the live feedback (typing, previews) and the result writer (turn results
-> outbox rows). The engine's observer calls (``on_*``) are synchronous and only queue
work. See docs/telegram.md for the delivery guarantees.

Result delivery: every final turn result whose thread is bound to a Telegram chat
(``channel_bindings``, written when a chat's input is queued) -- follow-ups, system events,
heartbeats, cron runs and turns other clients started -- is rendered and queued as outbox
rows with the dedupe key ``turn:<session>:<turn>:<part>``. After a gateway restart a
bridged runtime replays its output, so a turn that completed while the gateway was down
(or before its rows were committed) is seen again and queued then; one already queued is
recognised by its key and not queued twice. A daemon-started turn on a thread without a
binding (a cron run) goes to ARGUS_TELEGRAM_HOME when set. A turn whose input names
Telegram updates (``[telegram update N]``, added by the dispatcher) is keyed by the first
update instead, so an input the engine started twice after a crash is answered once.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import trio

from ...store import records
from ...store import telegram_records as tgr
from ...store.db import Store
from ..base import Channel, TurnResult
from . import render
from .approvals import Approvals
from .botapi import BotApi, NotSent, TelegramError, UnknownOutcome
from .dispatch import INPUT_MARKER, Dispatcher
from .inbound import COMMANDS, chat_key
from .live import Live
from .media import Media
from .outbox import Outbox
from .poller import Poller
from .ratelimit import RateLimiter
from .settings import TelegramSettings

if TYPE_CHECKING:
    from ...automation.engine import Automation
    from ...sessions.manager import SessionManager
    from ...sessions.session import Session

log = logging.getLogger(__name__)

RESULT_QUEUE = 10_000
MAX_THREAD_CHATS = 100_000
HOME_KINDS = frozenset({"heartbeat", "cron", "followup", "user"})


def now_ms() -> int:
    """Wall-clock milliseconds."""
    return int(time.time() * 1000)


class TelegramChannel(Channel):
    """The Telegram channel of this gateway."""

    name = "telegram"

    def __init__(
        self,
        settings: TelegramSettings,
        store: Store,
        manager: SessionManager,
        engine: Automation,
    ) -> None:
        self.settings = settings
        self.store = store
        self.manager = manager
        self.engine = engine
        self.api = BotApi(settings.token, settings.api_url)
        self.limiter = RateLimiter(
            settings.chat_interval_s, settings.group_per_minute, settings.global_per_s
        )
        self.default_lock = trio.Lock()
        # (session, thread) -> chat key of the threads whose replies go to Telegram.
        self.thread_chats: dict[tuple[str, str], str] = {}
        # (session, thread) -> update ids named in the running turn's input (markers).
        self.turn_inputs: dict[tuple[str, str], list[int]] = {}
        self.outbox = Outbox(self.api, store, settings, self.limiter, self.migrate)
        self.dispatcher = Dispatcher(self)
        self.poller = Poller(self.api, store, settings, self.dispatcher.wake, self.migrated)
        self.live = Live(self.api, self.limiter)
        self.media = Media(self.api, settings.media_max_bytes)
        self.approvals = Approvals(self)
        # Results can arrive before serve() runs (a bridge replays at start-up): buffered.
        self._results_in, self._results_out = trio.open_memory_channel[TurnResult](RESULT_QUEUE)
        self._nursery: trio.Nursery | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run every part until cancelled."""
        for session_id, thread_id, key in await self.store.run(tgr.telegram_bindings):
            self.remember_thread(session_id, thread_id, key)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self.outbox.serve)
                nursery.start_soon(self.live.serve)
                nursery.start_soon(self._write_results)
                nursery.start_soon(self.poller.serve)
                nursery.start_soon(self._after_identify)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True):
                await self.api.aclose()

    async def _after_identify(self) -> None:
        await self.poller.ready.wait()
        assert self._nursery is not None
        self._nursery.start_soon(self.dispatcher.serve)
        commands = [{"command": k, "description": v} for k, v in COMMANDS.items()]
        try:
            await self.api.call("setMyCommands", {"commands": commands})
        except (TelegramError, NotSent, UnknownOutcome) as exc:
            log.warning("telegram: setMyCommands failed: %s", exc)

    def spawn(self, fn: Any, *args: Any) -> None:
        """Run a job under the channel (from the synchronous observer calls)."""
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)

    def remember_thread(self, session_id: str, thread_id: str, key: str) -> None:
        """The thread's replies go to chat ``key`` (bounded; oldest forgotten first)."""
        self.thread_chats.pop((session_id, thread_id), None)
        while len(self.thread_chats) >= MAX_THREAD_CHATS:
            del self.thread_chats[next(iter(self.thread_chats))]
        self.thread_chats[(session_id, thread_id)] = key

    async def migrate(self, old_chat: int, new_chat: int) -> None:
        """A send learned that a group became a supergroup: move everything along."""
        await self.store.run(tgr.migrate_chat, old_chat, new_chat, now_ms())
        self.migrated(old_chat, new_chat)

    def migrated(self, old_chat: int, new_chat: int) -> None:
        """The store moved a chat (``migrate_to_chat_id``): follow in memory."""
        for key, value in list(self.thread_chats.items()):
            chat, sep, topic = value.partition(":")
            if chat == str(old_chat):
                self.thread_chats[key] = str(new_chat) + sep + topic
        log.info("telegram: chat %s migrated to %s", old_chat, new_chat)
        self.outbox.wake()

    # -- observer calls (synchronous, cheap) -----------------------------------------------

    def on_notification(self, session: Session, method: str, params: dict[str, Any]) -> None:
        """Typing and previews for turns on threads bound to a chat; approval outcomes."""
        thread_id = params.get("threadId")
        if type(thread_id) is not str:
            return
        key = (session.id, thread_id)
        if method == "item/agentMessage/delta":
            delta = params.get("delta")
            if type(delta) is str and key in self.live.turns:
                self.live.delta(key, delta)
            return
        if method == "item/started":
            item = params.get("item")
            if isinstance(item, dict) and item.get("type") == "userMessage":
                self._note_inputs(key, item)
            return
        if method == "turn/started":
            self.turn_inputs.pop(key, None)
            target = self.thread_chats.get(key)
            if target is not None:
                turn = params.get("turn")
                turn_id = turn.get("id") if isinstance(turn, dict) else params.get("turnId")
                private = not target.startswith("-")
                self.live.started(key, target, self.settings.stream_for(private), turn_id)
        elif method == "turn/completed":
            turn = params.get("turn")
            self.live.completed(key, turn.get("id") if isinstance(turn, dict) else None)
        elif method == "serverRequest/resolved" and "requestId" in params:
            self.approvals.on_resolved(session, params["requestId"])

    def _note_inputs(self, key: tuple[str, str], item: dict[str, Any]) -> None:
        """The Telegram updates a turn's input carries (their markers), for deduplication."""
        content = item.get("content")
        texts = (
            [c.get("text") for c in content if isinstance(c, dict)]
            if isinstance(content, list)
            else []
        )
        found = [int(m) for t in texts if isinstance(t, str) for m in INPUT_MARKER.findall(t)]
        if found:
            while len(self.turn_inputs) >= MAX_THREAD_CHATS:
                del self.turn_inputs[next(iter(self.turn_inputs))]
            self.turn_inputs[key] = found[:50]

    def on_turn_result(self, session: Session, result: dict[str, Any]) -> None:
        """Queue a final turn result for the writer task."""
        source = result.get("source") or (None, None)
        item = TurnResult(
            session.id,
            result["threadId"],
            result.get("turnId"),
            result.get("kind"),
            result.get("status"),
            result.get("text") or "",
            (source[0], source[1]),
            tuple(self.turn_inputs.pop((session.id, result["threadId"]), ())),
        )
        try:
            self._results_in.send_nowait(item)
        except trio.WouldBlock:
            log.error("telegram: result queue full; reply of turn %s not queued", item.turn_id)

    def on_server_request(
        self, session: Session, request_id: Any, method: str, params: dict
    ) -> None:
        """Show approvals of chat-bound turns in the chat."""
        self.approvals.on_request(session, request_id, method, params)

    def on_server_answer(self, session: Session, request_id: Any, result: Any) -> None:
        """Another client answered first: edit the chat's approval message."""
        self.approvals.on_answer(session, request_id, result)

    # -- results -> outbox -----------------------------------------------------------------

    async def _write_results(self) -> None:
        async for result in self._results_out:
            try:
                if await self.store.run(_queue_result, result, self.settings.home):
                    self.outbox.wake()
            except records.QueueFull as exc:
                log.error("telegram: reply of turn %s not queued: %s", result.turn_id, exc)


def _queue_result(conn: Any, result: TurnResult, home: tuple[int, int | None] | None) -> bool:
    """Find the chat of a result and queue its parts (once per turn); whether any were added."""
    key: str | None = None
    channel, source_key = result.source
    if channel and channel.lower() in ("telegram", "tg") and source_key:
        key = source_key
    else:
        binding = records.get_binding(conn, result.session_id, result.thread_id)
        if binding is not None:
            if binding["channel"].lower() not in ("telegram", "tg"):
                return False
            key = binding["chatKey"]
        elif home is not None and result.kind in HOME_KINDS:
            key = chat_key(*home)
    if key is None:
        return False
    text = render.strip_heartbeat(result.text)
    if text is None:
        return False
    prefix = f"turn:{result.session_id}:{result.turn_id}:" if result.turn_id else None
    if result.inputs:  # the reply to these updates, however many turns ran them
        prefix = f"input:{result.session_id}:{result.inputs[0]}:"
        if tgr.has_dedupe(conn, f"turn:{result.session_id}:{result.turn_id}:"):
            return False
    if prefix is not None and tgr.has_dedupe(conn, prefix):
        log.info("telegram: a second reply to the same input was not queued (%s)", prefix)
        return False
    added = False
    for i, part in enumerate(render.render_parts(text)):
        body = {"html": part.html, "plain": part.plain}
        dedupe = f"{prefix}{i:04d}" if prefix else None
        added = tgr.add_outbox(conn, dedupe, key, "text", body, now_ms()) is not None or added
    return added

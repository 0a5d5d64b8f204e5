"""Which session and thread a chat talks to, and which session is "the default".

* The owner's private chat (first id of ARGUS_TELEGRAM_ALLOW) is the default session's
  main thread, as in the original -- unless the owner asked for ``/new`` there.
* Every other private chat, group and forum topic gets a thread of its own, created on
  its first message and remembered in ``tg_chats``.
* A mapped thread the runtime no longer knows (``thread/resume`` refused) is replaced by
  a new one, and the mapping updated.

``default_session`` is the one place that decides what the default session is, so it can
follow the daemon's own notion of it (``/ws?session=default``) once that exists.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ...sessions.internal_calls import RuntimeCallError
from ...store import telegram_records as tgr

if TYPE_CHECKING:
    from ...sessions.session import Session
    from .service import TelegramChannel

log = logging.getLogger(__name__)

DEFAULT_SESSION_KEY = "default_session_id"


def now_ms() -> int:
    """Wall-clock milliseconds."""
    return int(time.time() * 1000)


async def default_session(channel: TelegramChannel) -> Session:
    """The session the owner's chat and new chat threads live in: durable, made on first use.

    A session stored under ``tg_kv.default_session_id`` wins (``argus import-state`` writes
    the original bot's ``defaultSessionId`` there); otherwise the daemon's own default
    session when the manager has one (``SessionManager.default_session``), else a session
    created here and stored under that key.
    """
    manager = channel.manager
    async with channel.default_lock:
        stored = await channel.store.run(tgr.kv_get, DEFAULT_SESSION_KEY)
        if stored and (session := manager.get(stored)) is not None:
            return session
        daemon_default = getattr(manager, "default_session", None)
        if daemon_default is not None:  # the daemon's own default session (/ws?session=default)
            session, _created = await daemon_default()
            return session
        session = await manager.create()
        await channel.store.run(tgr.kv_set, DEFAULT_SESSION_KEY, session.id)
        log.info("telegram: default session is %s", session.id)
        return session


def is_thread_gone(exc: RuntimeCallError) -> bool:
    """Whether a runtime error means the thread does not exist (any more)."""
    message = str(exc.error.get("message", "")).lower()
    return any(s in message for s in ("not found", "no rollout", "unknown thread", "no thread"))


async def resolve(
    channel: TelegramChannel, key: str, *, owner_private: bool
) -> tuple[Session, str]:
    """(session, thread) of the chat ``key``, creating or recreating the thread as needed."""
    engine = channel.engine
    mapped = await channel.store.run(tgr.get_chat, key)
    if mapped is not None:
        session = channel.manager.get(mapped[0])
        if session is not None:
            try:
                await engine.ensure_loaded(session, mapped[1])
                return session, mapped[1]
            except RuntimeCallError as exc:
                if not is_thread_gone(exc):
                    raise
                log.warning(
                    "telegram: thread %s of chat %s is gone; starting a new one", mapped[1], key
                )
    session = await default_session(channel)
    if owner_private and mapped is None:
        return session, await engine.ensure_main_thread(session)
    return session, await new_thread(channel, session, key)


async def new_thread(channel: TelegramChannel, session: Session, key: str) -> str:
    """Start a thread for the chat and remember it (before any input is queued on it)."""
    thread_id = await channel.engine.start_thread(session)
    await channel.store.run(tgr.set_chat, key, session.id, thread_id, now_ms())
    channel.remember_thread(session.id, thread_id, key)
    return thread_id

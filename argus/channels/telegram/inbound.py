"""Deciding what an update is: an input, a command, a button press, a migration -- or nothing.

Pure functions of the update, the bot's identity and the settings, so the poller can
classify a whole page inside the transaction that stores it. The rules (docs/telegram.md):

* Default deny: a private message from a user not in ARGUS_TELEGRAM_ALLOW becomes a
  ``deny`` item (answered at most once per cooldown); in groups, only chats listed in
  ARGUS_TELEGRAM_ALLOW_CHATS count, and only messages that mention the bot, reply to it,
  or are ``/cmd@bot``. Anything else is ignored (ledgered, not queued).
* Commands addressed to another bot (``/cmd@other``) are ignored.
* Messages from bots and service messages (anything without text, caption, photo or
  document) are ignored, except ``migrate_to_chat_id``.
* A topic is the chat's ``message_thread_id`` only when ``is_topic_message`` is true.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .settings import TelegramSettings

COMMANDS = {
    "where": "show the session, thread and chat key",
    "new": "start a new thread for this chat",
    "stop": "interrupt the running turn",
    "status": "show the running turn and the queue depth",
    "help": "list the commands",
}
LOCAL_COMMANDS = {*COMMANDS, "start"}
MAX_TEXT = 32 * 1024


@dataclass(frozen=True)
class BotIdentity:
    """Who we are on Telegram (from ``getMe``)."""

    id: int
    username: str


def chat_key(chat_id: int, topic: int | None) -> str:
    """``"<chat>"`` or ``"<chat>:<topic>"`` (the original's format)."""
    return f"{chat_id}:{topic}" if topic is not None else str(chat_id)


def parse_chat_key(key: str) -> tuple[int, int | None]:
    """The inverse of ``chat_key``; ValueError for a malformed key."""
    chat, _, topic = key.partition(":")
    return int(chat), (int(topic) if topic else None)


def display_name(user: dict[str, Any]) -> str:
    """``First Last (@user)``, as much of it as exists."""
    name = " ".join(str(user.get(k) or "").strip() for k in ("first_name", "last_name")).strip()
    username = user.get("username")
    if username:
        name = f"{name} (@{username})" if name else f"@{username}"
    return name or str(user.get("id", "someone"))


def is_allowed_user(user: dict[str, Any], settings: TelegramSettings) -> bool:
    """Whether the sender is on ARGUS_TELEGRAM_ALLOW (by id or @username)."""
    user_id = user.get("id")
    if isinstance(user_id, int) and user_id in settings.allow_users:
        return True
    username = user.get("username")
    return isinstance(username, str) and username.lower() in settings.allow_usernames


def parse_command(text: str, bot: BotIdentity) -> tuple[str | None, bool]:
    """(command, addressed-to-another-bot) of a ``/cmd[@bot] args`` text."""
    if not text.startswith("/"):
        return None, False
    word = text.split(maxsplit=1)[0][1:]
    name, _, target = word.partition("@")
    if target and target.lower() != bot.username.lower():
        return None, True
    return name.lower(), False


def _media(message: dict[str, Any]) -> dict[str, Any] | None:
    photos = message.get("photo")
    if isinstance(photos, list) and photos:
        best = max(
            (p for p in photos if isinstance(p, dict)),
            key=lambda p: (p.get("width", 0) * p.get("height", 0), p.get("file_size", 0)),
        )
        return {
            "type": "photo",
            "fileId": best.get("file_id"),
            "size": best.get("file_size"),
            "name": f"photo-{best.get('file_unique_id', 'x')}.jpg",
        }
    document = message.get("document")
    if isinstance(document, dict):
        return {
            "type": "document",
            "fileId": document.get("file_id"),
            "size": document.get("file_size"),
            "name": str(document.get("file_name") or f"file-{document.get('file_unique_id')}"),
            "mime": document.get("mime_type"),
        }
    return None


def _addressed(message: dict[str, Any], text: str, bot: BotIdentity) -> bool:
    """In a group: a mention of the bot, a reply to it, or ``/cmd@bot``."""
    mention = f"@{bot.username}".lower()
    if mention in text.lower():
        return True
    reply = message.get("reply_to_message")
    if isinstance(reply, dict):
        sender = reply.get("from")
        if isinstance(sender, dict) and sender.get("id") == bot.id:
            return True
    return False


def classify(
    update: dict[str, Any], bot: BotIdentity, settings: TelegramSettings
) -> tuple[str, dict[str, Any]] | None:
    """(chat_key, payload) for an update that needs work, or None to ignore it."""
    callback = update.get("callback_query")
    if isinstance(callback, dict):
        return _classify_callback(callback, settings)
    edited = "message" not in update and isinstance(update.get("edited_message"), dict)
    message = update.get("message") if not edited else update.get("edited_message")
    if not isinstance(message, dict):
        return None
    chat = message.get("chat")
    sender = message.get("from")
    if not isinstance(chat, dict) or not isinstance(chat.get("id"), int):
        return None
    chat_id: int = chat["id"]
    migrate_to = message.get("migrate_to_chat_id")
    if isinstance(migrate_to, int):
        return str(chat_id), {"kind": "migrate", "from": chat_id, "to": migrate_to}
    if not isinstance(sender, dict) or sender.get("is_bot"):
        return None
    text = message.get("text") or message.get("caption") or ""
    if not isinstance(text, str):
        text = ""
    media = _media(message)
    if not text.strip() and media is None:
        return None  # a service message, a sticker, a poll...
    topic = message.get("message_thread_id") if message.get("is_topic_message") is True else None
    topic = topic if isinstance(topic, int) else None
    key = chat_key(chat_id, topic)
    private = chat.get("type") == "private"
    base: dict[str, Any] = {
        "chatId": chat_id,
        "topic": topic,
        "private": private,
        "userId": sender.get("id"),
        "name": display_name(sender),
        "messageId": message.get("message_id"),
    }
    if private and not is_allowed_user(sender, settings):
        return key, {**base, "kind": "deny"}
    if not private and chat_id not in settings.allow_chats:
        return None
    command, other_bot = parse_command(text, bot)
    if other_bot:
        return None
    if not private and not (_addressed(message, text, bot) or (command and "@" in text.split()[0])):
        return None
    if command in LOCAL_COMMANDS and not edited:
        args = text.split(maxsplit=1)[1] if len(text.split(maxsplit=1)) > 1 else ""
        return key, {**base, "kind": "command", "command": command, "args": args}
    if not private:
        text = text.replace(f"@{bot.username}", "").strip()
    text = text[:MAX_TEXT]
    if edited:
        text = f"(edited message) {text}"
    if not private:
        text = f"{base['name']}: {text}" if text else f"{base['name']} sent a file"
    return key, {**base, "kind": "message", "text": text, "media": media}


def _classify_callback(
    callback: dict[str, Any], settings: TelegramSettings
) -> tuple[str, dict[str, Any]] | None:
    sender = callback.get("from")
    message = callback.get("message")
    data = callback.get("data")
    if not isinstance(sender, dict) or not isinstance(message, dict) or not isinstance(data, str):
        return None
    chat = message.get("chat")
    if not isinstance(chat, dict) or not isinstance(chat.get("id"), int):
        return None
    topic = message.get("message_thread_id") if message.get("is_topic_message") is True else None
    payload = {
        "kind": "callback",
        "callbackId": callback.get("id"),
        "data": data,
        "userId": sender.get("id"),
        "name": display_name(sender),
        "allowed": is_allowed_user(sender, settings)
        or (chat.get("type") != "private" and chat["id"] in settings.allow_chats),
        "chatId": chat["id"],
        "messageId": message.get("message_id"),
    }
    return chat_key(chat["id"], topic if isinstance(topic, int) else None), payload

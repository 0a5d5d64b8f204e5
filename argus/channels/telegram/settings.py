"""The Telegram channel's settings, read from ``ARGUS_TELEGRAM_*`` (and ``TELEGRAM_BOT_TOKEN``).

Kept beside the channel rather than in ``argus.config`` so the daemon's model stays about
the daemon; ``check`` is called with the daemon's own checks, so a bad value stops
``argus serve`` before anything listens, naming the variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ...config import ConfigError
from .botapi import DEFAULT_API_URL

_SPLIT = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class TelegramSettings:
    """Everything the channel can be told; see docs/telegram.md for each setting."""

    token: str = field(repr=False)
    api_url: str = DEFAULT_API_URL
    allow_users: tuple[int, ...] = ()
    allow_usernames: tuple[str, ...] = ()  # lowercased, without '@'
    allow_chats: tuple[int, ...] = ()
    home: tuple[int, int | None] | None = None
    stream: str = "auto"  # auto (private on, groups off) | on | off
    deny_cooldown_s: float = 3600.0
    deny_text: str = (
        "This bot is private. Ask its owner to add your user id {user_id} to ARGUS_TELEGRAM_ALLOW."
    )
    media_max_bytes: int = 20 * 1024 * 1024
    poll_timeout_s: int = 50
    unknown_outcome: str = "mark"  # mark (resend once, marked) | drop
    chat_interval_s: float = 1.0
    group_per_minute: int = 20
    global_per_s: float = 30.0
    state_dir: str = ""  # set by the daemon: where the poller's lock file lives

    @property
    def owner_id(self) -> int | None:
        """The first user id of ARGUS_TELEGRAM_ALLOW (its private chat is the main thread)."""
        return self.allow_users[0] if self.allow_users else None

    def stream_for(self, private: bool) -> bool:
        """Whether a chat gets a streaming preview."""
        if self.stream == "auto":
            return private
        return self.stream == "on"


def _strip_quotes(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1].strip()
    return value


def parse_chat_target(value: str, name: str) -> tuple[int, int | None]:
    """``chat[:topic]`` -> (chat id, topic id or None)."""
    chat, _, topic = value.partition(":")
    try:
        return int(chat), (int(topic) if topic else None)
    except ValueError:
        raise ConfigError(f"{name}: expected CHAT_ID or CHAT_ID:TOPIC_ID, got {value!r}") from None


def _number(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}: must be between {lo:g} and {hi:g} (got {raw!r})")
    return value


def load(environ: Mapping[str, str] | None = None) -> TelegramSettings | None:
    """The channel's settings, or None when no bot token is set (the channel is off)."""
    env = os.environ if environ is None else environ
    token = _strip_quotes(
        env.get("ARGUS_TELEGRAM_BOT_TOKEN") or env.get("TELEGRAM_BOT_TOKEN") or ""
    )
    if not token:
        return None
    if not re.fullmatch(r"[0-9]+:[A-Za-z0-9_-]+", token):
        raise ConfigError("ARGUS_TELEGRAM_BOT_TOKEN: not a bot token (expected <digits>:<secret>)")
    users: list[int] = []
    names: list[str] = []
    for item in _SPLIT.split(_strip_quotes(env.get("ARGUS_TELEGRAM_ALLOW", ""))):
        if not item:
            continue
        if item.startswith("@") and len(item) > 1:
            names.append(item[1:].lower())
            continue
        try:
            users.append(int(item))
        except ValueError:
            raise ConfigError(
                f"ARGUS_TELEGRAM_ALLOW: expected user ids or @usernames, got {item!r}"
            ) from None
    chats: list[int] = []
    for item in _SPLIT.split(_strip_quotes(env.get("ARGUS_TELEGRAM_ALLOW_CHATS", ""))):
        if item:
            try:
                chats.append(int(item))
            except ValueError:
                raise ConfigError(f"ARGUS_TELEGRAM_ALLOW_CHATS: not a chat id: {item!r}") from None
    home_raw = _strip_quotes(env.get("ARGUS_TELEGRAM_HOME", ""))
    home = parse_chat_target(home_raw, "ARGUS_TELEGRAM_HOME") if home_raw else None
    stream = _strip_quotes(env.get("ARGUS_TELEGRAM_STREAM", "auto")).lower() or "auto"
    stream = {"1": "on", "true": "on", "0": "off", "false": "off"}.get(stream, stream)
    if stream not in ("auto", "on", "off"):
        raise ConfigError(f"ARGUS_TELEGRAM_STREAM: expected auto, on or off, got {stream!r}")
    unknown = _strip_quotes(env.get("ARGUS_TELEGRAM_UNKNOWN_OUTCOME", "mark")).lower() or "mark"
    if unknown not in ("mark", "drop"):
        raise ConfigError(f"ARGUS_TELEGRAM_UNKNOWN_OUTCOME: expected mark or drop, got {unknown!r}")
    api_url = _strip_quotes(env.get("ARGUS_TELEGRAM_API_URL", "")) or DEFAULT_API_URL
    if not re.match(r"^https?://", api_url):
        raise ConfigError(f"ARGUS_TELEGRAM_API_URL: expected an http(s) URL, got {api_url!r}")
    deny_text = env.get("ARGUS_TELEGRAM_DENY_TEXT")
    return TelegramSettings(
        token=token,
        api_url=api_url,
        allow_users=tuple(users),
        allow_usernames=tuple(names),
        allow_chats=tuple(chats),
        home=home,
        stream=stream,
        deny_cooldown_s=_number(env, "ARGUS_TELEGRAM_DENY_COOLDOWN_S", 3600.0, 0, 7 * 86400),
        deny_text=deny_text if deny_text else TelegramSettings.deny_text,
        media_max_bytes=int(
            _number(env, "ARGUS_TELEGRAM_MEDIA_MAX_BYTES", 20 * 1024 * 1024, 0, 2_000_000_000)
        ),
        poll_timeout_s=int(_number(env, "ARGUS_TELEGRAM_POLL_TIMEOUT_S", 50, 1, 50)),
        unknown_outcome=unknown,
        chat_interval_s=_number(env, "ARGUS_TELEGRAM_CHAT_INTERVAL_S", 1.0, 0.0, 60.0),
        group_per_minute=int(_number(env, "ARGUS_TELEGRAM_GROUP_PER_MINUTE", 20, 1, 1000)),
        global_per_s=_number(env, "ARGUS_TELEGRAM_GLOBAL_PER_S", 30.0, 1.0, 1000.0),
    )

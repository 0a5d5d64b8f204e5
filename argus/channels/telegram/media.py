"""Photos and documents from a chat, saved into the session's workspace.

Size-capped (ARGUS_TELEGRAM_MEDIA_MAX_BYTES, checked against ``file_size`` before the
download and counted during it). Saved as ``<workspace>/telegram/<update_id>-<name>``, so a
retried update overwrites its own file instead of adding a second one. The input names
the file; a photo is also attached as a ``localImage`` input item (the runtime's path).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from .botapi import BotApi, TelegramError
from .dispatch import safe_name

if TYPE_CHECKING:
    from ...sessions.session import Session
    from ...store.telegram_records import InboxItem

MEDIA_DIR = "telegram"


class Media:
    """Downloads what a message carries."""

    def __init__(self, api: BotApi, max_bytes: int) -> None:
        self.api = api
        self.max_bytes = max_bytes

    async def save(
        self, session: Session, row: InboxItem, media: dict[str, Any]
    ) -> tuple[str, list[dict[str, Any]]]:
        """(a line for the input text, extra input items)."""
        kind, name = media.get("type", "file"), safe_name(str(media.get("name") or "file"))
        size = media.get("size")
        if isinstance(size, int) and size > self.max_bytes:
            return f"[The user sent a {kind} '{name}' of {size} bytes, over the limit.]", []
        host_dir = session.workspace_path()
        runtime_dir = session.workspace_cwd()
        if host_dir is None or runtime_dir is None:
            return f"[The user sent a {kind} '{name}'; files cannot be saved here.]", []
        try:
            info = await self.api.call("getFile", {"file_id": media.get("fileId")})
            data = await self.api.download(str(info.get("file_path")), self.max_bytes)
        except ValueError as exc:
            return f"[The user sent a {kind} '{name}' that could not be fetched: {exc}]", []
        except TelegramError as exc:
            return f"[The user sent a {kind} '{name}' that Telegram refused: {exc.description}]", []
        file_name = f"{row.update_id}-{name}"
        target = Path(host_dir) / MEDIA_DIR / file_name

        def write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(target.suffix + ".part")
            tmp.write_bytes(data)
            tmp.replace(target)

        await trio.to_thread.run_sync(write)
        runtime_path = f"{runtime_dir.rstrip('/')}/{MEDIA_DIR}/{file_name}"
        note = f"[The user sent a {kind}, saved as {runtime_path} ({len(data)} bytes).]"
        items = [{"type": "localImage", "path": runtime_path}] if kind == "photo" else []
        return note, items

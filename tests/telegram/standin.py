"""A faithful Bot API stand-in on 127.0.0.1, for tests and benchmarks.

What it reproduces (the parts the channel depends on):

* the error envelope ``{"ok": false, "error_code": N, "description": "...", "parameters"}``
  with HTTP status = ``error_code``; 401 for a wrong token, 404 for an unknown method;
* ``getUpdates`` offset semantics (a positive offset confirms every earlier update, a
  negative one keeps only the last -offset updates) and a real long poll (``timeout``);
* 409 ``Conflict: terminated by other getUpdates request`` to the older of two pollers,
  and 409 while a webhook is set;
* ``sendMessage`` checks: chat and topic exist (thread 1 refused), the HTML subset (tags,
  nesting, entities) and the 4096 UTF-16-unit limit after entity parsing;
* ``editMessageText`` ("message is not modified"), ``deleteMessage``, ``sendChatAction``,
  ``answerCallbackQuery``, ``setMyCommands``, ``getFile`` and file downloads;
* scripted faults per method: 429 (with ``retry_after``), 5xx, or a connection reset,
  each ``before`` or ``after`` the message is stored.

It is an HTTP/1.1 server written on h11 over trio sockets, so a fault can really reset
the TCP connection (SO_LINGER 0) at the chosen point.
"""

from __future__ import annotations

import html
import itertools
import json
import re
import socket
import struct
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import h11
import trio

ALLOWED_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "code",
    "pre",
    "a",
    "span",
    "tg-spoiler",
    "blockquote",
    "tg-emoji",
}
CONFLICT = (
    "Conflict: terminated by other getUpdates request;"
    " make sure that only one bot instance is running"
)
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active;"
    " use deleteWebhook to delete the webhook first"
)
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup"
    " are exactly the same as a current content and reply markup of the message"
)


class ApiError(Exception):
    """An ``ok: false`` answer."""

    def __init__(self, code: int, description: str, parameters: dict | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


def utf16_len(text: str) -> int:
    """Telegram's length unit."""
    return len(text.encode("utf-16-le")) // 2


class _EntityParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.error: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if self.error:
            return
        if tag not in ALLOWED_TAGS:
            self.error = f'Can\'t parse entities: unsupported start tag "{tag}"'
            return
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.error:
            return
        if not self.stack or self.stack[-1] != tag:
            self.error = (
                f"Can't parse entities: can't find end tag corresponding to start tag \"{tag}\""
            )
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(text: str) -> str:
    """The visible text of a Telegram-HTML message; ApiError 400 like the real server."""
    for match in re.finditer("&", text):
        # A bare '&' that does not start an entity is refused by the Bot API.
        if not re.match(r"&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);", text[match.start() :]):
            raise ApiError(400, "Bad Request: can't parse entities: unsupported entity")
    parser = _EntityParser()
    parser.feed(text)
    parser.close()
    if parser.error:
        raise ApiError(400, "Bad Request: " + parser.error[0].lower() + parser.error[1:])
    if parser.stack:
        raise ApiError(
            400,
            "Bad Request: can't parse entities: can't find end of the entity starting at"
            f' byte offset 0 ("{parser.stack[-1]}")',
        )
    return "".join(parser.text)


@dataclass
class Fault:
    """One scripted failure: ``action`` 429 | 500 | 502 | reset | parse, ``when`` before | after."""

    method: str
    action: str
    when: str = "before"
    retry_after: int = 1


@dataclass
class Message:
    """A message the bot sent (or edited)."""

    message_id: int
    chat_id: int
    thread_id: int | None
    text: str
    html: str | None
    reply_markup: Any = None
    edits: int = 0
    deleted: bool = False


@dataclass
class Chat:
    """A chat the stand-in knows: private, group, supergroup; forum topics."""

    id: int
    type: str = "private"
    title: str = ""
    topics: set[int] = field(default_factory=set)
    is_forum: bool = False


class BotApiStandIn:
    """One bot (token) and its chats, served on 127.0.0.1."""

    def __init__(
        self, token: str = "123456:TEST-token_abc", username: str = "argus_test_bot"
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":")[0])
        self.username = username
        self.updates: list[dict[str, Any]] = []
        self.next_update_id = 1000
        self.confirmed = 0  # updates below this id are forgotten
        self.changed = trio.Event()
        self.poll_generation = 0
        self.active_polls = 0
        self.webhook_url = ""
        self.chats: dict[int, Chat] = {}
        self.messages: dict[int, Message] = {}
        self.sent: list[Message] = []  # every sendMessage that was stored, in order
        self.calls: list[tuple[str, dict]] = []
        self.faults: list[Fault] = []
        self.actions: list[dict] = []
        self.commands: list[dict] = []
        self.callback_answers: list[dict] = []
        self.files: dict[str, bytes] = {}
        self.conflicts_sent = 0
        self.rate_violations = 0
        self._chat_times: dict[int, list[float]] = {}
        self._message_ids = itertools.count(1)
        self._kick = trio.Event()
        self.port = 0
        self.store_hook: Any = None  # called with each stored Message (benchmarks)

    # -- test-side helpers --------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL to give ARGUS_TELEGRAM_API_URL."""
        return f"http://127.0.0.1:{self.port}"

    def add_chat(
        self, chat_id: int, type_: str = "private", *, topics: set[int] | None = None
    ) -> Chat:
        """Make a chat known (sendMessage to an unknown chat is refused)."""
        chat = self.chats[chat_id] = Chat(
            chat_id, type_, f"chat {chat_id}", topics or set(), bool(topics)
        )
        return chat

    def push(self, update: dict[str, Any]) -> int:
        """Queue an update (``update_id`` assigned); wakes a waiting long poll."""
        self.next_update_id += 1
        update = {"update_id": self.next_update_id, **update}
        self.updates.append(update)
        self.changed.set()
        self.changed = trio.Event()
        return self.next_update_id

    def user(self, user_id: int, username: str | None = None, first: str = "User") -> dict:
        """A ``User`` object."""
        u: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first}
        if username:
            u["username"] = username
        return u

    def text(
        self,
        chat_id: int,
        user: dict,
        text: str,
        *,
        topic: int | None = None,
        reply_to_bot: bool = False,
        edited: bool = False,
        **extra: Any,
    ) -> int:
        """Push a text message from ``user`` in ``chat_id``."""
        chat = self.chats.get(chat_id) or self.add_chat(
            chat_id, "private" if chat_id > 0 else "supergroup"
        )
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": 1_700_000_000,
            "chat": {"id": chat_id, "type": chat.type},
            "from": user,
            "text": text,
            **extra,
        }
        if topic is not None:
            message["message_thread_id"] = topic
            message["is_topic_message"] = True
        if reply_to_bot:
            message["reply_to_message"] = {
                "message_id": 1,
                "from": {"id": self.bot_id, "is_bot": True, "first_name": "bot"},
                "chat": message["chat"],
                "date": 1,
            }
        return self.push({"edited_message" if edited else "message": message})

    def press(self, user: dict, message: Message, data: str) -> int:
        """Push a callback query: ``user`` pressed a button of ``message``."""
        chat = self.chats[message.chat_id]
        return self.push(
            {
                "callback_query": {
                    "id": f"cb{self.next_update_id}",
                    "from": user,
                    "data": data,
                    "chat_instance": "x",
                    "message": {
                        "message_id": message.message_id,
                        "date": 1,
                        "chat": {"id": chat.id, "type": chat.type},
                        "text": message.text,
                    },
                }
            }
        )

    def in_chat(self, chat_id: int) -> list[Message]:
        """Messages stored for a chat, in order (deleted ones left out)."""
        return [m for m in self.sent if m.chat_id == chat_id and not m.deleted]

    # -- server ---------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on 127.0.0.1 (a free port) until cancelled."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await self._read_request(stream, conn)
                if request is None:
                    return
                status, payload, reset = await self._route(request, body)
                if reset:
                    _reset(stream)
                    return
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                ctype = (
                    "application/octet-stream" if isinstance(payload, bytes) else "application/json"
                )
                headers = [("content-type", ctype), ("content-length", str(len(data)))]
                await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
                await stream.send_all(conn.send(h11.Data(data=data)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            return
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _read_request(
        self, stream: trio.SocketStream, conn: h11.Connection
    ) -> tuple[Any, bytes]:
        request = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                if not data:
                    return None, b""
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return request, body
            elif isinstance(event, h11.ConnectionClosed):
                return None, b""

    async def _route(self, request: h11.Request, body: bytes) -> tuple[int, Any, bool]:
        path = request.target.decode()
        if path.startswith("/file/bot"):
            token, _, file_path = path[len("/file/bot") :].partition("/")
            if token != self.token or file_path not in self.files:
                return 404, {"ok": False, "error_code": 404, "description": "Not Found"}, False
            return 200, self.files[file_path], False
        if not path.startswith("/bot"):
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}, False
        token, _, method = path[len("/bot") :].partition("/")
        if token != self.token:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}, False
        try:
            params = json.loads(body) if body else {}
        except ValueError:
            return (
                400,
                {"ok": False, "error_code": 400, "description": "Bad Request: invalid JSON"},
                False,
            )
        self.calls.append((method, params))
        fault = next((f for f in self.faults if f.method == method), None)
        if fault is not None:
            self.faults.remove(fault)
            if fault.when == "before":
                return (*self._fault(fault), fault.action == "reset")
        try:
            result = await self._call(method, params)
        except ApiError as exc:
            envelope: dict[str, Any] = {
                "ok": False,
                "error_code": exc.code,
                "description": exc.description,
            }
            if exc.parameters:
                envelope["parameters"] = exc.parameters
            return exc.code, envelope, False
        if fault is not None:  # after: the call did happen
            return (*self._fault(fault), fault.action == "reset")
        return 200, {"ok": True, "result": result}, False

    def _fault(self, fault: Fault) -> tuple[int, Any]:
        if fault.action == "429":
            return 429, {
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {fault.retry_after}",
                "parameters": {"retry_after": fault.retry_after},
            }
        if fault.action == "reset":
            return 0, None
        if fault.action == "parse":
            return 400, {
                "ok": False,
                "error_code": 400,
                "description": "Bad Request: can't parse entities:"
                ' Unsupported start tag "x" at byte offset 0',
            }
        code = int(fault.action)
        return code, {"ok": False, "error_code": code, "description": "Internal Server Error"}

    # -- methods --------------------------------------------------------------------------

    async def _call(self, method: str, p: dict[str, Any]) -> Any:
        handler = getattr(self, "m_" + method, None)
        if handler is None:
            raise ApiError(404, "Not Found")
        return await handler(p)

    async def m_getMe(self, p: dict) -> Any:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Argus",
            "username": self.username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
        }

    async def m_getWebhookInfo(self, p: dict) -> Any:
        return {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self.updates),
        }

    async def m_deleteWebhook(self, p: dict) -> Any:
        self.webhook_url = ""
        return True

    async def m_setMyCommands(self, p: dict) -> Any:
        self.commands = list(p.get("commands") or [])
        return True

    async def m_getUpdates(self, p: dict) -> Any:
        if self.webhook_url:
            raise ApiError(409, WEBHOOK_CONFLICT)
        offset = int(p.get("offset") or 0)
        limit = max(1, min(100, int(p.get("limit") or 100)))
        timeout = max(0, int(p.get("timeout") or 0))
        self.poll_generation += 1
        mine = self.poll_generation
        self._kick.set()  # an older poll still waiting gets its 409 now
        self._kick = trio.Event()
        if offset < 0:
            keep = self.updates[offset:]
            if keep:
                self.confirmed = keep[0]["update_id"]
            self.updates = keep
        elif offset > 0:
            self.confirmed = max(self.confirmed, offset)
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        counted = timeout > 0  # active_polls: real long polls only (not a backlog skip)
        self.active_polls += counted
        try:
            with trio.move_on_after(timeout):
                while not self.updates and self.poll_generation == mine:
                    await _first(self.changed, self._kick)
        finally:
            self.active_polls -= counted
        if self.poll_generation != mine:
            self.conflicts_sent += 1
            raise ApiError(409, CONFLICT)
        return self.updates[:limit]

    def _target(self, p: dict) -> tuple[Chat, int | None]:
        chat = self.chats.get(p.get("chat_id"))  # type: ignore[arg-type]
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        thread = p.get("message_thread_id")
        if thread is not None and (thread == 1 or thread not in chat.topics):
            raise ApiError(400, "Bad Request: message thread not found")
        return chat, thread

    def _text(self, p: dict) -> tuple[str, str | None]:
        raw = p.get("text")
        if not isinstance(raw, str) or not raw.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        visible = parse_html(raw) if p.get("parse_mode") == "HTML" else raw
        if utf16_len(visible) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        if not visible.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        return visible, raw if p.get("parse_mode") == "HTML" else None

    def _note_rate(self, chat_id: int) -> None:
        now = trio.current_time()
        times = self._chat_times.setdefault(chat_id, [])
        times.append(now)
        del times[:-100]
        recent = [t for t in times if now - t < 1.0]
        minute = [t for t in times if now - t < 60.0]
        if len(recent) > 3 or (chat_id < 0 and len(minute) > 22):
            self.rate_violations += 1

    async def m_sendMessage(self, p: dict) -> Any:
        chat, thread = self._target(p)
        visible, raw_html = self._text(p)
        self._note_rate(chat.id)
        msg = Message(
            next(self._message_ids) + 10_000,
            chat.id,
            thread,
            visible,
            raw_html,
            p.get("reply_markup"),
        )
        self.messages[msg.message_id] = msg
        self.sent.append(msg)
        if self.store_hook is not None:
            self.store_hook(msg)
        return {
            "message_id": msg.message_id,
            "date": 1,
            "chat": {"id": chat.id, "type": chat.type},
            "text": visible,
        }

    async def m_editMessageText(self, p: dict) -> Any:
        msg = self.messages.get(p.get("message_id"))  # type: ignore[arg-type]
        if msg is None or msg.chat_id != p.get("chat_id") or msg.deleted:
            raise ApiError(400, "Bad Request: message to edit not found")
        visible, raw_html = self._text(p)
        markup = p.get("reply_markup")
        if visible == msg.text and markup == msg.reply_markup:
            raise ApiError(400, NOT_MODIFIED)
        msg.text, msg.html, msg.reply_markup = visible, raw_html, markup
        msg.edits += 1
        return {"message_id": msg.message_id, "text": visible}

    async def m_deleteMessage(self, p: dict) -> Any:
        msg = self.messages.get(p.get("message_id"))  # type: ignore[arg-type]
        if msg is None or msg.deleted:
            raise ApiError(400, "Bad Request: message to delete not found")
        msg.deleted = True
        return True

    async def m_sendChatAction(self, p: dict) -> Any:
        self._target(p)
        self.actions.append(p)
        return True

    async def m_answerCallbackQuery(self, p: dict) -> Any:
        self.callback_answers.append(p)
        return True

    async def m_getFile(self, p: dict) -> Any:
        file_id = p.get("file_id")
        path = f"files/{file_id}"
        if path not in self.files:
            raise ApiError(400, "Bad Request: invalid file_id")
        return {
            "file_id": file_id,
            "file_unique_id": file_id,
            "file_size": len(self.files[path]),
            "file_path": path,
        }


async def _first(*events: trio.Event) -> None:
    """Return when any of ``events`` is set."""
    async with trio.open_nursery() as nursery:
        for event in events:

            async def wait(e: trio.Event = event) -> None:
                await e.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(wait)


def _reset(stream: trio.SocketStream) -> None:
    """Close with RST (SO_LINGER 0): the client sees a connection reset."""
    try:
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        stream.socket.close()
    except OSError:
        pass


__all__ = ["ApiError", "BotApiStandIn", "Fault", "Message", "html", "parse_html", "utf16_len"]

"""``open_session``: one Argus session over ``/ws`` that survives disconnects.

Why a library: every client of Argus (the CLI, bots, tests, scripts) needs the same four
things done right, and each is easy to get subtly wrong by hand: the handshake on every
connection, matching responses to requests, answering approvals exactly once, and resuming
with ``since`` so that no message is lost or seen twice. It is no second protocol, only a
convenience over ``/ws`` (docs/client-guide.md describes both).

Delivery guarantee: every broadcast message of the session reaches the caller once, in
sequence order, across disconnects and gateway restarts (the connection resumes with
``since=<last argusSeq>``; a repeated number is dropped). Responses to requests are not in the
replay log: a request whose connection drops before its answer raises ``RequestInterrupted``.

Bounds and overflow: each notification subscription holds at most ``buffer`` messages and
the messages received while nobody subscribed are kept for the first subscriber up to
``buffer`` too. When either is full the library stops reading the socket (backpressure):
the gateway keeps the messages in its replay log, and if the caller falls too far behind it
closes the connection (1013), after which the library resumes from the last message it
delivered. Nothing is dropped; a slow caller only gets them later.
"""

from __future__ import annotations

import itertools
import json
import logging
import ssl
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from .connection import (
    ArgusClientError,
    ConnectionLost,
    Endpoint,
    RequestInterrupted,
    RpcError,
    auth_headers,
    is_final_close,
    ssl_context,
)
from .turns import TurnResult, run_turn

log = logging.getLogger(__name__)

Message = dict[str, Any]
ApprovalHandler = Callable[[str, dict[str, Any]], Awaitable[Any]]

INIT_ID = "argus-client-initialize"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_BUFFER = 4096  # messages per subscription (and kept for the first subscriber)
ANSWERS_KEPT = 1024  # answers to approvals remembered, to resend if a disconnect ate one
BACKOFF_S = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 5.0)
CONNECT_TIMEOUT_S = 10.0
INTERNAL_ERROR = -32603


class _Call:
    """A request waiting for its response."""

    __slots__ = ("done", "error", "interrupted", "result")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.result: Any = None
        self.error: dict[str, Any] | None = None
        self.interrupted = False


class Subscription:
    """A stream of the session's messages: ``async for message in subscription``.

    Ends by raising the session's ``ConnectionLost`` when it could not reconnect.
    """

    def __init__(self, receive: trio.MemoryReceiveChannel[Message], owner: ArgusSession) -> None:
        self._receive = receive
        self._owner = owner

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            if self._owner.error is not None:
                raise self._owner.error from None
            raise StopAsyncIteration from None

    async def receive(self) -> Message:
        """The next message (raises ``ConnectionLost`` if the session ended)."""
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise ConnectionLost("the session was closed") from None


class ArgusSession:
    """A live session: ``request()``, ``notifications()``, approvals, ``run_turn()``.

    Made by ``open_session``; every attribute is read-only for callers.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        token: str | None,
        session: str | None,
        since: int | None,
        on_approval: ApprovalHandler | None,
        tls: ssl.SSLContext | None,
        reconnect_for: float,
        initialize: bool,
        client_name: str,
        buffer: int,
    ) -> None:
        self.endpoint = endpoint
        self.id = session  # None until the gateway created one for us
        self.last_seq = since or 0  # the highest argusSeq delivered to the caller
        self.server_info: dict[str, Any] | None = None  # the initialize result
        self.error: ConnectionLost | None = None
        self.reconnects = 0
        self.on_approval = on_approval
        self._token = token
        self._since = since
        self._tls = tls
        self._reconnect_for = reconnect_for
        self._initialize = initialize
        self._client_name = client_name
        self._buffer = buffer
        self._resuming = False
        self._ws: Any = None
        self._ready = trio.Event()
        self._ids = itertools.count(1)
        self._pending: dict[int, _Call] = {}
        self._subs: list[trio.MemorySendChannel[Message]] = []
        self._backlog: deque[Message] = deque()
        self._sub_added = trio.Event()
        self._asking: set[Any] = set()
        self._answers: OrderedDict[Any, Message] = OrderedDict()
        self._nursery: trio.Nursery | None = None
        self._on_ready: Callable[[], None] = lambda: None

    # -- public API --------------------------------------------------------------------

    async def request(self, method: str, params: Any = None) -> Any:
        """Send a request and return its ``result``; raises ``RpcError`` on an error answer.

        A request that could not be sent is sent again after the reconnect; one whose answer
        was lost with the connection raises ``RequestInterrupted`` (it may have run).
        """
        message = {
            "id": next(self._ids),
            "method": method,
            "params": {} if params is None else params,
        }
        call = _Call()
        try:
            await self._send_when_ready(message, call)
            await call.done.wait()
        finally:
            self._pending.pop(message["id"], None)
        if call.interrupted:
            if self.error is not None:
                raise self.error
            raise RequestInterrupted(f"connection lost before the answer to {method}")
        if call.error is not None:
            error = call.error
            raise RpcError(
                int(error.get("code", INTERNAL_ERROR)), str(error.get("message")), error.get("data")
            )
        return call.result

    async def notify(self, method: str, params: Any = None) -> None:
        """Send a notification (no answer)."""
        await self._send_when_ready({"method": method, "params": {} if params is None else params})

    async def respond(self, request_id: Any, result: Any) -> None:
        """Answer a server request (an approval) yourself, when no ``on_approval`` is set."""
        await self._send_when_ready({"id": request_id, "result": result})

    @asynccontextmanager
    async def notifications(self) -> AsyncIterator[Subscription]:
        """Every message from now on (the first subscriber also gets what came before it)."""
        backlog = list(self._backlog)
        self._backlog.clear()
        send, receive = trio.open_memory_channel[Message](max(self._buffer, len(backlog)))
        for message in backlog:
            send.send_nowait(message)
        if self.error is not None:
            send.close()
        else:
            self._subs.append(send)
            self._sub_added.set()
        try:
            yield Subscription(receive, self)
        finally:
            if send in self._subs:
                self._subs.remove(send)
            send.close()
            receive.close()

    async def start_thread(self, **params: Any) -> str:
        """``thread/start`` with ``params``; returns the new thread's id."""
        result = await self.request("thread/start", params)
        return str(result["thread"]["id"])

    async def run_turn(
        self, thread_id: str, text: str, *, on_delta: Callable[[str], None] | None = None
    ) -> TurnResult:
        """Run one turn on ``thread_id`` and return its final text and status."""
        return await run_turn(self, thread_id, text, on_delta=on_delta)

    # -- the connection ----------------------------------------------------------------

    async def _send_when_ready(self, message: Message, call: _Call | None = None) -> None:
        """Send on the current connection, waiting for one; a request's ``call`` is
        registered afresh for each attempt (an attempt that failed was never sent)."""
        text = json.dumps(message, ensure_ascii=False)
        while True:
            if self.error is not None:
                raise self.error
            await self._ready.wait()
            ws = self._ws
            if ws is None or not self._ready.is_set():
                await trio.sleep(0.05)  # between connections: the reconnect sets ``_ready``
                continue
            if call is not None:
                call.done, call.interrupted = trio.Event(), False
                self._pending[message["id"]] = call
            try:
                await ws.send_message(text)
                return
            except ConnectionClosed:
                await trio.sleep(0.05)  # not sent; the reconnect makes a new ``_ready``

    def _url(self) -> str:
        if self._resuming:
            return self.endpoint.session_url(self.id, self.last_seq)
        return self.endpoint.session_url(self.id, self._since)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, then keep reconnecting until the session ends (runs in its nursery)."""
        attempt = 0
        failing_since: float | None = None
        started = False

        def on_ready() -> None:
            nonlocal attempt, failing_since, started
            attempt, failing_since = 0, None
            if not started:
                started = True
                task_status.started()

        while True:
            code: int | None = None
            reason = ""
            try:
                await self._connection(on_ready)
            except ConnectionClosed as exc:
                code, reason = exc.reason.code, exc.reason.reason or ""
            except HandshakeError as exc:
                reason = f"upgrade refused: {exc}"
            except (OSError, trio.TooSlowError, ssl.SSLError, trio.BrokenResourceError) as exc:
                reason = str(exc) or type(exc).__name__
            self._disconnected()
            if not started:
                where = self.endpoint.http_url
                raise ConnectionLost(f"cannot connect to {where}: {reason or code}", code)
            if is_final_close(code, reason):
                self._fail(ConnectionLost(f"closed by the gateway: {code} {reason}", code))
                return
            now = trio.current_time()
            failing_since = now if failing_since is None else failing_since
            if now - failing_since > self._reconnect_for:
                message = f"gateway unreachable for {self._reconnect_for:.0f} s: {reason or code}"
                self._fail(ConnectionLost(message, code))
                return
            log.info("disconnected (%s %s), reconnecting", code, reason)
            await trio.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
            attempt += 1
            self.reconnects += 1

    async def _connection(self, on_ready: Callable[[], None]) -> None:
        """One WebSocket connection, until it raises (``ConnectionClosed`` at the latest)."""
        async with open_websocket_url(
            self._url(),
            ssl_context=self._tls,
            extra_headers=auth_headers(self._token),
            max_message_size=MAX_MESSAGE_BYTES,
            connect_timeout=CONNECT_TIMEOUT_S,
            disconnect_timeout=2,
        ) as ws:
            try:
                await self._serve_connection(ws, on_ready)
            finally:
                self._ws = None

    async def _serve_connection(self, ws: Any, on_ready: Callable[[], None]) -> None:
        with trio.fail_after(CONNECT_TIMEOUT_S):
            hello = json.loads(await ws.get_message())
        params = hello.get("params") or {}
        self.id = params.get("id", self.id)
        head = params.get("seq")
        if self._resuming and isinstance(head, int) and head < self.last_seq:
            # A gateway that lost its log (no bridge kept the runtime): say so, go on.
            reset = {"lastSeq": self.last_seq, "seq": head}
            self.last_seq = head
            await self._deliver({"method": "argus/client/reset", "params": reset})
        self._resuming = True
        self._ws = ws
        self._on_ready = on_ready
        if self._initialize:
            init = {"clientInfo": {"name": self._client_name, "title": None, "version": "1"}}
            await ws.send_message(
                json.dumps({"id": INIT_ID, "method": "initialize", "params": init})
            )
        else:
            self._ready.set()
            on_ready()
        while True:
            await self._on_text(await ws.get_message(), ws)

    def _disconnected(self) -> None:
        self._ws = None
        if self._ready.is_set():
            self._ready = trio.Event()
        for call in self._pending.values():
            call.interrupted = True
            call.done.set()
        self._pending.clear()

    def _fail(self, error: ConnectionLost) -> None:
        self.error = error
        self._ready.set()  # waiters wake up and see the error
        for send in self._subs:
            send.close()
        self._subs.clear()
        self._sub_added.set()

    # -- incoming ----------------------------------------------------------------------

    async def _on_text(self, text: str, ws: Any) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            log.warning("dropping a frame that is not JSON: %.200s", text)
            return
        if not isinstance(message, dict):
            return
        if "method" not in message:
            await self._on_response(message, ws)
            return
        seq = message.get("argusSeq")
        if "id" in message:
            await self._on_server_request(message, seq)
            return
        if isinstance(seq, int):
            if seq <= self.last_seq:
                return  # already delivered before a reconnect
            self.last_seq = seq
        await self._deliver(message)

    async def _on_response(self, message: Message, ws: Any) -> None:
        req_id = message.get("id")
        if req_id == INIT_ID:
            result = message.get("result")
            self.server_info = result if isinstance(result, dict) else None
            if self.server_info is None:
                log.warning("initialize failed: %s", message.get("error"))
            await ws.send_message(json.dumps({"method": "initialized"}))
            self._ready.set()
            self._on_ready()
            return
        call = self._pending.get(req_id) if isinstance(req_id, int) else None
        if call is None:
            return
        error = message.get("error")
        if isinstance(error, dict):
            call.error = error
        else:
            call.result = message.get("result")
        call.done.set()

    async def _on_server_request(self, message: Message, seq: Any) -> None:
        """An approval: answered once by ``on_approval``; resent if the answer was lost."""
        key = seq if isinstance(seq, int) else json.dumps(message["id"])
        if key in self._answers:
            await self._send_quietly(self._answers[key])
            return
        if key in self._asking:
            return
        if isinstance(seq, int):
            if seq <= self.last_seq:
                return  # seen before the reconnect (someone else may answer it)
            self.last_seq = seq
        if self.on_approval is not None and self._nursery is not None:
            self._asking.add(key)
            self._nursery.start_soon(self._answer, key, message)
        await self._deliver(message)

    async def _answer(self, key: Any, message: Message) -> None:
        assert self.on_approval is not None
        params = message.get("params")
        try:
            result = await self.on_approval(
                str(message["method"]), params if isinstance(params, dict) else {}
            )
            reply: Message = {"id": message["id"], "result": result}
        except Exception as exc:  # the handler's failure is the runtime's answer, not ours
            reply = {"id": message["id"], "error": {"code": INTERNAL_ERROR, "message": str(exc)}}
        self._answers[key] = reply
        while len(self._answers) > ANSWERS_KEPT:
            self._answers.popitem(last=False)
        self._asking.discard(key)
        await self._send_quietly(reply)

    async def _send_quietly(self, message: Message) -> None:
        ws = self._ws
        if ws is None:
            return  # resent when the gateway delivers the still-pending request again
        try:
            await ws.send_message(json.dumps(message))
        except ConnectionClosed:
            pass

    async def _deliver(self, message: Message) -> None:
        """To every subscriber (waiting while one is full), or into the first one's backlog."""
        while not self._subs and len(self._backlog) >= self._buffer and self.error is None:
            self._sub_added = trio.Event()
            await self._sub_added.wait()
        if not self._subs:
            self._backlog.append(message)
            return
        for send in list(self._subs):
            try:
                await send.send(message)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                if send in self._subs:
                    self._subs.remove(send)


@asynccontextmanager
async def open_session(
    url: str,
    *,
    token: str | None = None,
    session: str | None = None,
    since: int | None = None,
    on_approval: ApprovalHandler | None = None,
    cafile: str | None = None,
    tls: ssl.SSLContext | None = None,
    reconnect_for: float = 120.0,
    initialize: bool = True,
    client_name: str = "argus-client",
    buffer: int = DEFAULT_BUFFER,
) -> AsyncIterator[ArgusSession]:
    """Attach to a session of the gateway at ``url`` and keep it attached.

    ``session``: an id, ``"default"``, or None to create a new session. ``since``: resume
    after this sequence number (else start live). ``on_approval(method, params)`` returns
    the ``result`` of a server request (``{"decision": "accept"}``); without it, server
    requests appear on ``notifications()`` and ``respond()`` answers them. ``cafile`` (or a
    ready ``tls`` context) is what to trust for a ``wss://`` gateway with its own
    certificate. The first connection failing raises ``ConnectionLost``; later drops are
    repaired for up to ``reconnect_for`` seconds of continuous failure.
    """
    endpoint = Endpoint.parse(url)
    if buffer < 1:
        raise ArgusClientError("buffer must be at least 1")
    if tls is None and endpoint.secure:
        tls = await trio.to_thread.run_sync(ssl_context, cafile)
    client = ArgusSession(
        endpoint,
        token=token,
        session=session,
        since=since,
        on_approval=on_approval,
        tls=tls,
        reconnect_for=reconnect_for,
        initialize=initialize,
        client_name=client_name,
        buffer=buffer,
    )
    failed: ConnectionLost | None = None
    try:
        async with trio.open_nursery() as nursery:
            client._nursery = nursery
            try:
                await nursery.start(client.run)
            except ConnectionLost as exc:
                failed = exc
                nursery.cancel_scope.cancel()
            if failed is None:
                try:
                    yield client
                finally:
                    nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The caller's own exception, not a group made by our background task.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    if failed is not None:
        raise failed

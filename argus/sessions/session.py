"""A session: one runtime shared by any number of clients and by the daemon itself.

The session's nursery owns its runtime stream (the reader task, inside the provisioner's
context; clients write to the runtime from their own tasks) and the sender task of every
attached client that has something to receive. Stopping the session
cancels that nursery and everything goes with it. A client leaving only removes its
subscriber: the runtime and any running turn carry on.

Routing, in short (docs/architecture.md has the full picture):

* runtime notifications are sequenced into the replay log and broadcast;
* runtime responses go to the client that asked, with its own id restored;
* runtime requests (approvals) go to the turn's owner, else the request handler, else any
  client; they stay pending until answered or resolved, and every client that attaches
  while they are pending gets them too;
* client requests get ids unique per runtime connection (``connection.UpstreamIds``: an
  earlier gateway's ids never repeat); ``initialize``/``initialized`` go through the
  connection's handshake machine, which the daemon's own calls share.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import trio

from ..boundary import contained
from ..config import Settings
from ..protocol import messages as m
from ..protocol.framing import LineSplitter, OversizedLine
from ..protocol.handshake import Decision
from ..provision.base import ExitStatus, Provisioner, ProvisionError, Runtime
from . import numbered
from .approvals import ApprovalRouting
from .connection import HandshakeWaiter, Inflight, RuntimeConnection
from .hooks import NO_HOOKS, GatewayMethodError, SessionHooks
from .internal_calls import RuntimeCallError, call_runtime
from .replay import Entry, ReplayBuffer
from .subscriber import SendText, Subscriber, cut_off_laggards

log = logging.getLogger(__name__)

READ_CHUNK = 128 * 1024
NOISE_LOG_LIMIT = 50  # non-JSON stdout lines logged per runtime before going quiet


class SessionGone(Exception):
    """The session was stopped while the caller was using it."""


def now_ms() -> int:
    """Wall-clock milliseconds, for the timestamps clients see."""
    return int(time.time() * 1000)


class Session(ApprovalRouting):
    """One session: runtime lifecycle, replay log, subscribers and message routing."""

    def __init__(
        self,
        session_id: str,
        provisioner: Provisioner,
        settings: Settings,
        *,
        created: bool,
        hooks: SessionHooks = NO_HOOKS,
    ) -> None:
        self.id = session_id
        self.hooks = hooks
        self.runtime_generation = 0
        self.mode = provisioner.mode
        self.settings = settings
        self.created = created
        self.created_at_ms = now_ms()
        self.last_active_ms = self.created_at_ms
        self.replay = ReplayBuffer(settings.replay_buffer_bytes)
        self.subscribers: dict[int, Subscriber] = {}
        self.request_handler: int | None = None
        self.runtime_info: dict[str, Any] = {}
        self._provisioner = provisioner
        self._conn: RuntimeConnection | None = None
        self._run_lock = trio.Lock()
        self._nursery: trio.Nursery | None = None
        self._stop_requested = trio.Event()
        self.finished = trio.Event()
        self._stopping = False
        self._unattended_from: int | None = None
        self._noise_logged = 0
        self._runtime_scope: trio.CancelScope | None = None
        self._idle_stop = False
        self._catching_up = False  # reading an adopted runtime's backlog (under _run_lock)
        self.bridge_instance: str | None = None  # the bridge this log's numbers come from
        self.bridge_base = 0

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``running`` while a runtime process is connected, else ``stopped``."""
        return "running" if self._conn is not None else "stopped"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the session's nursery until ``stop()``; runs in the manager's nursery."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await self._stop_requested.wait()
                nursery.cancel_scope.cancel()
        except Exception:
            # Boundary: whatever fails inside this session ends this session only.
            log.exception("session failed session=%s; it is stopped", self.id)
            self._stopping = True
        finally:
            self._conn = None
            self.finished.set()

    def stop(
        self, code: int = 1001, reason: str = "Session stopped", *, keep_runtime: bool = False
    ) -> None:
        """Close every client with ``code`` and stop the runtime (asynchronously).

        ``keep_runtime`` (gateway shutdown) leaves a bridged runtime running for the next
        gateway to adopt; a plain child process stops either way.
        """
        self._stopping = True
        if keep_runtime and self._conn is not None:
            self._conn.runtime.stop_on_close = False  # type: ignore[attr-defined]
        for sub in list(self.subscribers.values()):
            sub.request_close(code, reason, drain=False)
        self._stop_requested.set()

    async def ensure_running(self) -> None:
        """Start the runtime unless it runs; concurrent callers share one start.

        A caller also waits while an adopted runtime's backlog is being read: requests
        sent then would race the replayed lines, and the lanes are not up to date yet.
        """
        if self._conn is not None and not self._catching_up:
            return
        async with self._run_lock:
            if self._conn is not None and not self._catching_up:
                return
            if self._stopping or self._nursery is None:
                raise SessionGone(self.id)
            await self._nursery.start(self._run_runtime)

    def stop_runtime(self) -> None:
        """Stop the runtime but keep the session (idle reaper); the next attach restarts it."""
        if self._runtime_scope is not None:
            self._idle_stop = True
            self._runtime_scope.cancel()

    async def _run_runtime(self, *, task_status: trio.TaskStatus[None]) -> None:
        self._runtime_scope = trio.CancelScope()
        self._idle_stop = False
        try:
            with self._runtime_scope:
                await self._open_and_read(task_status)
        finally:
            self._runtime_scope = None

    async def _open_and_read(self, task_status: trio.TaskStatus[None]) -> None:
        status: ExitStatus | None = None
        conn: RuntimeConnection | None = None
        try:
            async with self._provisioner.open_runtime(self.id) as runtime:
                conn = RuntimeConnection(runtime)
                backlog = await numbered.adopt(self, runtime, conn) if conn.numbered else 0
                self.runtime_info = dict(runtime.info)
                self._conn = conn
                self._noise_logged = 0
                self.runtime_generation += 1
                self.hooks.on_runtime_started(self)
                splitter = LineSplitter(self.settings.jsonl_line_limit_bytes)
                if backlog > self.replay.last_seq:
                    self._catching_up = True
                    try:
                        await self._read_runtime(runtime, conn, splitter, until=backlog)
                    finally:
                        self._catching_up = False
                task_status.started()
                try:
                    await self._read_runtime(runtime, conn, splitter)
                except Exception:  # boundary: a routing bug ends this session, reported as such
                    log.exception(
                        "session failed session=%s: error routing runtime output", self.id
                    )
                    self.stop(1011, "Session failed: internal error (see the daemon log)")
                    return
                with trio.move_on_after(self.settings.stop_timeout_s):
                    status = await runtime.wait_exit()
        finally:
            if conn is not None:
                conn.closed = True
                if self._conn is conn:
                    self._on_runtime_exit(conn, status)

    async def _read_runtime(
        self,
        runtime: Runtime,
        conn: RuntimeConnection,
        splitter: LineSplitter,
        until: int | None = None,
    ) -> None:
        """Route runtime output until EOF (or, catching up, until ``seq`` reaches ``until``)."""
        while until is None or self.replay.last_seq < until:
            data = await runtime.receive_some(READ_CHUNK)
            # Judge lag before this chunk lands: a client is too slow when it has not
            # taken what was there before, not because one chunk arrived at once.
            cut_off_laggards(self.subscribers.values(), self.settings.client_queue_bytes, self.id)
            lines = splitter.feed(data) if data else splitter.close()
            for line in lines:
                before = self.replay.last_seq
                self._handle_runtime_line(conn, line)
                if conn.numbered and self.replay.last_seq == before:
                    self.replay.append("", directed=True)  # keep seq = base + line number
            self._after_batch()
            if not data:
                return

    def _on_runtime_exit(self, conn: RuntimeConnection, status: ExitStatus | None) -> None:
        self._conn = None
        self.hooks.on_runtime_exit(self)
        if self._stopping or self._idle_stop:
            return
        status = status or ExitStatus(code=None, signal=None, stderr_tail="")
        log.warning(
            "runtime exited session=%s code=%s signal=%s", self.id, status.code, status.signal
        )
        error = {"code": m.RUNTIME_EXITED, "message": "Runtime exited before responding"}
        after = self.replay.last_seq
        for inflight in conn.inflight.values():
            if inflight.call is not None:
                inflight.call.resolve(error=error)
                continue
            sub = self.subscribers.get(inflight.subscriber_key)  # type: ignore[arg-type]
            if sub is not None:
                sub.push(m.error_response(inflight.original_id, **error), after)
        self._fail_waiters(conn.handshake.on_error(), error)
        conn.inflight.clear()
        conn.pending_server.clear()
        params = {"code": status.code, "signal": status.signal, "stderrTail": status.stderr_tail}
        self._broadcast(m.notification("argus/runtime/exited", params))
        self._after_batch()
        for sub in list(self.subscribers.values()):
            sub.request_close(1011, "Runtime exited", drain=True)

    # -- runtime -> clients ------------------------------------------------------------

    def _broadcast(self, text: str, key: Any = None, delta: str | None = None) -> Entry:
        entry = self.replay.append(text, key, delta)
        if not self.subscribers and self._unattended_from is None:
            self._unattended_from = entry.seq
        return entry

    def _after_batch(self) -> None:
        """Wake every sender once per read chunk (not once per line)."""
        self.last_active_ms = now_ms()
        for sub in self.subscribers.values():
            sub.wake()

    def _handle_runtime_line(self, conn: RuntimeConnection, line: bytes | OversizedLine) -> None:
        if isinstance(line, OversizedLine):
            limit = self.settings.jsonl_line_limit_bytes
            log.warning(
                "runtime line over %s bytes dropped session=%s size=%s", limit, self.id, line.size
            )
            message = (
                f"A runtime output line of {line.size} bytes exceeded the limit and was dropped"
            )
            params = {"code": "line_too_long", "message": message, "bytes": line.size}
            self._broadcast(m.notification("argus/warning", params))
            return
        text = line.decode("utf-8", "replace")
        obj = m.parse_fast(text)
        if type(obj) is not dict:
            self._log_noise(text)
            return
        method = obj.get("method")
        if "id" not in obj:
            if type(method) is not str:
                self._log_noise(text)
                return
            params = obj.get("params")
            if method in m.DELTA_METHODS:
                key = m.delta_key(method, params)
                if key is not None:
                    self._broadcast(text, key, params["delta"])  # type: ignore[index]
                    self.hooks.on_notification(self, method, params)  # type: ignore[arg-type]
                    return
            self._broadcast(text)
            if type(params) is dict:
                self._track_notification(conn, method, params)
                self.hooks.on_notification(self, method, params)
        elif type(method) is str:
            self._on_server_request(conn, obj, text)
        elif "method" not in obj:
            self._on_response(conn, obj, text)
        else:
            self._log_noise(text)

    def _log_noise(self, text: str) -> None:
        if not text.strip():
            return
        self._noise_logged += 1
        if self._noise_logged <= NOISE_LOG_LIMIT:
            log.info("dropping non-JSON runtime output session=%s: %.200s", self.id, text)
        elif self._noise_logged == NOISE_LOG_LIMIT + 1:
            log.info("further non-JSON runtime output not logged session=%s", self.id)

    def _track_notification(self, conn: RuntimeConnection, method: str, params: dict) -> None:
        if method == "turn/completed":
            thread_id = params.get("threadId")
            if isinstance(thread_id, str):
                conn.turn_owners.pop(thread_id, None)
            turn = params.get("turn")
            turn_id = turn.get("id") if isinstance(turn, dict) else None
            if turn_id is not None:
                stale = [k for k, p in conn.pending_server.items() if p.turn_id == turn_id]
                for key in stale:
                    del conn.pending_server[key]
        elif method == "serverRequest/resolved":
            conn.pending_server.pop(m.id_key(params.get("requestId")), None)

    def _on_response(self, conn: RuntimeConnection, obj: dict, text: str) -> None:
        upstream_id = obj["id"]
        inflight = conn.inflight.pop(upstream_id, None) if type(upstream_id) is int else None
        if inflight is None:
            # An id of an earlier epoch: the answer to a previous gateway's request, which a
            # bridge replays or forwards after a restart. Never anyone's answer here.
            earlier = type(upstream_id) is int and not conn.ids.owns(upstream_id)
            why = "from an earlier connection" if earlier else "with unknown id"
            log.debug("dropping response %s session=%s id=%r", why, self.id, upstream_id)
            return
        if upstream_id == conn.initialize_id:
            self._on_initialize_response(conn, inflight, obj, text)
            return
        if inflight.call is not None:
            inflight.call.resolve(obj.get("result"), obj.get("error"))
            return
        if inflight.thread_id is not None and "error" in obj:
            self.hooks.on_client_turn_refused(self, inflight.thread_id)
        sub = self.subscribers.get(inflight.subscriber_key)  # type: ignore[arg-type]
        if sub is not None:
            sub.push(m.restore_id(text, upstream_id, inflight.original_id), self.replay.last_seq)

    def _on_initialize_response(
        self, conn: RuntimeConnection, inflight: Inflight, obj: dict, text: str
    ) -> None:
        conn.initialize_id = None
        result = obj.get("result")
        after = self.replay.last_seq
        if isinstance(result, dict):
            waiters = conn.handshake.on_result(result)
            for waiter in waiters:
                if waiter.call is not None:
                    waiter.call.resolve(result)
                elif (sub := self.subscribers.get(waiter.subscriber_key)) is not None:  # type: ignore[arg-type]
                    sub.push(m.result_response(waiter.original_id, result), after)
        else:
            error = obj.get("error")
            if not isinstance(error, dict):
                error = {"code": m.INTERNAL_ERROR, "message": "initialize failed"}
            self._fail_waiters(conn.handshake.on_error(), error)
        if inflight.call is not None:
            inflight.call.resolve(result, obj.get("error"))
        elif (sub := self.subscribers.get(inflight.subscriber_key)) is not None:  # type: ignore[arg-type]
            sub.push(m.restore_id(text, obj["id"], inflight.original_id), after)

    def _fail_waiters(self, waiters: list[HandshakeWaiter], error: dict[str, Any]) -> None:
        after = self.replay.last_seq
        for waiter in waiters:
            if waiter.call is not None:
                waiter.call.resolve(error=error)
            elif (sub := self.subscribers.get(waiter.subscriber_key)) is not None:  # type: ignore[arg-type]
                code = error.get("code", m.INTERNAL_ERROR)
                sub.push(
                    m.error_response(waiter.original_id, code, str(error.get("message"))), after
                )

    # -- clients -----------------------------------------------------------------------

    def attach(
        self,
        send_text: SendText,
        *,
        since: int | None,
        with_seq: bool,
        coalesce: bool,
        label: str = "",
    ) -> tuple[Subscriber, int]:
        """Register a client; returns it and the ``seq`` for its ``argus/session`` frame.

        Without ``since`` the client starts at the head of the log, except that messages
        broadcast while no client was attached are delivered to it first (the original's
        outbox). With ``since`` it resumes after that number; if some of those messages
        were evicted it first gets ``argus/replay/gap``.
        """
        if self._stopping:
            raise SessionGone(self.id)
        replay = self.replay
        head = replay.last_seq
        if since is not None:
            cursor = min(max(since, 0), head)
        elif self._unattended_from is not None and not self.subscribers:
            cursor = self._unattended_from - 1
        else:
            cursor = head
        self._unattended_from = None
        sub = Subscriber(
            replay,
            send_text,
            cursor=max(cursor, replay.first_seq - 1),
            with_seq=with_seq or since is not None,
            coalesce=coalesce and self.settings.coalesce_deltas,
            label=label,
        )
        if cursor < replay.first_seq - 1:
            gap = {"from": cursor + 1, "to": replay.first_seq - 1}
            sub.push(m.notification("argus/replay/gap", gap), sub.cursor)
        self.subscribers[sub.key] = sub
        if self.request_handler not in self.subscribers:
            self.request_handler = sub.key
        if self._conn is not None:
            for pending in self._conn.pending_server.values():
                self._deliver_pending(sub, pending)
        self.last_active_ms = now_ms()
        return sub, head

    def start_sender(self, sub: Subscriber) -> None:
        """Start the client's sender task in the session's nursery."""
        if self._nursery is None or self._stopping:
            raise SessionGone(self.id)
        sub.start_in(self._nursery)

    def detach(self, sub: Subscriber) -> None:
        """Forget a client; the runtime, its turns and its other clients carry on."""
        if self.subscribers.pop(sub.key, None) is None:
            return
        if not self.subscribers:
            # What this last client was not sent yet goes to the next one (the outbox).
            unsent = sub.cursor + 1
            if self._unattended_from is None or unsent < self._unattended_from:
                self._unattended_from = unsent
        sub.request_close(sub.close_code or 1000, sub.close_reason, drain=False)
        if self.request_handler == sub.key:
            self.request_handler = next(iter(self.subscribers), None)
        conn = self._conn
        if conn is None:
            return
        conn.forget_subscriber(sub.key)
        for pending in conn.pending_server.values():
            pending.delivered_to.discard(sub.key)
            if not any(k in self.subscribers for k in pending.delivered_to):
                self._route_server_request(conn, pending)

    async def handle_client_text(self, sub: Subscriber, text: str) -> None:
        """Route one text frame from a client (one JSON message)."""
        self.last_active_ms = now_ms()
        obj = m.parse(text)
        problem = m.frame_problem(text, obj)
        if problem is not None:
            self._reply(sub, problem)
            return
        method = obj.get("method")
        has_id = "id" in obj
        if method is not None and method.startswith("argus/"):
            await self._handle_gateway_method(sub, obj)
            return
        conn = self._conn
        if conn is None:
            if has_id and method is not None:
                message = "Runtime is not running"
                self._reply(sub, m.error_response(obj["id"], m.RUNTIME_EXITED, message))
            return
        if method is None:
            if not has_id:
                message = "Invalid request: a message needs 'method' or 'id'"
                self._reply(sub, m.error_response(None, m.INVALID_REQUEST, message))
                return
            # A client's answer to a server request: the first answer wins.
            if conn.pending_server.pop(m.id_key(obj["id"]), None) is None:
                log.debug("dropping answer to unknown/answered request session=%s", self.id)
                return
            await self._send_line(conn, m.compact(text, obj))
            return
        if not has_id:
            if method == "initialized" and not conn.handshake.on_initialized():
                return
            await self._send_line(conn, m.compact(text, obj))
            return
        if method == "initialize":
            await self._client_initialize(sub, conn, obj)
            return
        if len(conn.inflight) >= self.settings.max_inflight_requests:
            message = "Too many requests in flight for this session"
            self._reply(sub, m.error_response(obj["id"], m.TOO_MANY_REQUESTS, message))
            return
        upstream_id = conn.next_upstream_id()
        inflight = conn.inflight[upstream_id] = Inflight(sub.key, obj["id"], method)
        if method == "turn/start":
            params = obj.get("params")
            thread_id = params.get("threadId") if isinstance(params, dict) else None
            if isinstance(thread_id, str) and thread_id.strip():
                conn.turn_owners[thread_id] = sub.key
                self.request_handler = sub.key
                inflight.thread_id = thread_id
                self.hooks.on_client_turn_start(self, thread_id)
        obj["id"] = upstream_id
        await self._send_line(conn, m.dumps(obj))

    async def _client_initialize(self, sub: Subscriber, conn: RuntimeConnection, obj: dict) -> None:
        decision = conn.handshake.on_initialize(HandshakeWaiter(sub.key, obj["id"]))
        if decision is Decision.REPLY_CACHED:
            self._reply(sub, m.result_response(obj["id"], conn.handshake.result))
        elif decision is Decision.FORWARD:
            upstream_id = conn.next_upstream_id()
            conn.initialize_id = upstream_id
            conn.inflight[upstream_id] = Inflight(sub.key, obj["id"], "initialize")
            obj["id"] = upstream_id
            await self._send_line(conn, m.dumps(obj))

    def _reply(self, sub: Subscriber, text: str) -> None:
        """A gateway-made reply for one client, delivered ahead of its backlog."""
        sub.push(text, sub.cursor)

    async def _send_line(self, conn: RuntimeConnection, text: str) -> None:
        if not await conn.write(text.encode() + b"\n"):
            log.debug("runtime gone, frame dropped session=%s", self.id)

    async def _handle_gateway_method(self, sub: Subscriber, obj: dict) -> None:
        """``argus/*`` methods are the gateway's own; none is forwarded to the runtime.

        They are awaited inline, so one client's gateway calls are answered in order; a
        call without an id runs all the same and its outcome is not sent (the original).
        """
        req_id = obj.get("id")
        params = obj.get("params")
        try:
            result = await self.hooks.call_gateway_method(
                self, obj["method"], params if isinstance(params, dict) else {}
            )
        except GatewayMethodError as exc:
            if req_id is not None:
                self._reply(sub, m.error_response(req_id, exc.code, exc.message))
            return
        except RuntimeCallError as exc:
            if req_id is not None:
                code, message = exc.error.get("code"), exc.error.get("message")
                code = code if type(code) is int else m.GATEWAY_ERROR
                self._reply(sub, m.error_response(req_id, code, str(message or "Runtime error")))
            return
        if req_id is not None:
            self._reply(sub, m.result_response(req_id, result))

    def note(self, method: str, params: dict[str, Any]) -> None:
        """Broadcast a gateway-made notification to every client.

        With a bridged runtime the bridge numbers it into the runtime's stream (it comes
        back as a line), so it keeps its number across a gateway restart too.
        """
        text = m.notification(method, params)
        conn = self._conn
        if conn is not None and conn.numbered and not conn.closed and self._nursery:
            send_note = contained(conn.runtime.send_note, f"note to the bridge session={self.id}")  # type: ignore[attr-defined]
            self._nursery.start_soon(send_note, text.encode())
            return
        self._broadcast(text)
        self._after_batch()

    async def call(self, method: str, params: Any, *, timeout: float = 120.0) -> Any:
        """Make a request to the runtime as the gateway itself (automation uses this)."""
        await self.ensure_running()
        conn = self._conn
        if conn is None:
            raise RuntimeCallError({"code": m.RUNTIME_EXITED, "message": "Runtime exited"})
        return await call_runtime(conn, self._send_line, method, params, timeout)

    def workspace_path(self) -> Path | None:
        """The session's workspace as the gateway sees it (for project context files)."""
        return self._provisioner.workspace(self.id)[0]

    def workspace_cwd(self) -> str | None:
        """The session's workspace as its runtime sees it (``cwd`` of daemon threads)."""
        return self._provisioner.workspace(self.id)[1]

    # -- reporting ---------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The ``GET /sessions`` entry."""
        info: dict[str, Any] = {
            "sessionId": self.id,
            "mode": self.mode,
            "state": self.state,
            "createdAtMs": self.created_at_ms,
            "lastActiveAtMs": self.last_active_ms,
            "clients": len(self.subscribers),
            "seq": self.replay.last_seq,
        }
        info.update(self.runtime_info)
        return info


__all__ = ["ProvisionError", "RuntimeCallError", "Session", "SessionGone"]

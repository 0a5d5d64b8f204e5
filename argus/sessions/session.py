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
* client requests get ids unique per runtime connection (``protocol.requests``: an
  earlier gateway's ids never repeat); ``initialize``/``initialized`` go through the
  connection's handshake machine, which the daemon's own calls share.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import trio

from ..boundary import contained
from ..config import Settings
from ..procs import now_ms
from ..protocol import codes
from ..protocol import messages as m
from ..protocol.framing import OversizedLine
from ..protocol.handshake import Decision
from ..protocol.messages import Kind
from ..provision.base import ExitStatus, Provisioner, ProvisionError, Runtime
from . import numbered
from .answers import AnswerRouting
from .approvals import ApprovalRouting
from .connection import HandshakeWaiter, RuntimeConnection
from .hooks import NO_HOOKS, GatewayMethodError, SessionHooks
from .internal_calls import BeforeSend, RuntimeCallError, call_runtime
from .replay import Entry, ReplayBuffer
from .subscriber import SendText, Subscriber, cut_off_laggards

log = logging.getLogger(__name__)

NOTIFICATION, REQUEST, RESPONSE = Kind.NOTIFICATION, Kind.REQUEST, Kind.RESPONSE
NOISE_LOG_LIMIT = 50  # non-JSON stdout lines logged per runtime before going quiet


class SessionGone(Exception):
    """The session was stopped while the caller was using it."""


class Session(ApprovalRouting, AnswerRouting):
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
        # Subscribers with something to send: the only ones lag is checked on (issue 14).
        self.active: set[Subscriber] = set()
        self._broadcast_unwoken = False  # a broadcast since subscribers were last woken
        self.request_handler: int | None = None
        self.awaiting_initialize: set[int] = set()
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

    @property
    def bridged(self) -> bool:
        """Whether the connected runtime is reached through a bridge (it outlives us)."""
        return self._conn is not None and self._conn.numbered is not None

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
        self,
        code: int = codes.CLOSE_GOING_AWAY,
        reason: str = "Session stopped",
        *,
        keep_runtime: bool = False,
    ) -> None:
        """Close every client with ``code`` and stop the runtime (asynchronously).

        ``keep_runtime`` (gateway shutdown) leaves a bridged runtime running for the next
        gateway to adopt; a plain child process stops either way.
        """
        self._stopping = True
        if keep_runtime and self._conn is not None:
            self._conn.runtime.keep_running_on_close()
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
                conn = RuntimeConnection(runtime, self.settings.max_inflight_requests)
                bridged = conn.numbered
                backlog = await numbered.adopt(self, bridged, conn) if bridged else 0
                self.runtime_info = dict(runtime.info)
                self._conn = conn
                self._noise_logged = 0
                self.runtime_generation += 1
                self.hooks.on_runtime_started(self)
                if backlog > self.replay.last_seq:
                    self._catching_up = True
                    try:
                        await self._read_runtime(runtime, conn, until=backlog)
                    finally:
                        self._catching_up = False
                self.hooks.on_runtime_caught_up(self)
                task_status.started()
                try:
                    await self._read_runtime(runtime, conn)
                except Exception:  # boundary: a routing bug ends this session, reported as such
                    log.exception(
                        "session failed session=%s: error routing runtime output", self.id
                    )
                    self.stop(
                        codes.CLOSE_INTERNAL_ERROR,
                        "Session failed: internal error (see the daemon log)",
                    )
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
        until: int | None = None,
    ) -> None:
        """Route runtime output until EOF (or, catching up, until ``seq`` reaches ``until``)."""
        line_limit = self.settings.jsonl_line_limit_bytes
        while until is None or self.replay.last_seq < until:
            lines = await runtime.receive_lines(line_limit)
            # Judge lag before this batch lands: a client is too slow when it has not
            # taken what was there before, not because one batch arrived at once.
            if self.active:
                cut_off_laggards(self.active, self.settings.client_queue_bytes, self.id)
            for line in lines:
                before = self.replay.last_seq
                self._handle_runtime_line(conn, line)
                if conn.numbered and self.replay.last_seq == before:
                    self.replay.append("", directed=True)  # keep seq = base + line number
            self._after_batch()
            if not lines:
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
        error = {"code": codes.RUNTIME_EXITED, "message": "Runtime exited before responding"}
        after = self.replay.last_seq
        for pending in conn.requests.drain():
            self._answer(pending.waiter, pending.original_id, after, error=error)
        self._fail_waiters(conn.handshake.on_error(), error)
        conn.pending_server.clear()
        params = {"code": status.code, "signal": status.signal, "stderrTail": status.stderr_tail}
        self._broadcast(m.notification("argus/runtime/exited", params))
        self._after_batch()
        for sub in list(self.subscribers.values()):
            sub.request_close(codes.CLOSE_INTERNAL_ERROR, "Runtime exited", drain=True)

    # -- runtime -> clients ------------------------------------------------------------

    def _broadcast(self, text: str, key: Any = None, delta: str | None = None) -> Entry:
        entry = self.replay.append(text, key, delta)
        self._broadcast_unwoken = True
        if not self.subscribers and self._unattended_from is None:
            self._unattended_from = entry.seq
        return entry

    def _after_batch(self) -> None:
        """After a read chunk: wake every sender once if it held a broadcast.

        A chunk of responses only (or a bridge's directed placeholders) wakes nobody here:
        each response woke its own client when it was pushed. Waking everyone is only
        done for output everyone must be sent, so an idle client costs nothing otherwise.
        """
        self.last_active_ms = now_ms()
        if self._broadcast_unwoken:
            self._broadcast_unwoken = False
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
        kind = m.classify(obj)
        if kind is NOTIFICATION:
            method = obj["method"]
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
        elif kind is REQUEST:
            self._on_server_request(conn, obj, text)
        elif kind is RESPONSE:
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

    # -- clients -----------------------------------------------------------------------

    def attach(
        self,
        send_text: SendText,
        *,
        since: int | None,
        with_seq: bool,
        coalesce: bool,
        label: str = "",
        live: bool = False,
        requests_after_initialize: bool = False,
    ) -> tuple[Subscriber, int]:
        """Register a client; returns it and the ``seq`` for its ``argus/session`` frame.

        Without ``since`` the client starts at the head of the log, except that messages
        broadcast while no client was attached are delivered to it first (the original's
        outbox). With ``since`` it resumes after that number; if some of those messages
        were evicted it first gets ``argus/replay/gap``. ``live`` starts at the head with
        no outbox (codex remote clients recover with ``thread/resume``, not a replay).
        ``requests_after_initialize`` holds server requests back until the client's
        ``initialize`` was answered.
        """
        if self._stopping:
            raise SessionGone(self.id)
        replay = self.replay
        head = replay.last_seq
        if since is not None:
            cursor = min(max(since, 0), head)
        elif live:
            cursor = head
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
            active=self.active,
        )
        if cursor < replay.first_seq - 1:
            gap = {"from": cursor + 1, "to": replay.first_seq - 1}
            sub.push(m.notification("argus/replay/gap", gap), sub.cursor)
        self.subscribers[sub.key] = sub
        if requests_after_initialize:
            self.awaiting_initialize.add(sub.key)
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
        self.awaiting_initialize.discard(sub.key)
        if not self.subscribers:
            # What this last client was not sent yet goes to the next one (the outbox).
            unsent = sub.cursor + 1
            if self._unattended_from is None or unsent < self._unattended_from:
                self._unattended_from = unsent
        sub.request_close(sub.close_code or codes.CLOSE_NORMAL, sub.close_reason, drain=False)
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
                self._reply(sub, m.error_response(obj["id"], codes.RUNTIME_EXITED, message))
            return
        if method is None:
            if not has_id:
                message = "Invalid request: a message needs 'method' or 'id'"
                self._reply(sub, m.error_response(None, codes.INVALID_REQUEST, message))
                return
            # A client's answer to a server request: the first answer wins.
            if conn.pending_server.pop(m.id_key(obj["id"]), None) is None:
                log.debug("dropping answer to unknown/answered request session=%s", self.id)
                return
            await self._send_line(conn, m.compact(text, obj))
            self.hooks.on_server_answer(self, obj["id"], obj.get("result"))
            return
        if not has_id:
            if method == "initialized" and not conn.handshake.on_initialized():
                return
            await self._send_line(conn, m.compact(text, obj))
            return
        if method == "initialize":
            await self._client_initialize(sub, conn, obj)
            return
        if conn.requests.full:
            message = "Too many requests in flight for this session"
            self._reply(sub, m.error_response(obj["id"], codes.TOO_MANY_REQUESTS, message))
            return
        turn_thread: str | None = None
        if method == "turn/start":
            params = obj.get("params")
            thread_id = params.get("threadId") if isinstance(params, dict) else None
            if isinstance(thread_id, str) and thread_id.strip():
                turn_thread = thread_id
        upstream_id = conn.requests.add(sub.key, obj["id"], method, thread_id=turn_thread)
        if turn_thread is not None:
            conn.turn_owners[turn_thread] = sub.key
            self.request_handler = sub.key
            self.hooks.on_client_turn_start(self, turn_thread)
        obj["id"] = upstream_id
        await self._send_line(conn, m.dumps(obj))

    async def _client_initialize(self, sub: Subscriber, conn: RuntimeConnection, obj: dict) -> None:
        decision = conn.handshake.on_initialize(HandshakeWaiter(sub.key, obj["id"]))
        if decision is Decision.REPLY_CACHED:
            self._reply(sub, m.result_response(obj["id"], conn.handshake.result))
            self._release_requests(conn, sub)
        elif decision is Decision.FORWARD:
            upstream_id = conn.requests.add(sub.key, obj["id"], "initialize", initialize=True)
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
        answer = "id" in obj  # "id": null is an id like any other (as for runtime methods)
        req_id = obj.get("id")
        params = obj.get("params")
        try:
            result = await self.hooks.call_gateway_method(
                self, obj["method"], params if isinstance(params, dict) else {}
            )
        except GatewayMethodError as exc:
            if answer:
                self._reply(sub, m.error_response(req_id, exc.code, exc.message))
            return
        except RuntimeCallError as exc:
            if answer:
                code, message = exc.error.get("code"), exc.error.get("message")
                code = code if type(code) is int else codes.GATEWAY_ERROR
                self._reply(sub, m.error_response(req_id, code, str(message or "Runtime error")))
            return
        if answer:
            self._reply(sub, m.result_response(req_id, result))

    def note(self, method: str, params: dict[str, Any]) -> None:
        """Broadcast a gateway-made notification to every client.

        With a bridged runtime the bridge numbers it into the runtime's stream (it comes
        back as a line), so it keeps its number across a gateway restart too.
        """
        text = m.notification(method, params)
        conn = self._conn
        bridged = conn.numbered if conn is not None else None
        if bridged is not None and conn is not None and not conn.closed and self._nursery:
            send_note = contained(bridged.send_note, f"note to the bridge session={self.id}")
            self._nursery.start_soon(send_note, text.encode())
            return
        self._broadcast(text)
        self._after_batch()

    async def call(
        self,
        method: str,
        params: Any,
        *,
        timeout: float = 120.0,
        before_send: BeforeSend | None = None,
    ) -> Any:
        """Make a request to the runtime as the gateway itself (automation uses this).

        ``before_send(upstream_id)`` runs just before the request is written.
        """
        await self.ensure_running()
        conn = self._conn
        if conn is None:
            raise RuntimeCallError({"code": codes.RUNTIME_EXITED, "message": "Runtime exited"})
        return await call_runtime(conn, self._send_line, method, params, timeout, before_send)

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

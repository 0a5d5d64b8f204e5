"""``argus node-host``: a device agent that offers commands to the gateway over ``/nodes/ws``.

It connects out to the gateway, sends the ``connect`` frame, and answers
``node.invoke.request`` frames concurrently (at most ``MAX_CONCURRENT`` at once):
``system.run`` (with ``yieldMs`` background jobs), ``system.which``, and ``process.list``,
``process.get``, ``process.logs``, ``process.kill``. A job that outlives its call reports
its end with a ``node.process.exited`` event, which the gateway turns into a system event
on the session's main thread.

It never dies of a network problem: every failed or lost connection is retried with
jittered exponential backoff (1 s doubling to 30 s), forever. The token goes in an
``Authorization`` header, never the URL (a ``?token=`` in ``--url``, the original README's
form, is taken out of it, with a warning that it showed in the process list). Events that
cannot be sent while disconnected wait in a bounded queue (oldest dropped past
``MAX_QUEUED_EVENTS``, with a log line).

``--allow``/``--deny`` restrict which executables ``system.run`` may start (glob patterns
on ``argv[0]`` and its basename); a deny always wins, and with any ``--allow`` only matching
executables run.
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import json
import logging
import os
import platform
import random
import re
import shutil
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from ..protocol import codes
from .jobs import EVENT_TAIL_CHARS, MAX_RUNNING, TAIL_CAP, Job, JobStore, now_ms

log = logging.getLogger("argus.node_host")

VERSION = "0.1.0"
COMMANDS = [
    "system.run",
    "system.which",
    "process.list",
    "process.get",
    "process.logs",
    "process.kill",
]
MAX_CONCURRENT = 32
MAX_QUEUED_EVENTS = codes.CLOSE_NORMAL
HEARTBEAT_S = 15.0
DEFAULT_YIELD_MS = 10_000
MAX_YIELD_MS = 3_600_000
YIELD_MARGIN_MS = codes.CLOSE_NORMAL
BACKOFF_MIN_S, BACKOFF_MAX_S = 1.0, 30.0


class CommandError(Exception):
    """A command failed in a way the caller can act on: ``{code, message}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


NETWORK_ERRORS = (OSError, HandshakeError, ConnectionClosed, trio.TooSlowError)


def describe_failure(exc: BaseException) -> str:
    """One line for a lost connection; a traceback in the log if it was not the network."""
    leaves = list(_leaves(exc))
    if not all(isinstance(e, NETWORK_ERRORS) for e in leaves):
        log.error("unexpected error on the gateway connection", exc_info=exc)
    return "; ".join(f"{type(e).__name__}: {e}" for e in leaves)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def safe_name(node_id: str) -> str:
    """A directory name for a node id (``.``/``..`` and separators cannot escape)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", node_id)[:120].strip(".")
    return name or "node"


class NodeHost:
    """One node-host: its identity, jobs, and the gateway connection loop."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.url: str = options.url
        self.token: str | None = options.token
        self.node_id: str = options.node_id
        self.display_name: str = options.display_name
        self.session_id: str | None = options.session_id
        self.allow: list[str] = options.allow or []
        self.deny: list[str] = options.deny or []
        self.state_dir = Path(options.state_dir)
        self.parent_pid: int | None = options.parent_pid
        self.events: collections.deque[dict[str, Any]] = collections.deque()
        self.ws: Any = None
        self.send_lock = trio.Lock()
        self.limit = trio.Semaphore(MAX_CONCURRENT)
        self.jobs = JobStore(self.state_dir, self.node_id, self._job_exited)
        self.nursery: trio.Nursery | None = None
        self.event_ready = trio.Event()

    # -- connection ----------------------------------------------------------------------

    async def serve(self) -> None:
        """Load jobs, then connect and reconnect forever."""
        await self.jobs.load()
        print(f"Node state dir: {self.state_dir}", file=sys.stderr, flush=True)
        delay = BACKOFF_MIN_S
        async with trio.open_nursery() as nursery:
            self.nursery = nursery  # jobs outlive connections
            if self.parent_pid is not None:
                nursery.start_soon(self._watch_parent, nursery.cancel_scope)
            while True:
                started = trio.current_time()
                try:
                    await self._connect_once()
                    reason = "connection closed"
                except Exception as exc:
                    reason = describe_failure(exc)
                if trio.current_time() - started > 10:
                    delay = BACKOFF_MIN_S  # it worked for a while: start over
                wait = delay * random.uniform(0.8, 1.2)
                log.warning("gateway connection lost (%s); retrying in %.1fs", reason, wait)
                await trio.sleep(wait)
                delay = min(BACKOFF_MAX_S, delay * 2)

    async def _watch_parent(self, scope: trio.CancelScope) -> None:
        """A supervised node-host ends when its supervisor is gone (it was re-parented)."""
        while True:  # no event tells us; poll once a second
            if os.getppid() != self.parent_pid:
                break
            await trio.sleep(1.0)
        log.warning("supervisor is gone; exiting")
        scope.cancel()

    async def _connect_once(self) -> None:
        headers = [("Authorization", f"Bearer {self.token}")] if self.token else []
        try:
            async with open_websocket_url(
                self.url,
                extra_headers=headers,
                max_message_size=16 << 20,
                connect_timeout=30,
                disconnect_timeout=2,
            ) as ws:
                await self._serve_connection(ws)
        except* ConnectionClosed as group:
            for exc in _leaves(group):
                reason = exc.reason  # type: ignore[attr-defined]
                if reason is not None and reason.code == codes.CLOSE_POLICY_VIOLATION:
                    log.error("gateway refused this node: %s (check token, node id)", reason.reason)
                elif reason is not None and reason.code == codes.CLOSE_SERVICE_RESTART:
                    log.warning(
                        "another node-host connected as %s; this one was replaced", self.node_id
                    )
        finally:
            self.ws = None

    async def _serve_connection(self, ws: Any) -> None:
        connect = {
            "type": "connect",
            "nodeId": self.node_id,
            "displayName": self.display_name,
            "platform": sys.platform,
            "version": VERSION,
            "caps": ["system"],
            "commands": COMMANDS,
        }
        await ws.send_message(json.dumps(connect))
        self.ws = ws
        log.info("connected to %s as %s", self.url, self.node_id)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._heartbeat, ws)
            nursery.start_soon(self._flush_events, ws)
            while True:
                message = await ws.get_message()
                self._on_message(message, nursery)

    async def _send(self, ws: Any, frame: dict[str, Any]) -> None:
        async with self.send_lock:
            await ws.send_message(json.dumps(frame))

    async def _heartbeat(self, ws: Any) -> None:
        while True:
            await trio.sleep(HEARTBEAT_S)
            await self._send(
                ws, {"type": "event", "event": "node.heartbeat", "payload": {"t": now_ms()}}
            )

    async def _flush_events(self, ws: Any) -> None:
        while True:
            while self.events:
                await self._send(ws, self.events[0])
                self.events.popleft()
            await self.event_ready.wait()
            self.event_ready = trio.Event()

    def _queue_event(self, frame: dict[str, Any]) -> None:
        if len(self.events) >= MAX_QUEUED_EVENTS:
            dropped = self.events.popleft()
            log.warning("event queue full, dropped %s", dropped.get("event"))
        self.events.append(frame)
        self.event_ready.set()

    def _on_message(self, message: Any, nursery: trio.Nursery) -> None:
        try:
            frame = json.loads(message)
        except (TypeError, ValueError):
            return
        if not isinstance(frame, dict) or frame.get("event") != "node.invoke.request":
            return
        payload = frame.get("payload")
        if not isinstance(payload, dict) or not str(payload.get("id") or ""):
            return
        nursery.start_soon(self._answer, self.ws, payload)

    async def _answer(self, ws: Any, request: dict[str, Any]) -> None:
        params: Any = request.get("params")
        if isinstance(request.get("paramsJSON"), str):
            try:
                params = json.loads(request["paramsJSON"])
            except ValueError:
                params = None
        result: dict[str, Any] = {"id": str(request["id"]), "nodeId": self.node_id}
        async with self.limit:
            try:
                payload = await self.run_command(str(request.get("command") or ""), params, request)
                result.update(ok=True, payload=payload, payloadJSON=None, error=None)
            except CommandError as exc:
                result.update(
                    ok=False, payloadJSON=None, error={"code": exc.code, "message": exc.message}
                )
        try:
            await self._send(
                ws, {"type": "event", "event": "node.invoke.result", "payload": result}
            )
        except (ConnectionClosed, OSError, trio.ClosedResourceError):
            log.info("result of %s not delivered: connection gone", request.get("command"))

    # -- commands ------------------------------------------------------------------------

    async def run_command(self, command: str, params: Any, request: dict[str, Any]) -> Any:
        """Dispatch one command."""
        params = params if isinstance(params, dict) else {}
        if command == "system.run":
            return await self.system_run(params, request.get("timeoutMs"))
        if command == "system.which":
            bin_name = str(params.get("bin") or "").strip()
            if not bin_name:
                raise CommandError("BAD_INPUT", "system.which requires bin")
            return {"bin": bin_name, "path": shutil.which(bin_name)}
        if command == "process.list":
            return {"jobs": self.jobs.listing()}
        job = self._job(params, command)
        if command == "process.get":
            return {"job": self.jobs.describe(job)}
        if command == "process.logs":
            tail = params.get("tailBytes", 65536)
            tail = (
                int(tail) if isinstance(tail, int | float) and not isinstance(tail, bool) else 65536
            )
            tail = max(1024, min(tail, TAIL_CAP))
            stdout, stderr = await self.jobs.read_logs(job, tail)
            meta = self.jobs.describe(job)
            return {
                "jobId": job.id,
                "running": bool(meta.get("running")),
                "stdout": stdout,
                "stderr": stderr,
                "stdoutBytes": meta.get("stdoutBytes"),
                "stderrBytes": meta.get("stderrBytes"),
            }
        if command == "process.kill":
            if not job.meta.get("running") or job.process is None:
                raise CommandError("NOT_RUNNING", f"job not running: {job.id}")
            return {"jobId": job.id, "signal": await self.jobs.kill(job)}
        raise CommandError("UNSUPPORTED", f"unsupported command: {command}")

    def _job(self, params: dict[str, Any], command: str) -> Job:
        job_id = str(params.get("jobId") or "").strip()
        if not job_id:
            raise CommandError("BAD_INPUT", f"{command} requires jobId")
        job = self.jobs.jobs.get(job_id)
        if job is None:
            raise CommandError("NOT_FOUND", f"unknown jobId: {job_id}")
        return job

    def permitted(self, executable: str) -> bool:
        """The allow/deny rule for ``argv[0]``."""
        names = (executable, os.path.basename(executable))
        if any(fnmatch.fnmatchcase(n, p) for p in self.deny for n in names):
            return False
        if not self.allow:
            return True
        return any(fnmatch.fnmatchcase(n, p) for p in self.allow for n in names)

    async def system_run(self, params: dict[str, Any], frame_timeout_ms: Any) -> dict[str, Any]:
        """Run ``argv``; the full result if it ends within ``yieldMs``, else ``running: true``."""
        argv = params.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise CommandError("BAD_INPUT", "system.run requires argv: string[]")
        if not self.permitted(argv[0]):
            raise CommandError("DENIED", f"not allowed on this node: {argv[0]}")
        cwd = (
            params.get("cwd")
            if isinstance(params.get("cwd"), str) and params["cwd"].strip()
            else None
        )
        if cwd is not None and not await trio.to_thread.run_sync(os.path.isdir, cwd):
            raise CommandError("BAD_INPUT", f"cwd does not exist: {cwd}")
        env_raw = params.get("env")
        env = (
            {k: v for k, v in env_raw.items() if isinstance(v, str)}
            if isinstance(env_raw, dict)
            else None
        )
        timeout = params.get("timeoutMs")
        timeout_ms = (
            int(timeout)
            if isinstance(timeout, int | float) and not isinstance(timeout, bool)
            else None
        )
        yield_raw = params.get("yieldMs")
        yield_ms = DEFAULT_YIELD_MS
        if isinstance(yield_raw, int | float) and not isinstance(yield_raw, bool):
            yield_ms = int(max(0, min(yield_raw, MAX_YIELD_MS)))
        if isinstance(frame_timeout_ms, int | float) and frame_timeout_ms > 0:
            # Answer before the gateway stops waiting, or the result would be lost.
            yield_ms = int(max(0, min(yield_ms, frame_timeout_ms - YIELD_MARGIN_MS)))
        notify = params.get("notifyOnExit")
        if self.jobs.running() >= MAX_RUNNING:
            raise CommandError("BUSY", f"{MAX_RUNNING} jobs are running already")
        assert self.nursery is not None
        try:
            job = await self.jobs.start(self.nursery, argv, cwd, env, timeout_ms)
        except OSError as exc:
            raise CommandError(
                "SPAWN_FAILED", f"cannot start {argv[0]}: {exc.strerror or exc}"
            ) from None
        base = {
            "jobId": job.id,
            "argv": argv,
            "cwd": cwd,
            "timeoutMs": timeout_ms,
            "yieldMs": yield_ms,
            "pid": job.meta["pid"],
        }
        with trio.move_on_after(yield_ms / codes.CLOSE_NORMAL):
            await job.finished.wait()
        if job.finished.is_set():
            job.meta["notifyOnExit"] = notify is True
            if notify is True:
                self._emit_exit(job)
            meta = job.meta
            return {
                **base,
                "running": False,
                "exitCode": meta["exitCode"],
                "signal": meta["signal"],
                "timedOut": meta["timedOut"],
                "stdout": job.stdout.text(),
                "stderr": job.stderr.text(),
                "stdoutBytes": job.stdout.total,
                "stderrBytes": job.stderr.total,
                "stdoutTruncated": job.stdout.truncated,
                "stderrTruncated": job.stderr.truncated,
            }
        job.meta["notifyOnExit"] = notify is not False
        return {
            **base,
            "running": True,
            "stdoutTail": job.stdout.text()[-EVENT_TAIL_CHARS:],
            "stderrTail": job.stderr.text()[-EVENT_TAIL_CHARS:],
            "stdoutBytes": job.stdout.total,
            "stderrBytes": job.stderr.total,
        }

    def _job_exited(self, job: Job) -> None:
        if job.meta.get("notifyOnExit"):
            self._emit_exit(job)

    def _emit_exit(self, job: Job) -> None:
        meta = job.meta
        payload = {
            "nodeId": self.node_id,
            "sessionId": self.session_id,
            "jobId": job.id,
            "argv": meta["argv"],
            "cwd": meta["cwd"],
            "exitCode": meta["exitCode"],
            "signal": meta["signal"],
            "timedOut": meta["timedOut"],
            "startedAtMs": meta["startedAtMs"],
            "endedAtMs": meta["endedAtMs"],
            "stdoutTail": job.stdout.text()[-EVENT_TAIL_CHARS:],
            "stderrTail": job.stderr.text()[-EVENT_TAIL_CHARS:],
        }
        self._queue_event({"type": "event", "event": "node.process.exited", "payload": payload})


def build_parser() -> argparse.ArgumentParser:
    """``argus node-host`` options (each also from an environment variable)."""
    env = os.environ
    host = socket.gethostname() or platform.node() or "node"
    parser = argparse.ArgumentParser(
        prog="argus node-host",
        description="Offer this machine's commands to an Argus gateway (system.run, process.*).",
    )
    parser.add_argument(
        "--url",
        default=env.get("ARGUS_NODE_WS_URL", "").strip() or None,
        help="ws://HOST:8080/nodes/ws [ARGUS_NODE_WS_URL]",
    )
    parser.add_argument(
        "--token",
        default=env.get("ARGUS_NODE_TOKEN", "").strip() or None,
        help="node token, sent as Authorization: Bearer [ARGUS_NODE_TOKEN]",
    )
    parser.add_argument(
        "--node-id",
        default=env.get("ARGUS_NODE_ID", "").strip() or host,
        help="node id [ARGUS_NODE_ID] (default: the host name)",
    )
    parser.add_argument(
        "--display-name",
        default=env.get("ARGUS_NODE_DISPLAY_NAME", "").strip() or None,
        help="display name [ARGUS_NODE_DISPLAY_NAME] (default: the node id)",
    )
    parser.add_argument(
        "--session-id",
        default=env.get("ARGUS_SESSION_ID", "").strip() or None,
        help="session that job-exit events belong to [ARGUS_SESSION_ID]",
    )
    parser.add_argument(
        "--state-dir",
        default=env.get("ARGUS_NODE_STATE_DIR", "").strip() or None,
        help="where jobs are kept [ARGUS_NODE_STATE_DIR] (default ~/.argus/node-host/<id>)",
    )
    parser.add_argument(
        "--allow",
        action="append",
        metavar="PATTERN",
        help="only run executables matching PATTERN (repeatable)",
    )
    parser.add_argument(
        "--deny",
        action="append",
        metavar="PATTERN",
        help="never run executables matching PATTERN (repeatable; wins over --allow)",
    )
    parser.add_argument(
        "--parent-pid",
        type=int,
        help="exit when this process is no longer our parent (set by supervisors)",
    )
    return parser


def split_url_token(url: str) -> tuple[str, str | None]:
    """The URL without its ``token`` query parameter, and that token (None if absent)."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    tokens = [value for key, value in pairs if key == "token"]
    if not tokens:
        return url, None
    query = urlencode([(key, value) for key, value in pairs if key != "token"])
    return urlunsplit(parts._replace(query=query)), tokens[0] or None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``argus node-host``."""
    options = build_parser().parse_args(argv)
    if not options.url:
        print(
            "argus node-host: missing --url (or ARGUS_NODE_WS_URL), e.g. ws://127.0.0.1:8080/nodes/ws",
            file=sys.stderr,
        )
        return 2
    options.url, url_token = split_url_token(options.url)
    if url_token is not None:
        # The original README's invocation: accepted, but the token moves to a header.
        print(
            "argus node-host: warning: a token in --url is visible to every user of this "
            "machine in the process list; it is sent as an Authorization header, not in "
            "the URL. Prefer --token or ARGUS_NODE_TOKEN.",
            file=sys.stderr,
        )
        options.token = options.token or url_token
    options.display_name = options.display_name or options.node_id
    if options.state_dir is None:
        options.state_dir = str(Path.home() / ".argus" / "node-host" / safe_name(options.node_id))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        trio.run(NodeHost(options).serve)
    except KeyboardInterrupt:
        return 130
    return 0

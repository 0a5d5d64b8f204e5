"""``argus node-host``: the agent that connects out to ``/nodes/ws`` and runs commands.

Why it is built like this: it must never die of a network problem (the original crashed on
the first refused connect), so the connection loop catches everything, backs off with jitter
(1 s doubling to 30 s, reset after a connection that lasted a minute) and retries forever.
Jobs and their tasks live outside the connection, so a reconnect does not touch running
processes; completion events are queued (bounded) while disconnected and flushed after the
next ``connect`` frame. Requests are handled concurrently, at most 64 at a time.

The token is sent in ``Authorization: Bearer`` (never in the URL), and children never see any
``ARGUS_*`` variable. ``--allow``/``--deny`` restrict which executables ``system.run`` may
start (by basename or full path).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import platform
import random
import re
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from .jobs import JobError, JobStore

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
HEARTBEAT_S = 15.0
MAX_EVENTS = 200  # queued while disconnected; overflow drops the oldest (logged)
MAX_INFLIGHT = 64  # concurrent requests; overflow answers BUSY
BACKOFF_MIN_S, BACKOFF_MAX_S = 1.0, 30.0


def safe_name(node_id: str) -> str:
    """A directory name for ``node_id`` (never ``.`` or ``..``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", node_id)[:120]
    return "node" if name in ("", ".", "..") else name


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``node-host`` flags (each also readable from the environment)."""
    parser.add_argument("--url", help="Gateway URL ws://HOST:PORT/nodes/ws (ARGUS_NODE_WS_URL)")
    parser.add_argument("--node-id", help="Node id (ARGUS_NODE_ID; default: hostname)")
    parser.add_argument("--display-name", help="Display name (ARGUS_NODE_DISPLAY_NAME)")
    parser.add_argument("--state-dir", help="Job store directory (ARGUS_NODE_STATE_DIR)")
    parser.add_argument(
        "--allow", action="append", default=[], help="Only these executables (repeatable)"
    )
    parser.add_argument("--deny", action="append", default=[], help="Never these executables")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    return parser


class NodeHost:
    """The agent: job store, connection loop and command dispatch."""

    def __init__(
        self,
        url: str,
        token: str | None,
        node_id: str,
        display_name: str,
        state_dir: Path,
        session_id: str | None = None,
        allow: list[str] | None = None,
        deny: list[str] | None = None,
    ) -> None:
        self.url = url
        self.token = token
        self.node_id = node_id
        self.display_name = display_name
        self.allow = set(allow or [])
        self.deny = set(deny or [])
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_EVENTS)
        self.wakeup = trio.Event()
        self.store = JobStore(state_dir, node_id, session_id, self._queue_event)
        self.inflight = 0

    def _queue_event(self, payload: dict[str, Any]) -> None:
        if len(self.events) == self.events.maxlen:
            log.warning("event queue full: dropping the oldest exit event")
        self.events.append(payload)
        self.wakeup.set()

    async def serve(self) -> None:
        """Run forever: load jobs, then connect, serve, back off, reconnect."""
        await self.store.load()
        async with trio.open_nursery() as nursery:
            await nursery.start(self.store.serve)
            nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
            backoff = BACKOFF_MIN_S
            while True:
                started = time.monotonic()
                try:
                    await self._serve_connection()
                except (OSError, HandshakeError, ConnectionClosed, trio.BrokenResourceError) as exc:
                    log.info("connection to %s ended: %s", self.url, exc)
                except Exception:
                    log.exception("connection failed")
                if time.monotonic() - started > 60:
                    backoff = BACKOFF_MIN_S
                delay = backoff * random.uniform(0.5, 1.0)
                await trio.sleep(delay)
                backoff = min(BACKOFF_MAX_S, backoff * 2)

    async def _serve_connection(self) -> None:
        headers = [("Authorization", f"Bearer {self.token}")] if self.token else []
        async with open_websocket_url(self.url, extra_headers=headers) as ws:
            connect = {
                "type": "connect",
                "nodeId": self.node_id,
                "displayName": self.display_name,
                "platform": platform.system().lower(),
                "version": VERSION,
                "caps": ["system"],
                "commands": COMMANDS,
            }
            await ws.send_message(json.dumps(connect))
            log.info("connected to %s as %s", self.url, self.node_id)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._heartbeat, ws)
                nursery.start_soon(self._flush_events, ws)
                try:
                    while True:
                        text = await ws.get_message()
                        self._on_message(ws, nursery, text)
                finally:
                    nursery.cancel_scope.cancel()
                    if ws.closed is not None and ws.closed.code == 1008:
                        log.error("gateway refused this node: %s", ws.closed.reason)
                    elif ws.closed is not None and ws.closed.code == 1012:
                        log.warning("another connection took node id %s", self.node_id)

    async def _heartbeat(self, ws: Any) -> None:
        while True:
            await trio.sleep(HEARTBEAT_S)
            frame = {
                "type": "event",
                "event": "node.heartbeat",
                "payload": {"t": int(time.time() * 1000)},
            }
            await ws.send_message(json.dumps(frame))

    async def _flush_events(self, ws: Any) -> None:
        while True:
            while self.events:
                payload = self.events[0]
                frame = {"type": "event", "event": "node.process.exited", "payload": payload}
                await ws.send_message(json.dumps(frame))
                self.events.popleft()  # only once sent: a failed send keeps it queued
            self.wakeup = trio.Event()
            await self.wakeup.wait()

    def _on_message(self, ws: Any, nursery: trio.Nursery, text: Any) -> None:
        try:
            frame = json.loads(text)
        except (TypeError, ValueError):
            return
        if not isinstance(frame, dict) or frame.get("type") != "event":
            return
        if frame.get("event") != "node.invoke.request" or not isinstance(
            frame.get("payload"), dict
        ):
            return
        payload = frame["payload"]
        req_id = str(payload.get("id") or "")
        if not req_id:
            return
        if self.inflight >= MAX_INFLIGHT:
            nursery.start_soon(self._reply, ws, req_id, None, JobError("BUSY", "too many requests"))
            return
        nursery.start_soon(self._handle, ws, req_id, payload)

    async def _handle(self, ws: Any, req_id: str, payload: dict[str, Any]) -> None:
        self.inflight += 1
        try:
            params: Any = payload.get("params")
            if isinstance(payload.get("paramsJSON"), str):
                try:
                    params = json.loads(payload["paramsJSON"])
                except ValueError:
                    params = None
            timeout = payload.get("timeoutMs")
            timeout = int(timeout) if type(timeout) in (int, float) and timeout > 0 else None
            try:
                result = await self.dispatch(str(payload.get("command") or ""), params, timeout)
                await self._reply(ws, req_id, result, None)
            except JobError as exc:
                await self._reply(ws, req_id, None, exc)
        finally:
            self.inflight -= 1

    async def _reply(self, ws: Any, req_id: str, result: Any, exc: JobError | None) -> None:
        body: dict[str, Any] = {"id": req_id, "nodeId": self.node_id, "ok": exc is None}
        if exc is None:
            body.update(payload=result, payloadJSON=None, error=None)
        else:
            body.update(payloadJSON=None, error={"code": exc.code, "message": str(exc)})
        frame = {"type": "event", "event": "node.invoke.result", "payload": body}
        try:
            await ws.send_message(json.dumps(frame))
        except ConnectionClosed:
            log.warning("result of %s lost: the connection closed", req_id)

    def _allowed(self, exe: str) -> bool:
        names = {exe, os.path.basename(exe)}
        resolved = shutil.which(exe)
        if resolved:
            names.add(resolved)
        if names & self.deny:
            return False
        return not self.allow or bool(names & self.allow)

    async def dispatch(self, command: str, params: Any, frame_timeout_ms: int | None) -> Any:
        """Run one command; raises JobError with a node error code."""
        store = self.store
        if command == "system.run":
            argv = params.get("argv") if isinstance(params, dict) else None
            if isinstance(argv, list) and argv and isinstance(argv[0], str):
                if not self._allowed(argv[0]):
                    raise JobError("FORBIDDEN", f"not allowed on this node: {argv[0]}")
            return await store.run(params, frame_timeout_ms)
        if command == "system.which":
            name = str((params or {}).get("bin") or "").strip() if isinstance(params, dict) else ""
            if not name:
                raise JobError("BAD_INPUT", "system.which requires bin")
            path = await trio.to_thread.run_sync(shutil.which, name)
            return {"bin": name, "path": path}
        if command == "process.list":
            return store.list()
        if command == "process.get":
            return store.describe(store.get(params, command))
        if command == "process.logs":
            return await store.logs(store.get(params, command), params)
        if command == "process.kill":
            return await store.kill(store.get(params, command))
        raise JobError("UNSUPPORTED", f"unsupported command: {command}")


async def _stop_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            log.info("stopping: running jobs are left running and marked orphaned")
            scope.cancel()
            return


def run_node_host(options: argparse.Namespace) -> int:
    """Entry point of ``argus node-host``; exit 2 on a missing URL."""
    logging.basicConfig(
        level=options.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    env = os.environ
    url = (options.url or env.get("ARGUS_NODE_WS_URL") or "").strip()
    if not url:
        print(
            "argus node-host: missing --url (or ARGUS_NODE_WS_URL), "
            "e.g. ws://127.0.0.1:8080/nodes/ws",
            file=sys.stderr,
        )
        return 2
    host = socket.gethostname()
    node_id = (options.node_id or env.get("ARGUS_NODE_ID") or "").strip() or host
    display = (options.display_name or env.get("ARGUS_NODE_DISPLAY_NAME") or "").strip() or node_id
    state = (options.state_dir or env.get("ARGUS_NODE_STATE_DIR") or "").strip()
    state_dir = Path(state) if state else Path.home() / ".argus" / "node-host" / safe_name(node_id)
    token = (env.get("ARGUS_NODE_TOKEN") or "").strip() or None
    session_id = (env.get("ARGUS_SESSION_ID") or "").strip() or None
    log.info("node state dir: %s", state_dir)
    agent = NodeHost(
        url, token, node_id, display, state_dir, session_id, options.allow, options.deny
    )
    try:
        trio.run(agent.serve)
    except KeyboardInterrupt:
        return 0
    return 0

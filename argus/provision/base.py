"""The provisioner interface: how a session gets a runtime byte stream.

Why an interface: sessions must not care whether their runtime is a local child process, an
existing TCP endpoint, or (in a later issue) a Docker container behind a bridge. Each of
those is one module implementing ``Provisioner.open_runtime``, an async context manager
that yields a running ``Runtime`` and, on exit, stops it. The session's nursery owns that
context, so cancelling the session stops the runtime with it.
"""

from __future__ import annotations

import abc
import collections
import logging
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

log = logging.getLogger(__name__)


class ProvisionError(Exception):
    """The runtime could not be started or reached; ``str()`` is safe to show a client."""


@dataclass(frozen=True)
class ExitStatus:
    """How a runtime ended: exit code or signal, and the last of its stderr."""

    code: int | None
    signal: int | None
    stderr_tail: str


class Runtime(abc.ABC):
    """One running runtime: a JSONL byte stream plus a way to learn how it ended."""

    #: Shown in ``GET /sessions`` (``pid`` for local, ``containerId``/``name`` for docker).
    info: dict[str, Any]

    @abc.abstractmethod
    async def receive_some(self, max_bytes: int) -> bytes:
        """Bytes from the runtime's stdout; ``b""`` once it has closed."""

    @abc.abstractmethod
    async def send_all(self, data: bytes) -> None:
        """Write to the runtime's stdin. Raises ``trio.BrokenResourceError`` if it is gone."""

    @abc.abstractmethod
    async def wait_exit(self) -> ExitStatus:
        """Wait for the runtime to end, after its output reached EOF."""


@dataclass(frozen=True)
class GatewayLink:
    """How a runtime reaches the gateway back: its URL and the key session tokens derive from.

    Set by the daemon once HTTP is bound. A runtime gets only its session's derived token
    (``argus.tokens``), never the admin token.
    """

    http_url: str
    secret: str

    def session_env(self, session_id: str) -> dict[str, str]:
        """What a session's runtime and node-host need to call the gateway back."""
        from ..tokens import derive_session_token

        token = derive_session_token(self.secret, session_id)
        ws_url = "ws" + self.http_url[len("http") :]
        return {
            "ARGUS_SESSION_TOKEN": token,
            "ARGUS_MCP_URL": self.http_url + "/mcp",
            "ARGUS_MCP_TOKEN": token,
            "ARGUS_NODE_WS_URL": ws_url + "/nodes/ws",
        }


class Provisioner(abc.ABC):
    """Starts runtimes for sessions. One instance per daemon; ``mode`` names it."""

    mode: str
    gateway: GatewayLink | None = None

    @abc.abstractmethod
    def open_runtime(self, session_id: str) -> AbstractAsyncContextManager[Runtime]:
        """Start (or reach) the runtime of ``session_id``; stop it when the context exits."""

    def describe(self) -> str:
        """One line for the start-up log: what a new session will run."""
        return self.mode

    async def live_sessions(self, session_ids: list[str]) -> list[str]:
        """Which of these sessions still have a runtime running (a bridge, a container).

        The manager re-adopts them at start-up, so output produced while the gateway was
        away reaches the replay log and automation at once, not at the next attach.
        """
        return []

    async def destroy(self, session_id: str, purge: bool) -> None:
        """Remove what the session left (a container); its home too with ``purge``."""
        if purge:
            import shutil

            home = self.settings.home_host_path / "sessions" / session_id  # type: ignore[attr-defined]
            await trio.to_thread.run_sync(shutil.rmtree, home, True)

    async def collect_orphans(self, session_ids: list[str]) -> list[str]:
        """Remove runtimes no known session owns (containers); what was removed."""
        return []

    def workspace(self, session_id: str) -> tuple[Path | None, str | None]:
        """The session's workspace as (the gateway sees it, the runtime sees it).

        Automation reads the project context (AGENTS.md...) from the first and passes the
        second as ``cwd`` to the threads it starts; ``None`` where there is no such path.
        """
        return None, None


class StderrTail:
    """Keeps the last ``max_bytes`` of a runtime's stderr and logs it with a size cap.

    Stderr never enters the JSON stream. It is logged line by line (each line truncated)
    until ``log_budget`` bytes have been logged, then only the tail is kept, so a chatty
    runtime cannot flood the daemon's log or memory.
    """

    LINE_LOG_MAX = 500

    def __init__(self, session_id: str, max_bytes: int, log_budget: int = 256 * 1024) -> None:
        self.session_id = session_id
        self.max_bytes = max_bytes
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._log_budget = log_budget
        self._partial = b""
        self.eof = trio.Event()

    def feed(self, data: bytes) -> None:
        """Record a chunk of stderr."""
        self._chunks.append(data)
        self._size += len(data)
        while self._size - len(self._chunks[0]) >= self.max_bytes:
            self._size -= len(self._chunks.popleft())
        if self._log_budget <= 0:
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()[-self.LINE_LOG_MAX :]
        for raw in lines:
            if self._log_budget <= 0:
                log.info("runtime stderr: further lines not logged session=%s", self.session_id)
                break
            text = raw[: self.LINE_LOG_MAX].decode("utf-8", "replace").rstrip()
            self._log_budget -= len(text) + 1
            log.info("runtime stderr session=%s: %s", self.session_id, text)

    def text(self) -> str:
        """The retained tail, decoded."""
        data = b"".join(self._chunks)[-self.max_bytes :]
        return data.decode("utf-8", "replace")


async def drain_into(stream: trio.abc.ReceiveStream, tail: StderrTail) -> None:
    """Read a stream to EOF into ``tail`` (a full stderr pipe would block the runtime)."""
    try:
        while True:
            try:
                data = await stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            tail.feed(data)
    finally:
        tail.eof.set()

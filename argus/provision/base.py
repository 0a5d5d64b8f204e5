"""The provisioner interface: how a session gets a runtime byte stream.

Why an interface: sessions must not care whether their runtime is a local child process, an
existing TCP endpoint, or (in a later issue) a Docker container behind a bridge. Each of
those is one module implementing ``Provisioner.open_runtime``, an async context manager
that yields a running ``Runtime`` and, on exit, stops it. The session's nursery owns that
context, so cancelling the session stops the runtime with it.
"""

from __future__ import annotations

import abc
import logging
import os
import shutil
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from ..auth import derive_session_token
from ..config import Settings
from ..protocol.framing import LineSplitter, OversizedLine

log = logging.getLogger(__name__)

READ_CHUNK = 128 * 1024  # runtime output read at a time


class ProvisionError(Exception):
    """The runtime could not be started or reached; ``str()`` is safe to show a client."""


@dataclass(frozen=True)
class ExitStatus:
    """How a runtime ended: exit code or signal, and the last of its stderr."""

    code: int | None
    signal: int | None
    stderr_tail: str


class Runtime(abc.ABC):
    """One running runtime: a JSONL byte stream plus a way to learn how it ended.

    This is everything a session uses of a runtime. Stream runtimes (a child process, a
    TCP connection) implement the three byte-level methods; ``receive_lines`` splits their
    output into lines, once. A runtime behind a bridge is a ``NumberedRuntime``.
    """

    #: Shown in ``GET /sessions`` (``pid`` for local, ``containerId``/``name`` for docker).
    info: dict[str, Any]
    _splitter: LineSplitter | None = None

    @abc.abstractmethod
    async def receive_some(self, max_bytes: int) -> bytes:
        """Bytes from the runtime's stdout; ``b""`` once it has closed."""

    @abc.abstractmethod
    async def send_all(self, data: bytes) -> None:
        """Write to the runtime's stdin. Raises ``trio.BrokenResourceError`` if it is gone."""

    @abc.abstractmethod
    async def wait_exit(self) -> ExitStatus:
        """Wait for the runtime to end, after its output reached EOF."""

    async def receive_lines(self, line_limit: int) -> list[bytes | OversizedLine]:
        """The next whole output lines (at least one), or ``[]`` at EOF.

        A line longer than ``line_limit`` comes as an ``OversizedLine`` marker instead; a
        final line without a newline still counts.
        """
        splitter = self._splitter
        if splitter is None:
            splitter = self._splitter = LineSplitter(line_limit)
        while True:
            data = await self.receive_some(READ_CHUNK)
            if not data:
                return splitter.close()
            lines = splitter.feed(data)
            if lines:
                return lines

    def keep_running_on_close(self) -> None:
        """Leave the runtime running when its connection closes (a gateway shutdown).

        Only a runtime that outlives its connection (behind a bridge) can; a plain child
        process stops with its connection whatever this says, so the default does nothing.
        """
        return


class NumberedRuntime(Runtime):
    """A runtime behind ``argus bridge``: its lines carry numbers that outlive the gateway.

    A session's ``seq`` is then ``base + line number``, the same before and after a gateway
    restart (``sessions/numbered.py`` aligns the replay log). The bridge also numbers the
    gateway's own notes into the stream (``send_note``), and caches the ``initialize``
    result so a new gateway does not send a second one.
    """

    instance: str | None
    generation: int | None  # this connection's number at the bridge: the request-id epoch
    base: int
    first: int
    head: int
    initialize_result: Any

    @abc.abstractmethod
    async def hello(self, since: int, base: int, instance: str | None = None) -> None:
        """Authenticate and learn the numbering (``instance``, ``base``, ``first``, ``head``)."""

    @abc.abstractmethod
    async def send_note(self, line: bytes) -> bool:
        """Have a gateway note numbered into the stream; whether it was sent."""


@dataclass(frozen=True)
class GatewayLink:
    """How a runtime reaches the gateway back: its URL and the key session tokens derive from.

    Set by the daemon once HTTP is bound. A runtime gets only its session's derived token
    (``argus.auth``), never the admin token.
    """

    http_url: str
    secret: str

    def session_env(self, session_id: str) -> dict[str, str]:
        """What a session's runtime and node-host need to call the gateway back."""
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
    settings: Settings
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
            home = self.settings.home_host_path / "sessions" / session_id
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


def runtime_environment(
    session_id: str, home: Path, link: GatewayLink | None = None
) -> dict[str, str]:
    """A runtime's environment: the daemon's, minus every ARGUS_* secret, plus its own.

    With a gateway link it also gets the session's own token and where to use it
    (``ARGUS_MCP_URL``/``ARGUS_MCP_TOKEN`` for an MCP client such as codex).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
    env["HOME"] = str(home)
    env["ARGUS_SESSION_ID"] = session_id
    if link is not None:
        env.update(link.session_env(session_id))
    return env

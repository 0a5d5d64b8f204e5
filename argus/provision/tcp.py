"""``tcp`` mode: each session connects to an existing runtime at ARGUS_TCP_HOST:ARGUS_TCP_PORT.

Useful when the runtime is managed elsewhere (a bridge, a container started by hand). Each
session opens its own connection; whatever listens there decides whether that means one
runtime process per connection.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ..config import Settings
from .base import ExitStatus, Provisioner, ProvisionError, Runtime

log = logging.getLogger(__name__)


class TcpRuntime(Runtime):
    """A runtime reached over one TCP connection."""

    def __init__(self, stream: trio.SocketStream, address: str) -> None:
        self.stream = stream
        self.info = {"tcp": address}

    async def receive_some(self, max_bytes: int) -> bytes:
        """Read from the socket; a reset counts as EOF."""
        try:
            return await self.stream.receive_some(max_bytes)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def send_all(self, data: bytes) -> None:
        """Write to the socket."""
        try:
            await self.stream.send_all(data)
        except trio.ClosedResourceError as exc:
            raise trio.BrokenResourceError("runtime connection is closed") from exc

    async def wait_exit(self) -> ExitStatus:
        """A remote runtime has no exit code to report: the connection just closed."""
        return ExitStatus(code=None, signal=None, stderr_tail="")


async def connect(host: str, port: int) -> trio.SocketStream:
    """A TCP stream to ``host:port``.

    An IP address is connected to directly: ``trio.open_tcp_stream`` would resolve it in a
    worker thread and race attempts in a nursery of its own, which is most of the cost of
    a new ``tcp`` session (issue 14). A host name takes that path.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return await trio.open_tcp_stream(host, port)
    family = trio.socket.AF_INET6 if address.version == 6 else trio.socket.AF_INET
    sock = trio.socket.socket(family, trio.socket.SOCK_STREAM)
    try:
        await sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


class TcpProvisioner(Provisioner):
    """Connects sessions to a fixed TCP endpoint."""

    mode = "tcp"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.address = f"{settings.tcp_host}:{settings.tcp_port}"

    def describe(self) -> str:
        """Say where sessions connect."""
        return f"tcp (runtime at {self.address})"

    @asynccontextmanager
    async def open_runtime(self, session_id: str) -> AsyncIterator[Runtime]:
        """Connect within ARGUS_CONNECT_TIMEOUT_S; close the connection on exit."""
        try:
            with trio.fail_after(self.settings.connect_timeout_s):
                stream = await connect(self.settings.tcp_host, self.settings.tcp_port)
        except (OSError, trio.TooSlowError) as exc:
            raise ProvisionError(f"cannot connect to runtime at {self.address}: {exc}") from exc
        log.info("runtime connected session=%s tcp=%s", session_id, self.address)
        try:
            yield TcpRuntime(stream, self.address)
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

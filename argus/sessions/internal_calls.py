"""The daemon's own requests to a runtime (automation's thread/turn calls, main thread).

Why separate from client routing: an internal call has no client to answer, so it waits
on an ``InternalCall`` the runtime reader resolves, and it shares the connection's one
handshake state machine with the clients (never a second ``initialize``). The functions
take the connection and a line writer, so they know nothing about subscribers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..protocol import messages as m
from ..protocol.handshake import Decision, HandshakeState
from .connection import HandshakeWaiter, InternalCall, RuntimeConnection

CLIENT_INFO = {"name": "argus_gateway", "title": "Argus Gateway", "version": "0.1.0"}

SendLine = Callable[[RuntimeConnection, str], Awaitable[None]]


class RuntimeCallError(Exception):
    """An internal call got a JSON-RPC error (or the runtime went away)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = error


BeforeSend = Callable[[int], Awaitable[None]]


async def call_runtime(
    conn: RuntimeConnection,
    send_line: SendLine,
    method: str,
    params: Any,
    timeout: float,
    before_send: BeforeSend | None = None,
) -> Any:
    """One request as the gateway itself; its result, or ``RuntimeCallError``.

    ``before_send(upstream_id)`` runs once the request has its id and before it is
    written (the engine persists a "starting" record there); if it raises, nothing is sent.
    """
    await ensure_initialized(conn, send_line, timeout)
    call = InternalCall()
    upstream_id = conn.requests.add(call, None, method)
    try:
        if before_send is not None:
            await before_send(upstream_id)
        await send_line(conn, m.dumps({"id": upstream_id, "method": method, "params": params}))
        with trio.fail_after(timeout):
            await call.done.wait()
    finally:
        conn.requests.cancel(upstream_id)
    if call.error is not None:
        raise RuntimeCallError(call.error)
    return call.result


async def ensure_initialized(conn: RuntimeConnection, send_line: SendLine, timeout: float) -> None:
    """Join (or start) the connection's handshake, then send ``initialized`` once."""
    handshake = conn.handshake
    if handshake.state is not HandshakeState.READY:
        call = InternalCall()
        decision = handshake.on_initialize(HandshakeWaiter(call, None))
        if decision is Decision.FORWARD:
            upstream_id = conn.requests.add(call, None, "initialize", initialize=True)
            request = {
                "id": upstream_id,
                "method": "initialize",
                "params": {"clientInfo": CLIENT_INFO},
            }
            await send_line(conn, m.dumps(request))
        if decision is not Decision.REPLY_CACHED:
            with trio.fail_after(timeout):
                await call.done.wait()
            if call.error is not None:
                raise RuntimeCallError(call.error)
    if handshake.on_initialized():
        await send_line(conn, m.dumps({"method": "initialized"}))

"""How other parts of the daemon observe a session and serve its ``argus/*`` methods.

Why hooks instead of imports: sessions sit below automation and nodes in the layering (see
docs/architecture.md), so a session never imports them. The daemon hands each session one
``SessionHooks`` object instead; the session calls it at the few points where others need to
know something (a notification went by, a client started a turn, the runtime came or went)
and to answer gateway methods. Every observer method is synchronous and must be cheap: it
runs on the runtime reader's hot path, once per runtime line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..protocol import codes

if TYPE_CHECKING:
    from .session import Session


class GatewayMethodError(Exception):
    """An ``argus/*`` call failed in a way the caller can act on: a JSON-RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SessionHooks:
    """The default: nobody is listening, and every ``argus/*`` method is unknown."""

    def on_notification(self, session: Session, method: str, params: dict[str, Any]) -> None:
        """A runtime notification was broadcast (``params`` is its params object)."""

    def on_client_turn_start(self, session: Session, thread_id: str) -> None:
        """A client sent ``turn/start`` for ``thread_id`` directly (forwarded as is)."""

    def on_client_turn_refused(self, session: Session, thread_id: str) -> None:
        """The runtime answered that client ``turn/start`` with an error: no turn runs."""

    def on_runtime_started(self, session: Session) -> None:
        """A new runtime connection is up (``session.runtime_generation`` changed)."""

    def on_runtime_caught_up(self, session: Session) -> None:
        """The runtime is connected and an adopted bridge's backlog has been read."""

    def on_unmatched_response(self, session: Session, upstream_id: Any, obj: dict) -> None:
        """A runtime response no request of this connection waits for: typically the
        answer to an earlier gateway's request, replayed or forwarded by a bridge."""

    def on_runtime_exit(self, session: Session) -> None:
        """The runtime connection ended (exit, crash or stop)."""

    def on_server_request(
        self, session: Session, request_id: Any, method: str, params: dict
    ) -> None:
        """The runtime sent a request (an approval) that now waits for an answer."""

    def on_server_answer(self, session: Session, request_id: Any, result: Any) -> None:
        """A client answered a pending runtime request (it was the first)."""

    def on_session_deleted(self, session_id: str) -> None:
        """The session was deleted for good (``DELETE /sessions/{id}``)."""

    def session_busy(self, session_id: str) -> bool:
        """Whether a turn runs in the session (the idle reaper leaves busy runtimes alone)."""
        return False

    async def call_gateway_method(
        self, session: Session, method: str, params: dict[str, Any]
    ) -> Any:
        """Serve ``argus/<name>``; raise ``GatewayMethodError`` to answer with an error."""
        raise GatewayMethodError(codes.METHOD_NOT_FOUND, f"Method not found: {method}")


NO_HOOKS = SessionHooks()

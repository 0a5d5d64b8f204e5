"""The ``Channel`` interface and the hub that fans daemon events out to every channel.

Why an interface: the daemon and the automation engine must not know which chat networks
exist. A channel turns inbound chat messages into inputs (through the automation engine)
and receives what has to go out: final turn results, runtime notifications (for typing
indicators and previews) and approval requests. A second channel is one more module that
implements these methods and is added to the hub by the daemon.

Every ``on_*`` method is synchronous and cheap: it runs on the runtime reader's hot path.
Work that needs the store or the network is queued to the channel's own tasks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from ..sessions.session import Session

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TurnResult:
    """A turn's end as the engine saw it: what a channel may deliver."""

    session_id: str
    thread_id: str
    turn_id: str | None
    kind: str | None  # user | followup | heartbeat | cron | client
    status: str | None
    text: str
    source: tuple[str | None, str | None]
    inputs: tuple[int, ...] = ()  # channel-specific ids the turn's input named


class Channel:
    """One chat network. Subclasses override what they need; the defaults ignore events."""

    name = "channel"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the channel's tasks until cancelled."""
        task_status.started()
        await trio.sleep_forever()

    def on_notification(self, session: Session, method: str, params: dict[str, Any]) -> None:
        """A runtime notification of any session went by."""

    def on_turn_result(self, session: Session, result: dict[str, Any]) -> None:
        """A turn ended (every kind, including turns started by other clients).

        ``result``: threadId, turnId, kind, status, text and source (channel, chatKey).
        """

    def on_server_request(
        self, session: Session, request_id: Any, method: str, params: dict
    ) -> None:
        """The runtime asked a question (an approval) that waits for an answer."""

    def on_server_answer(self, session: Session, request_id: Any, result: Any) -> None:
        """A client answered a pending server request (first answer wins)."""


class ChannelHub:
    """The channels of this daemon; the engine and the sessions call it, it calls them.

    A channel that raises is logged and skipped: one channel's bug never breaks a turn.
    """

    def __init__(self) -> None:
        self.channels: list[Channel] = []

    def add(self, channel: Channel) -> None:
        """Register a channel (the daemon does, before serving)."""
        self.channels.append(channel)

    def _each(self, what: str, *args: Any) -> None:
        for channel in self.channels:
            try:
                getattr(channel, what)(*args)
            except Exception:
                log.exception("channel %s failed in %s", channel.name, what)

    def on_notification(self, session: Session, method: str, params: dict[str, Any]) -> None:
        """Fan a runtime notification out."""
        if self.channels:
            self._each("on_notification", session, method, params)

    def on_turn_result(self, session: Session, result: dict[str, Any]) -> None:
        """Fan a turn result out."""
        self._each("on_turn_result", session, result)

    def on_server_request(
        self, session: Session, request_id: Any, method: str, params: dict
    ) -> None:
        """Fan a runtime request out."""
        self._each("on_server_request", session, request_id, method, params)

    def on_server_answer(self, session: Session, request_id: Any, result: Any) -> None:
        """Fan a client's answer out."""
        self._each("on_server_answer", session, request_id, result)

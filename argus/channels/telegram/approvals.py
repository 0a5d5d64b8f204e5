"""Approval requests shown in the chat of the turn, with one inline button per decision.

The request is recorded (``tg_approvals``) and its message queued in one commit. A button
press (a stored ``callback_query``) answers the runtime through
``Session.answer_server_request``: the first answer wins, across all clients. The message
is then edited to show the outcome -- also when another client answered first
(``on_server_answer``) or the runtime resolved it (``serverRequest/resolved``). The
original auto-declined every approval.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from ...store import telegram_records as tgr
from .botapi import NotSent, TelegramError, UnknownOutcome

if TYPE_CHECKING:
    from ...sessions.session import Session
    from .service import TelegramChannel

log = logging.getLogger(__name__)

DEFAULT_DECISIONS = ["accept", "acceptForSession", "decline", "cancel"]
LABELS = {
    "accept": "✅ Approve",
    "acceptForSession": "✅ Approve for session",
    "decline": "❌ Decline",
    "cancel": "⛔ Cancel turn",
}


def now_ms() -> int:
    """Wall-clock milliseconds."""
    return int(time.time() * 1000)


def describe(method: str, params: dict[str, Any]) -> str:
    """What is being asked, in a few lines of plain text."""
    lines = ["Approval needed"]
    if params.get("command"):
        lines.append(f"command: {str(params['command'])[:1500]}")
    if params.get("cwd"):
        lines.append(f"cwd: {str(params['cwd'])[:300]}")
    if params.get("reason"):
        lines.append(f"reason: {str(params['reason'])[:500]}")
    if len(lines) == 1:
        lines.append(method)
    return "\n".join(lines)


class Approvals:
    """The approval part of the Telegram channel."""

    def __init__(self, channel: TelegramChannel) -> None:
        self.channel = channel
        # Requests this channel is answering right now: the runtime's serverRequest/resolved
        # for them must not settle the message as merely "resolved" before we do.
        self._answering: set[tuple[str, str]] = set()

    def on_request(self, session: Session, request_id: Any, method: str, params: dict) -> None:
        """A runtime request on a thread bound to a chat: show it there."""
        if not method.endswith("/requestApproval"):
            return
        thread_id = params.get("threadId")
        key = self.channel.thread_chats.get((session.id, thread_id)) if thread_id else None
        if key is None:
            return
        decisions = [
            d for d in (params.get("availableDecisions") or DEFAULT_DECISIONS) if isinstance(d, str)
        ] or DEFAULT_DECISIONS
        self.channel.spawn(
            self._record, session.id, request_id, key, describe(method, params), decisions
        )

    async def _record(
        self, session_id: str, request_id: Any, key: str, text: str, decisions: list[str]
    ) -> None:
        request_key = json.dumps(request_id)

        def record(conn: Any) -> int | None:
            body = {"plain": text, "text": text, "requestId": request_id, "decisions": decisions}
            added = tgr.add_approval(conn, session_id, request_key, key, body, now_ms())
            if added is None:
                return None
            rowid = conn.execute(
                "SELECT rowid FROM tg_approvals WHERE session_id = ? AND request_key = ?",
                (session_id, request_key),
            ).fetchone()[0]
            body["buttons"] = [
                [LABELS.get(d, d), f"ap:{rowid}:{i}"] for i, d in enumerate(decisions)
            ]
            conn.execute(
                "UPDATE tg_outbox SET body = ? WHERE id = ?",
                (json.dumps(body, ensure_ascii=False), added),
            )
            return added

        if await self.channel.store.run(record) is not None:
            self.channel.outbox.wake()

    def on_answer(self, session: Session, request_id: Any, result: Any) -> None:
        """Another client answered first: show its decision in the chat."""
        decision = result.get("decision") if isinstance(result, dict) else None
        label = decision if isinstance(decision, str) else "answered"
        self.channel.spawn(self.settle, session.id, request_id, f"{label} (in another client)")

    def on_resolved(self, session: Session, request_id: Any) -> None:
        """The runtime says the request is no longer pending."""
        if (session.id, json.dumps(request_id)) not in self._answering:
            self.channel.spawn(self.settle, session.id, request_id, "resolved")

    async def settle(self, session_id: str, request_id: Any, outcome: str) -> None:
        """Record the outcome once and queue the message edit."""
        key = json.dumps(request_id)
        if await self.channel.store.run(tgr.settle_approval, session_id, key, outcome, now_ms()):
            self.channel.outbox.wake()

    async def _answer(
        self, session: Session, request_id: Any, decision: str, payload: dict[str, Any]
    ) -> bool:
        """Answer the runtime and settle the message, unless someone was first."""
        key = (session.id, json.dumps(request_id))
        self._answering.add(key)
        try:
            if not await session.answer_server_request(request_id, {"decision": decision}):
                return False
            await self.settle(session.id, request_id, f"{decision} by {payload.get('name')}")
            return True
        finally:
            self._answering.discard(key)

    async def on_press(self, row: tgr.InboxItem) -> None:
        """A stored button press: answer the runtime (first wins) and settle the message."""
        payload = row.payload
        store = self.channel.store
        answer = "Not allowed."
        data = str(payload.get("data", ""))
        found = None
        if data.startswith("ap:") and payload.get("allowed"):
            try:
                _, rowid, index = data.split(":")
                found = await store.run(_by_rowid, int(rowid))
            except ValueError:
                found = None
            answer = "This approval is no longer known."
        if found is not None:
            session_id, _key, body, outcome = found
            decisions = body.get("decisions") or []
            decision = decisions[int(index)] if int(index) < len(decisions) else None
            session = self.channel.manager.get(session_id)
            if outcome is not None:
                answer = f"Already answered: {outcome}"
            elif session is None or decision is None:
                answer = "This approval is no longer pending."
            elif await self._answer(session, body.get("requestId"), decision, payload):
                answer = f"{decision}: sent"
            else:
                answer = "Someone else answered first."
                await self.settle(session_id, body.get("requestId"), "answered elsewhere")
        await store.run(tgr.drop_inbox, row.id)
        try:
            await self.channel.api.call(
                "answerCallbackQuery",
                {"callback_query_id": payload.get("callbackId"), "text": answer[:200]},
                timeout=10.0,
            )
        except (TelegramError, NotSent, UnknownOutcome) as exc:
            log.debug("telegram: answerCallbackQuery failed: %s", exc)


def _by_rowid(conn: Any, rowid: int) -> tuple[str, str, dict, str | None] | None:
    row = conn.execute(
        "SELECT session_id, request_key, body, outcome FROM tg_approvals WHERE rowid = ?",
        (rowid,),
    ).fetchone()
    return (row[0], row[1], json.loads(row[2]), row[3]) if row else None


def request_id_of(params: dict[str, Any]) -> Any:
    """``requestId`` of a ``serverRequest/resolved`` notification."""
    return params.get("requestId")


__all__ = ["Approvals"]

"""What a gateway turn sends: the prompt text and the ``turn/start`` input items.

Glue between the engine and the prompt format (``prompts``): it picks the workspace the
gateway can read, reads the project context in a worker thread, and wraps the text the
way the original did. Follow-ups taken together keep the original's
``Follow-ups (batched):`` wrapper; a single input in ``each`` mode is sent as typed.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from ..store.records import SystemEvent
from ..workspace import bootstrap_templates
from . import heartbeat as hb
from . import prompts

if TYPE_CHECKING:
    from ..sessions.session import Session
    from .engine import Engine

MAX_EVENTS_PER_TURN = 20

USER_INSTRUCTIONS = """Instructions:
- If there is user input, answer it first.
- Then process each system event in order.
- If an event requires actions, perform them.
- End with a short summary of actions/results."""

HEARTBEAT_PROMPT = (
    "HEARTBEAT: You are running a background heartbeat. "
    "Read and follow HEARTBEAT.md in # Project Context."
)

HEARTBEAT_CONTRACT = "\n".join(
    [
        "Heartbeat response contract:",
        "- If nothing needs attention right now, reply exactly: HEARTBEAT_OK",
        "- If you have a user-visible update/alert, reply with the alert text only"
        " (do NOT include HEARTBEAT_OK).",
        "- Do NOT include meta/status text (timestamps, next schedule, 'heartbeat check',"
        " 'wrote memory', etc) unless it's part of the user-visible alert.",
        "",
        "Instructions:",
        "- Process each system event in order (if any).",
        "- If an event requires actions, perform them.",
        "- If there is no user-visible output, reply exactly: HEARTBEAT_OK",
    ]
)


def followup_text(texts: list[str], *, batched: bool) -> str:
    """One input as typed, or several in the original's batched wrapper."""
    if not batched and len(texts) == 1:
        return texts[0]
    lines = "\n".join(f"{i}) {t.strip()}" for i, t in enumerate(texts, 1))
    return "Follow-ups (batched):\n" + lines


def event_line(event: SystemEvent) -> str:
    """``[kind at=ISO meta=...] text``, the original's system-event line."""
    stamp = dt.datetime.fromtimestamp(event.created_at_ms / 1000, dt.UTC).isoformat()
    meta = f" meta={json.dumps(event.meta, ensure_ascii=False)}" if event.meta else ""
    return f"[{event.kind} at={stamp}{meta}] {event.text}".strip()


def assemble(context: str, text: str, events: list[SystemEvent], *, heartbeat: bool) -> str:
    """The original's prompt: context, input (or the heartbeat line), events, instructions."""
    blocks = [context] if context.strip() else []
    if heartbeat:
        blocks.append(HEARTBEAT_PROMPT)
    elif text.strip():
        blocks.append(text.strip())
    if events:
        blocks.append("System events (batched):\n" + "\n".join(event_line(e) for e in events))
    blocks.append(HEARTBEAT_CONTRACT if heartbeat else USER_INSTRUCTIONS)
    return "\n\n".join(b for b in blocks if b.strip()).strip()


def read_context(engine: Engine, session: Session, *, heartbeat: bool) -> str:
    """The ``# Project Context`` block from the session's workspace (blocking)."""
    workspace = session.workspace_path()
    if workspace is None:
        return ""
    if session.id not in engine.bootstrapped:
        bootstrap_templates(workspace)
        engine.bootstrapped.add(session.id)
    return (
        prompts.read_project_context(
            workspace,
            heartbeat=heartbeat,
            file_cap=engine.settings.prompt_file_max_bytes,
            total_cap=engine.settings.prompt_total_max_bytes,
        )
        or ""
    )


async def build(
    engine: Engine,
    session: Session,
    text: str,
    events: list[SystemEvent],
    *,
    heartbeat: bool,
) -> list[dict[str, Any]]:
    """The ``input`` items of a gateway ``turn/start``."""
    context = await engine.offload(lambda: read_context(engine, session, heartbeat=heartbeat))
    prompt = assemble(context, text, events, heartbeat=heartbeat)
    return [{"type": "text", "text": prompt, "text_elements": []}]


def extra_items(followups: list[Any]) -> list[dict[str, Any]]:
    """Input items queued with the follow-ups (a chat's photos), after the prompt text."""
    items: list[dict[str, Any]] = []
    for followup in followups:
        raw = getattr(followup, "input_items", None)
        if raw:
            try:
                decoded = json.loads(raw)
            except ValueError:
                continue
            items.extend(i for i in decoded if isinstance(i, dict))
    return items


def is_heartbeat_ok(text: str) -> bool:
    """A heartbeat reply that only acknowledges (``HEARTBEAT_OK``) is not delivered."""
    return hb.is_heartbeat_ok(text)

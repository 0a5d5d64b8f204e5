"""What the gateway does with node events: a finished background job becomes a system event.

``node.process.exited`` is queued as a ``process`` system event on the main thread of the
session the job belongs to, in the original's text format, so the agent learns about it on
its next turn (a main-thread event wakes the heartbeat). The session is the node's own for
a runtime node (a runtime can only report to its own session); a device connected with
the node token may name one in ``payload.sessionId``. Anything else is logged and dropped.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..nodes.registry import NodeConnection
from ..nodes.scope import RUNTIME_PREFIX
from . import api

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)
TAIL_CHARS = 4000


def process_exit_text(payload: dict[str, Any]) -> str:
    """The original's ``Background process finished.`` text."""
    lines = ["Background process finished.", f"jobId: {payload.get('jobId')}"]
    argv = payload.get("argv")
    if isinstance(argv, list) and all(isinstance(a, str) for a in argv):
        lines.append(f"command: {' '.join(argv)}")
    if isinstance(payload.get("cwd"), str):
        lines.append(f"cwd: {payload['cwd']}")
    parts = []
    if isinstance(payload.get("exitCode"), int):
        parts.append(f"exitCode={payload['exitCode']}")
    if payload.get("signal"):
        parts.append(f"signal={payload['signal']}")
    if payload.get("timedOut"):
        parts.append("timedOut=true")
    if parts:
        lines.append("result: " + " ".join(parts))
    for name in ("stdout", "stderr"):
        tail = payload.get(f"{name}Tail")
        if isinstance(tail, str) and tail.strip():
            lines += ["", f"{name} (tail):", tail.strip()[-TAIL_CHARS:]]
    lines += ["", "If you need more output, use `process.logs` with this jobId."]
    return "\n".join(lines)


def target_session(conn: NodeConnection, payload: dict[str, Any]) -> str | None:
    """Which session a node's event belongs to (None: nobody's)."""
    if conn.session_id is not None:
        return conn.session_id
    if conn.node_id.startswith(RUNTIME_PREFIX):
        return conn.node_id[len(RUNTIME_PREFIX) :]
    named = payload.get("sessionId")
    return named.strip() if isinstance(named, str) and named.strip() else None


def make_event_handler(engine: Engine | None) -> Any:
    """The ``/nodes/ws`` event callback, wired to the automation engine when there is one."""

    async def on_event(conn: NodeConnection, event: str, payload: dict[str, Any]) -> None:
        if event != "node.process.exited" or not payload.get("jobId"):
            return
        session_id = target_session(conn, payload)
        session = engine.session(session_id) if engine and session_id else None
        if session is None:
            log.info(
                "node event dropped (no session) node=%s job=%s", conn.node_id, payload.get("jobId")
            )
            return
        meta = {
            k: payload.get(k) for k in ("jobId", "argv", "cwd", "exitCode", "signal", "timedOut")
        }
        meta["nodeId"] = conn.node_id
        params = {"text": process_exit_text(payload), "kind": "process", "target": "main"}
        try:
            await api.enqueue_system_event(engine, session, params, meta=meta)  # type: ignore[arg-type]
        except Exception as exc:  # a full queue or a runtime that cannot start
            log.warning(
                "node event not queued node=%s session=%s: %s", conn.node_id, session.id, exc
            )

    return on_event

"""The daemon's automation: the engine, its clocks and its ``argus/*`` methods, together.

Why a module of its own: ``engine`` (lanes, workers, gateway turns) sits at the bottom of
the automation layer, and ``scheduler`` (watchdog, heartbeat, cron) and ``api`` (the
operations clients call) sit above it and call into it. This class is the one place that
knows all three, so none of them has to import upwards. It is what the daemon builds and
hands to the sessions as their ``SessionHooks``.
"""

from __future__ import annotations

from typing import Any

import trio

from ..sessions.session import Session
from . import api, scheduler
from .engine import Engine


class Automation(Engine):
    """The engine with the watchdog, heartbeat and cron loops, serving ``argus/*``."""

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the lane workers and the clocks until cancelled."""
        async with trio.open_nursery() as nursery:
            await nursery.start(super().serve)
            nursery.start_soon(scheduler.serve_watchdog, self)
            nursery.start_soon(scheduler.serve_heartbeat, self)
            nursery.start_soon(scheduler.serve_cron, self)
            task_status.started()

    async def call_gateway_method(
        self, session: Session, method: str, params: dict[str, Any]
    ) -> Any:
        """``argus/*`` methods: see ``api``."""
        return await api.call(self, session, method, params)

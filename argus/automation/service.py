"""The daemon's automation: the engine, its clocks and its ``argus/*`` methods, together.

Why a module of its own: ``engine`` (lanes, workers, gateway turns) sits at the bottom of
the automation layer, and ``scheduler`` (watchdog, heartbeat, cron) and ``api`` (the
operations clients call) sit above it and call into it. This class is the one place that
knows all three, so none of them has to import upwards. It is what the daemon builds and
hands to the sessions as their ``SessionHooks``.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from ..protocol import codes
from ..sessions.hooks import GatewayMethodError
from ..sessions.session import Session
from ..store.db import StoreUnavailable
from . import api, scheduler
from .engine import Engine

log = logging.getLogger(__name__)


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
        """``argus/*`` methods: see ``api``. A store that cannot write is the caller's error."""
        try:
            return await api.call(self, session, method, params)
        except StoreUnavailable as exc:
            log.warning("store unavailable for %s session=%s: %s", method, session.id, exc)
            message = f"Store unavailable, nothing was changed; retry later ({exc})"
            raise GatewayMethodError(codes.STORE_UNAVAILABLE, message) from None

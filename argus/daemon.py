"""The daemon's task tree: one nursery owning the HTTP server and the session manager.

``trio.run(daemon.serve, settings)``::

    daemon nursery                a crash in any child ends the process non-zero
    ├── SessionManager.serve      every Session's nursery lives under it
    ├── hypercorn.trio.serve      HTTP and /ws
    └── signal watcher            SIGINT/SIGTERM -> graceful shutdown

Graceful shutdown is bounded by ARGUS_SHUTDOWN_TIMEOUT_S: clients are closed with 1001 and
runtimes are stopped first, then the HTTP server is told to finish; whatever is left when
the deadline passes is cancelled.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from .config import Settings
from .nodes.wiring import NodesWiring
from .provision.base import Provisioner
from .provision.local import LocalProvisioner
from .provision.tcp import TcpProvisioner
from .sessions.manager import SessionManager
from .web import stallguard
from .web.asgi import ArgusAsgi
from .web.http import build_http_app
from .web.ws import WsEndpoint

log = logging.getLogger(__name__)


class UnsupportedMode(Exception):
    """The configured provision mode is not available in this build."""


def make_provisioner(settings: Settings) -> Provisioner:
    """The provisioner for ARGUS_PROVISION_MODE."""
    if settings.provision_mode == "local":
        return LocalProvisioner(settings)
    if settings.provision_mode == "tcp":
        return TcpProvisioner(settings)
    raise UnsupportedMode(
        "ARGUS_PROVISION_MODE=docker: the docker provisioner is not available in this build yet"
    )


def hypercorn_config(settings: Settings) -> HypercornConfig:
    """Hypercorn settings derived from ours (no access log: it would print query tokens)."""
    config = HypercornConfig()
    host = settings.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    config.bind = [f"{host}:{settings.port}"]
    config.accesslog = None
    # A gateway restart brings every client back at once; hypercorn's default listen
    # backlog (100) drops SYNs in such a storm and stalls reconnects for seconds.
    config.backlog = 2048
    config.errorlog = logging.getLogger("hypercorn.error")
    config.websocket_max_message_size = settings.ws_max_message_bytes
    config.graceful_timeout = settings.shutdown_timeout_s
    config.argus_send_stall_timeout_s = settings.ws_send_timeout_s  # read by stallguard
    return config


def build_asgi(
    settings: Settings, manager: SessionManager, nodes: NodesWiring | None = None
) -> ArgusAsgi:
    """The ASGI app: raw /ws (and /nodes/ws) plus the Quart HTTP API."""
    http_app = build_http_app(settings, manager)
    ws_routes: dict = {"/ws": WsEndpoint(settings, manager)}
    if nodes is not None:  # nodes (issue 5)
        ws_routes.update(nodes.install(http_app))
    return ArgusAsgi(http_app, ws_routes)


def tune_gc() -> None:
    """Make the cyclic GC rarer: the reader allocates a dict per runtime line.

    With the default thresholds a streaming turn triggers a collection every 700 lines,
    each walking the replay log's entries; that alone cost ~40 % of the reader's time.
    Objects alive at start-up (imports, config) are frozen out of collections entirely.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


async def serve(
    settings: Settings, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the daemon until SIGINT/SIGTERM (or cancellation)."""
    tune_gc()
    provisioner = make_provisioner(settings)
    manager = SessionManager(settings, provisioner)
    nodes = await NodesWiring.create(settings, manager)  # nodes (issue 5)
    app = build_asgi(settings, manager, nodes)
    stallguard.install()
    stop_http = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.serve)
        binds = await nursery.start(
            partial(
                hypercorn_serve, app, hypercorn_config(settings), shutdown_trigger=stop_http.wait
            )
        )
        for bind in binds:
            # Printed whatever the log level: users and scripts read the bound port here.
            print(f"argus: listening on {bind}", file=sys.stderr, flush=True)
        log.info("provision mode: %s", provisioner.describe())
        nodes.set_bound(binds)
        task_status.started(binds)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                break
        nursery.start_soon(_force_on_second_signal, nursery.cancel_scope)
        with trio.move_on_after(settings.shutdown_timeout_s) as scope:
            await manager.stop_all()
            stop_http.set()
        if scope.cancelled_caught:
            log.warning("shutdown deadline passed; cancelling what is left")
        nursery.cancel_scope.cancel()
    log.info("stopped")


async def _force_on_second_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            log.warning("second signal: stopping now")
            scope.cancel()
            return

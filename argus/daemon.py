"""The daemon's task tree: one nursery owning the HTTP server and the session manager.

``trio.run(daemon.serve, settings)``::

    daemon nursery                only a bug outside every boundary ends the process
    ├── SessionManager.serve      every Session's nursery lives under it
    ├── Automation.serve          lane workers, watchdog, heartbeat, cron
    ├── channels (Telegram)       poller, inbox dispatcher, outbox sender, live feedback
    ├── hypercorn.trio.serve      HTTP and /ws
    └── signal watcher            SIGINT/SIGTERM -> graceful shutdown

Failure boundaries (``argus.boundary``, docs/architecture.md) keep what one client or one
session triggers inside that client's connection or that session.

Graceful shutdown is bounded by ARGUS_SHUTDOWN_TIMEOUT_S: clients are closed with 1001 and
runtimes are stopped first, then the HTTP server is told to finish; whatever is left when
the deadline passes is cancelled.
"""

from __future__ import annotations

import logging
import signal
import sys
from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from . import memory, metrics
from .auth import gateway_secret
from .automation import heartbeat
from .automation.cron_api import make_cron_provider
from .automation.node_events import make_event_handler
from .automation.service import Automation
from .channels.base import ChannelHub
from .config import ConfigError, Settings
from .nodes.registry import NodeRegistry
from .nodes.scope import Scopes, parse_allow_list
from .nodes.tools import NodeTools
from .provision.base import GatewayLink, Provisioner
from .provision.docker import DockerProvisioner
from .provision.local import LocalProvisioner
from .provision.swarm import SwarmProvisioner
from .provision.tcp import TcpProvisioner
from .sessions.manager import SessionManager, SessionTable
from .store.db import Store, open_store
from .web import authlimit
from .web.asgi import ArgusAsgi
from .web.codex_remote import CodexRemoteEndpoint
from .web.console_http import add_console_routes
from .web.http import admin_only, build_http_app
from .web.mcp import McpServer, add_mcp_routes
from .web.nodes_http import add_nodes_routes
from .web.nodes_ws import NodesEndpoint
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
    if settings.provision_mode == "swarm":
        return SwarmProvisioner(settings)
    return DockerProvisioner(settings)


def hypercorn_config(settings: Settings) -> HypercornConfig:
    """Hypercorn settings derived from ours (no access log: it would print query tokens)."""
    config = HypercornConfig()
    host = settings.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    config.bind = [f"{host}:{settings.port}"]
    if settings.tls_certfile is not None and settings.tls_keyfile is not None:
        # hypercorn's own TLS on the one public port (https:// and wss://). Runtimes on this
        # machine call the gateway back on a loopback-only plain port instead, so they need
        # not trust the certificate (their calls carry session tokens all the same).
        config.certfile = str(settings.tls_certfile)
        config.keyfile = str(settings.tls_keyfile)
        config.insecure_bind = ["127.0.0.1:0"]
    config.accesslog = None
    # A gateway restart brings every client back at once; hypercorn's default listen
    # backlog (100) drops SYNs in such a storm and stalls reconnects for seconds.
    config.backlog = 2048
    config.errorlog = logging.getLogger("hypercorn.error")
    config.websocket_max_message_size = settings.ws_max_message_bytes
    config.graceful_timeout = settings.shutdown_timeout_s
    config.argus_send_stall_timeout_s = settings.ws_send_timeout_s  # read by stallguard
    return config


def check_settings(settings: Settings) -> None:
    """Cross-module checks ``load_settings`` cannot do; raises ConfigError/UnsupportedMode."""
    make_provisioner(settings)
    if settings.heartbeat_active_hours:
        try:
            heartbeat.parse_active_hours(settings.heartbeat_active_hours)
        except ValueError as exc:
            raise ConfigError(f"ARGUS_HEARTBEAT_ACTIVE_HOURS: {exc}") from None
    from .channels.telegram import settings as telegram_settings

    telegram_settings.load()


def make_channels(
    settings: Settings, store: Store, manager: SessionManager, automation: Automation
) -> ChannelHub:
    """The chat channels that are configured (Telegram when its bot token is set)."""
    hub = ChannelHub()
    from .channels.telegram import settings as telegram_settings

    telegram = telegram_settings.load()
    if telegram is not None:
        from dataclasses import replace

        from .channels.telegram.service import TelegramChannel

        telegram = replace(telegram, state_dir=str(settings.home_host_path / "gateway"))
        hub.add(TelegramChannel(telegram, store, manager, automation))
    if hub.channels:
        automation.observer = hub
    return hub


def build_asgi(
    settings: Settings,
    manager: SessionManager,
    automation: Automation | None = None,
    secret: str = "",
) -> tuple[ArgusAsgi, NodeRegistry]:
    """The ASGI app (raw /ws and /nodes/ws, the Quart HTTP API with /mcp) and the registry."""
    registry = NodeRegistry(settings.node_invoke_max_ms)
    scopes = Scopes(
        settings.admin_token,
        settings.node_token_value,
        secret,
        parse_allow_list(settings.node_allow),
        session_exists=lambda session_id: manager.get(session_id) is not None,
    )
    tools = NodeTools(registry, scopes, make_cron_provider(automation) if automation else None)
    http_app = build_http_app(settings, manager, automation)
    add_nodes_routes(http_app, admin_only(settings), registry)
    add_console_routes(http_app, admin_only(settings), settings, manager)
    add_mcp_routes(
        http_app,
        McpServer(tools, settings.mcp_session_ttl_s, settings.mcp_max_sessions),
        scopes,
        settings.allowed_origins,
    )
    ws_routes = {
        "/": CodexRemoteEndpoint(settings, manager, secret),
        "/ws": WsEndpoint(settings, manager),
        "/nodes/ws": NodesEndpoint(
            registry, scopes, make_event_handler(automation), settings.allowed_origins
        ),
    }
    return ArgusAsgi(http_app, ws_routes), registry


def watch_for_metrics(manager: SessionManager, registry: NodeRegistry, store: Store) -> None:
    """Point /metrics at the live objects its gauges are read from."""

    async def refresh() -> None:
        metrics.SOURCES.queue_depths = await store.run(metrics.queue_depths)

    metrics.SOURCES.sessions = lambda: list(manager.sessions.values())
    metrics.SOURCES.nodes_connected = lambda: len(registry.nodes)
    metrics.SOURCES.refresh = refresh


async def serve(
    settings: Settings, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the daemon until SIGINT/SIGTERM (or cancellation).

    Process-wide tweaks (GC thresholds, hypercorn's send guard) are the entry point's
    (``cli.run_serve``), not this function's: it only builds and runs the object tree.
    """
    provisioner = make_provisioner(settings)
    store = await open_store(settings.home_host_path)
    secret = await trio.to_thread.run_sync(gateway_secret, settings)
    sessions = SessionTable()
    automation = Automation(settings, store, sessions)
    manager = SessionManager(
        settings, provisioner, hooks=automation, store=store, sessions=sessions
    )
    app, registry = build_asgi(settings, manager, automation, secret)
    authlimit.LIMITER.configure(settings.auth_fail_limit, settings.auth_fail_window_s)
    watch_for_metrics(manager, registry, store)
    channels = make_channels(settings, store, manager, automation)
    stop_http = trio.Event()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(manager.serve)
            await automation.load_starting()  # before any runtime is adopted
            nursery.start_soon(memory.trim_periodically, settings.malloc_trim_s)
            for channel in channels.channels:  # before re-adoption: it replays turn results
                await nursery.start(channel.serve)
            binds = await nursery.start(
                partial(
                    hypercorn_serve,
                    app,
                    hypercorn_config(settings),
                    shutdown_trigger=stop_http.wait,
                )
            )
            public = [b for b in binds if b.startswith("https://")] or binds
            for bind in public:
                # Printed whatever the log level: users and scripts read the bound port here.
                print(f"argus: listening on {bind}", file=sys.stderr, flush=True)
            link = next(b for b in binds if b.startswith("http://"))
            if public is not binds:
                log.info("runtimes reach the gateway on %s (loopback only, no TLS)", link)
            provisioner.gateway = GatewayLink(loopback_url(link), secret)
            await manager.readopt_live()
            # Automation starts once runtimes can reach the gateway (their node-host, MCP).
            await nursery.start(automation.serve)
            log.info("provision mode: %s", provisioner.describe())
            task_status.started(binds)
            await _wait_for_signal()
            nursery.start_soon(_force_on_second_signal, nursery.cancel_scope)
            with trio.move_on_after(settings.shutdown_timeout_s) as scope:
                await manager.stop_all()
                stop_http.set()
            if scope.cancelled_caught:
                log.warning("shutdown deadline passed; cancelling what is left")
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()
    log.info("stopped")


def loopback_url(bind: str) -> str:
    """How a local runtime reaches the gateway: the bound URL, a wildcard host made loopback."""
    scheme, _, rest = bind.partition("://")
    host, _, port = rest.rpartition(":")
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host in ("[::]", "::"):
        host = "[::1]"
    return f"{scheme}://{host}:{port}"


async def _wait_for_signal() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            return


async def _force_on_second_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            log.warning("second signal: stopping now")
            scope.cancel()
            return

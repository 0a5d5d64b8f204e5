"""The gateway program's commands: ``argus serve`` and ``argus import-state``.

``argus --help`` also lists the other programs (bridge, node-host, demo-runtime, and the
client commands sessions/send/tail), which ``argus.__main__`` runs without this module.

Configuration errors exit with code 2 and one line naming the variable or flag, before
anything listens or spawns; no traceback, because they are the user's to fix, not bugs.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from . import daemon
from .automation.importer import import_legacy
from .automation.legacy_state import LegacyStateError, load
from .config import ConfigError, Settings, env_name, load_settings
from .procs import now_ms
from .sessions.manager import valid_session_id
from .store.db import StoreError, open_store
from .web import fastws, stallguard, wsclose

EXIT_CONFIG = 2
EXIT_STORE = 3  # the database cannot be used; it was left untouched

# The client commands (argus.client.cli, a program of its own), listed in ``argus --help``.
CLIENT_COMMANDS = {
    "sessions": "list the gateway's sessions (or: sessions rm ID)",
    "send": "run one turn and stream the reply",
    "tail": "print a session's messages as JSON lines",
}

SERVE_EPILOG = """\
Every option can also be set with an environment variable (shown in brackets); a flag wins
over the variable. Variables without a flag:
  ARGUS_TOKEN                   admin token for /ws and the HTTP API (empty: auth off,
                                which is only allowed on a loopback bind)
  ARGUS_ALLOWED_ORIGINS         comma-separated extra WebSocket Origins (loopback always ok)
  ARGUS_TCP_HOST, ARGUS_TCP_PORT    runtime endpoint for --provision-mode tcp
  ARGUS_JSONL_LINE_LIMIT_BYTES  longest runtime output line (default 128 MiB; longer are dropped)
  ARGUS_CONNECT_TIMEOUT_S       runtime connect timeout (default 30)
  ARGUS_REPLAY_BUFFER_BYTES     per-session replay log for reconnects (default 16 MiB)
  ARGUS_CLIENT_QUEUE_BYTES      how far a client may lag before close 1013 (default 8 MiB)
  ARGUS_COALESCE_DELTAS         0 disables delta coalescing for lagging clients (default 1)
  ARGUS_WS_MAX_MESSAGE_BYTES    largest client frame (default 16 MiB)
  ARGUS_WS_SEND_TIMEOUT_S       drop a peer whose socket accepts nothing this long (default 30)
  ARGUS_MAX_INFLIGHT_REQUESTS   requests in flight per session (default 4096)
  ARGUS_MAX_SESSIONS            sessions at once (default 1000)
  ARGUS_MCP_MAX_SESSIONS        MCP sessions kept, least recently used dropped (default 10000)
  ARGUS_MALLOC_TRIM_S           return freed heap to the OS this often (default 30, 0 never)
  ARGUS_STDERR_TAIL_BYTES       runtime stderr kept for diagnostics (default 16 KiB)
  ARGUS_STOP_TIMEOUT_S          per step of stopping a runtime (default 5)
  ARGUS_SHUTDOWN_TIMEOUT_S      graceful shutdown deadline (default 10)
"""

# Settings that `argus serve` also takes as flags (the rest are variables only).
FLAG_FIELDS = {
    "host",
    "port",
    "insecure",
    "provision_mode",
    "runtime_cmd",
    "home_host_path",
    "workspace_host_path",
    "log_level",
    "tls_certfile",
    "tls_keyfile",
}


def serve_epilog() -> str:
    """The variables above, plus every other setting, described from the Settings model.

    Generated so that a new setting can never be missing from ``--help``.
    """
    lines = [SERVE_EPILOG]
    for name, field in Settings.model_fields.items():
        var = env_name(name)
        if name in FLAG_FIELDS or var in SERVE_EPILOG:
            continue
        default = field.get_default(call_default_factory=False)
        shown = "" if default is None else f" (default {default})"
        lines.append(f"  {var:<29} {field.description or ''}{shown}\n")
    lines.append("See docs/operations.md for the full list.\n")
    return "".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with every option documented."""
    parser = argparse.ArgumentParser(
        prog="argus",
        description="Argus puts agent runtimes (codex app-server and friends) on the network.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    serve = sub.add_parser(
        "serve",
        help="run the gateway",
        description="Run the Argus gateway: WebSocket /ws, the HTTP API, and sessions.",
        epilog=serve_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", help="bind address [ARGUS_HOST] (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=str, help="bind port, 0 = any free [ARGUS_PORT] (default 8080)"
    )
    serve.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="allow a non-loopback bind without ARGUS_TOKEN [ARGUS_INSECURE]",
    )
    serve.add_argument(
        "--provision-mode",
        help="where session runtimes run: local | tcp | docker | swarm [ARGUS_PROVISION_MODE] "
        "(default local)",
    )
    serve.add_argument(
        "--runtime-cmd",
        help="runtime command, run with sh -c [ARGUS_RUNTIME_CMD] "
        "(default: the bundled argus demo-runtime)",
    )
    serve.add_argument(
        "--home",
        dest="home_host_path",
        help="state directory; sessions live under HOME/sessions [ARGUS_HOME_HOST_PATH] "
        "(default ~/.argus)",
    )
    serve.add_argument(
        "--workspace",
        dest="workspace_host_path",
        help="shared workspace for runtimes [ARGUS_WORKSPACE_HOST_PATH] "
        "(default: each session's HOME/sessions/<id>/workspace)",
    )
    serve.add_argument(
        "--certfile",
        dest="tls_certfile",
        help="PEM certificate: serve https:// and wss:// on the same port [ARGUS_TLS_CERTFILE]",
    )
    serve.add_argument(
        "--keyfile", dest="tls_keyfile", help="PEM private key of --certfile [ARGUS_TLS_KEYFILE]"
    )
    serve.add_argument(
        "--log-level", help="debug | info | warning | error [ARGUS_LOG_LEVEL] (default info)"
    )

    imp = sub.add_parser(
        "import-state",
        help="import the original gateway's (or Telegram bot's) state.json into the store",
        description="Copy sessions, main threads, queued system events, cron jobs and "
        "Telegram bindings from the original gateway's state.json into Argus's store; "
        "or, given the original Telegram bot's state.json (version 2), its last update id, "
        "chat -> thread mappings and default session. "
        "Existing entries are kept. Restart the daemon afterwards to pick them up.",
    )
    imp.add_argument("state_file", help="path to state.json")
    imp.add_argument(
        "--home",
        dest="home_host_path",
        help="state directory [ARGUS_HOME_HOST_PATH] (default ~/.argus)",
    )

    bridge = sub.add_parser(
        "bridge",
        help="run one runtime behind a replayable stream (started by the gateway)",
        add_help=False,
    )
    bridge.add_argument("args", nargs=argparse.REMAINDER, help="options of the bridge")

    node = sub.add_parser(
        "node-host",
        help="offer this machine's commands to a gateway (see argus node-host --help)",
        add_help=False,
    )
    node.add_argument("args", nargs=argparse.REMAINDER, help="options of the node-host")

    demo = sub.add_parser(
        "demo-runtime",
        help="run the bundled reference runtime on stdio",
        description="A small app-server-compatible runtime speaking JSONL on stdin/stdout.",
        add_help=False,
    )
    demo.add_argument("args", nargs=argparse.REMAINDER, help="options of the demo runtime")

    for name, summary in CLIENT_COMMANDS.items():
        client = sub.add_parser(name, help=summary, add_help=False)
        client.add_argument("args", nargs=argparse.REMAINDER, help=f"see argus {name} --help")
    return parser


def configure_logging(level: str, fmt: str = "text") -> None:
    """Plain key=value lines on stderr, or one JSON object per line (ARGUS_LOG_FORMAT=json)."""
    from .logfmt import JsonFormatter

    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])
    logging.getLogger("hypercorn.error").setLevel(logging.WARNING)


def tune_gc() -> None:
    """Make the cyclic GC rarer: the gateway's reader allocates a dict per runtime line.

    With the default thresholds a streaming turn triggers a collection every 700 lines,
    each walking the replay log's entries; that alone cost ~40 % of the reader's time.
    Objects alive at start-up (imports, config) are frozen out of collections entirely.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def run_serve(options: argparse.Namespace) -> int:
    """``argus serve``: validate, then run the daemon until a signal."""
    cli = {key: getattr(options, key) for key in FLAG_FIELDS}
    try:
        settings: Settings = load_settings(cli)
        daemon.check_settings(settings)
    except (ConfigError, daemon.UnsupportedMode) as exc:
        print(f"argus: invalid configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log_level, settings.log_format)
    if settings.runtime_cmd is None and settings.provision_mode == "local":
        print(
            "argus: ARGUS_RUNTIME_CMD is not set; sessions run the bundled demo runtime "
            "(argus demo-runtime)",
            file=sys.stderr,
        )
    # Process-wide tweaks, once, here: they change every object of the process.
    stallguard.install()  # hypercorn's trio writes get a deadline (ARGUS_WS_SEND_TIMEOUT_S)
    wsclose.install()  # a frame wsproto refuses (invalid UTF-8) gets a close frame, not 1006
    if settings.ws_fast_path:
        # WebSocket upgrades served on wsproto directly (web/fastws.py, the same rules);
        # ARGUS_WS_FAST_PATH=0 leaves them to hypercorn's stack, patched as above.
        fastws.install()
    tune_gc()
    try:
        trio.run(daemon.serve, settings)
    except KeyboardInterrupt:
        return 130
    except StoreError as exc:
        print(f"argus: {exc}", file=sys.stderr)
        return EXIT_STORE
    return 0


def _read_json(path: Path) -> object:
    """The decoded file, or None when it is not readable JSON (``load`` then says why)."""
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def run_import_state(options: argparse.Namespace) -> int:
    """``argus import-state FILE``: one transaction; prints what was imported as JSON."""
    try:
        settings = load_settings({"home_host_path": options.home_host_path})
    except ConfigError as exc:
        print(f"argus: invalid configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    async def run() -> dict:
        from .store import telegram_import

        path = Path(options.state_file)
        raw = await trio.to_thread.run_sync(_read_json, path)
        bot_state = telegram_import.looks_like_bot_state(raw)
        state = None if bot_state else await trio.to_thread.run_sync(load, path)
        store = await open_store(settings.home_host_path)
        try:
            now = now_ms()
            mode = settings.provision_mode
            if bot_state:
                return await store.run(
                    telegram_import.import_bot_state, raw, mode, now, valid_session_id
                )
            return await store.run(import_legacy, state, mode, now, valid_session_id)
        finally:
            await store.aclose()

    try:
        summary = trio.run(run)
    except LegacyStateError as exc:
        print(f"argus: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreError as exc:
        print(f"argus: {exc}", file=sys.stderr)
        return EXIT_STORE
    print(json.dumps(summary, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    options = build_parser().parse_args(args)
    if options.command == "serve":
        return run_serve(options)
    if options.command == "import-state":
        return run_import_state(options)
    if options.command is not None:  # a program (bridge, node-host, ...): see __main__
        dispatcher = importlib.import_module("argus.__main__")
        return dispatcher.main([options.command, *options.args])
    return EXIT_CONFIG  # pragma: no cover - argparse enforces the choices


if __name__ == "__main__":
    raise SystemExit(main())

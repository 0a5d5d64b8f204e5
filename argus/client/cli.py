"""The client commands: ``argus sessions``, ``argus sessions rm``, ``argus send``, ``argus tail``.

Why in the library's package: they are thin uses of ``argus.client`` (and of the HTTP API
for listing and deleting), and what a user types first to see the gateway work. Each reads
``ARGUS_URL`` (default http://127.0.0.1:8080) and ``ARGUS_TOKEN`` from the environment; the
token is never taken as a flag, so it cannot leak through ``ps`` or shell history.
``ARGUS_CA_FILE`` (or ``--cafile``) names a certificate to trust for a self-signed
``https://``/``wss://`` gateway.

Exit codes: 0 done, 1 the turn did not complete (or no such session), 2 bad usage,
3 the gateway cannot be reached or refused us.

It is a program of its own (``main(argv)``), like the bridge and the node-host: the ``argus``
command hands it its arguments, so a client never loads the gateway's modules.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from .connection import DEFAULT_URL, ArgusClientError, Endpoint, ssl_context

COMMANDS = ("sessions", "send", "tail")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

ENV_HELP = """\
environment:
  ARGUS_URL      the gateway, http(s):// or ws(s):// (default http://127.0.0.1:8080)
  ARGUS_TOKEN    its admin token (unset: auth off)
  ARGUS_CA_FILE  a certificate to trust for https:// and wss:// (a self-signed gateway)
"""


def build_parser() -> argparse.ArgumentParser:
    """``argus sessions|send|tail``, every option documented."""
    parser = argparse.ArgumentParser(prog="argus", description="Argus client commands.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_client_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the client commands (``argus sessions|send|tail ...``)."""
    options = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    return run_client_command(options)


def add_client_commands(sub: Any) -> None:
    """Add the client subcommands to a parser's subparsers."""
    formatter = argparse.RawDescriptionHelpFormatter
    sessions = sub.add_parser(
        "sessions",
        help="list the gateway's sessions (or: sessions rm ID)",
        description="List the gateway's sessions; the default session is marked with *.",
        epilog=ENV_HELP,
        formatter_class=formatter,
    )
    sessions.add_argument("--json", action="store_true", help="print the raw JSON")
    _common(sessions)
    actions = sessions.add_subparsers(dest="action", metavar="ACTION")
    rm = actions.add_parser(
        "rm",
        help="delete a session",
        description="Stop a session's runtime, close its clients and forget it. Deleting "
        "the default session is allowed: the next use creates a new one.",
        epilog=ENV_HELP,
        formatter_class=formatter,
    )
    rm.add_argument("session_id", metavar="ID", help="the session to delete")
    rm.add_argument("--purge", action="store_true", help="also remove its files")
    _common(rm)

    send = sub.add_parser(
        "send",
        help="run one turn and stream the reply",
        description="Run one turn with TEXT and stream the agent's reply to stdout. An "
        "approval the runtime asks for is asked on the terminal (y/N; no answer declines). "
        "Exits 1 when the turn does not complete.",
        epilog=ENV_HELP,
        formatter_class=formatter,
    )
    send.add_argument("text", metavar="TEXT", help="what to say")
    send.add_argument("--session", default="default", help="session id, or 'default' (the default)")
    send.add_argument("--thread", help="continue this thread (else a new thread is started)")
    _common(send)

    tail = sub.add_parser(
        "tail",
        help="print a session's messages as JSON lines",
        description="Print every message of a session as one JSON line (with its argusSeq), "
        "resuming after a disconnect or a gateway restart without losing or repeating any. "
        "Runs until interrupted.",
        epilog=ENV_HELP,
        formatter_class=formatter,
    )
    tail.add_argument("--session", default="default", help="session id (default: 'default')")
    tail.add_argument(
        "--since", type=int, help="start after this sequence number (else: from now on)"
    )
    _common(tail)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="the gateway (default $ARGUS_URL or http://127.0.0.1:8080)")
    parser.add_argument("--cafile", help="certificate to trust (default $ARGUS_CA_FILE)")


def _settings(options: argparse.Namespace) -> tuple[str, str | None, str | None]:
    url = options.url or os.environ.get("ARGUS_URL") or DEFAULT_URL
    token = os.environ.get("ARGUS_TOKEN", "").strip() or None
    cafile = options.cafile or os.environ.get("ARGUS_CA_FILE") or None
    return url, token, cafile


def _fail(message: str, code: int) -> int:
    print(f"argus: {message}", file=sys.stderr)
    return code


def run_client_command(options: argparse.Namespace) -> int:
    """Run ``sessions``/``send``/``tail``; returns the exit code."""
    url, token, cafile = _settings(options)
    try:
        Endpoint.parse(url)
        if options.command == "sessions":
            return _sessions(options, url, token, cafile)
        import trio

        if options.command == "send":
            return trio.run(_send, options, url, token, cafile)
        return trio.run(_tail, options, url, token, cafile)
    except KeyboardInterrupt:
        return 130
    except ArgusClientError as exc:
        return _fail(str(exc), EXIT_UNREACHABLE)


# -- sessions -------------------------------------------------------------------------


def _sessions(options: argparse.Namespace, url: str, token: str | None, cafile: str | None) -> int:
    import httpx

    endpoint = Endpoint.parse(url)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    verify: Any = ssl_context(cafile) if endpoint.secure else True
    try:
        with httpx.Client(
            base_url=endpoint.http_url, headers=headers, verify=verify, timeout=30
        ) as http:
            if options.action == "rm":
                params = {"purge": "1"} if options.purge else {}
                response = http.delete(f"/sessions/{options.session_id}", params=params)
                if response.status_code == 404:
                    return _fail(f"no session {options.session_id}", EXIT_FAILED)
                response.raise_for_status()
                print(f"deleted {options.session_id}")
                return EXIT_OK
            response = http.get("/sessions")
            response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        return _fail(f"{exc.response.status_code} {exc.response.text.strip()}", EXIT_UNREACHABLE)
    except httpx.HTTPError as exc:
        return _fail(f"cannot reach {endpoint.http_url}: {exc}", EXIT_UNREACHABLE)
    sessions = response.json()["sessions"]
    if options.json:
        print(json.dumps(sessions, indent=2))
        return EXIT_OK
    print(format_sessions(sessions))
    return EXIT_OK


def format_sessions(sessions: list[dict[str, Any]]) -> str:
    """A table of ``GET /sessions`` entries; the default session marked with ``*``."""
    rows = [("SESSION", "MODE", "STATE", "CLIENTS", "SEQ")]
    for entry in sessions:
        mark = " *" if entry.get("default") else ""
        rows.append(
            (
                f"{entry['sessionId']}{mark}",
                str(entry.get("mode", "")),
                str(entry.get("state", "")),
                str(entry.get("clients", "")),
                str(entry.get("seq", "")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


# -- send -----------------------------------------------------------------------------


def _read_answer(prompt: str) -> str:
    print(prompt, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline()


async def ask_on_terminal(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """An approval asked on the terminal: ``y`` accepts, anything else (or EOF) declines."""
    import trio

    what = params.get("command") or params.get("reason") or params.get("itemId") or ""
    print(f"\nargus: the agent asks ({method}): {what}", file=sys.stderr)
    answer = await trio.to_thread.run_sync(_read_answer, "approve? [y/N] ", abandon_on_cancel=True)
    decision = "accept" if answer.strip().lower() in ("y", "yes") else "decline"
    print(f"argus: {decision}", file=sys.stderr)
    return {"decision": decision}


async def _send(
    options: argparse.Namespace, url: str, token: str | None, cafile: str | None
) -> int:
    from .connection import RpcError
    from .session import open_session

    def write(delta: str) -> None:
        sys.stdout.write(delta)
        sys.stdout.flush()

    async with open_session(
        url,
        token=token,
        session=options.session,
        on_approval=ask_on_terminal,
        cafile=cafile,
        client_name="argus-send",
    ) as session:
        try:
            if options.thread:
                await session.request("thread/resume", {"threadId": options.thread})
                thread = options.thread
            else:
                thread = await session.start_thread()
                print(f"argus: session {session.id}, thread {thread}", file=sys.stderr)
            result = await session.run_turn(thread, options.text, on_delta=write)
        except RpcError as exc:
            return _fail(str(exc), EXIT_FAILED)
    print()
    if not result.ok:
        detail = f": {result.error}" if result.error else ""
        return _fail(f"turn {result.status}{detail}", EXIT_FAILED)
    return EXIT_OK


# -- tail -----------------------------------------------------------------------------


async def _tail(
    options: argparse.Namespace, url: str, token: str | None, cafile: str | None
) -> int:
    from .session import open_session

    async with open_session(
        url,
        token=token,
        session=options.session,
        since=options.since,
        cafile=cafile,
        initialize=False,
        client_name="argus-tail",
    ) as session:
        async with session.notifications() as stream:
            async for message in stream:
                sys.stdout.write(json.dumps(message, ensure_ascii=False) + "\n")
                sys.stdout.flush()
    return EXIT_OK

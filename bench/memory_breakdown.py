"""Where an idle client's bytes go: the gateway's Python heap, by component (tracemalloc).

``python -m bench.memory_breakdown attached|own-tcp [N]`` runs the daemon in this process
under tracemalloc, has a separate client process (``bench.scale_bench`` helpers) open N
idle connections (attached to one session, or each with its own ``tcp`` session against
``bench.bench_runtime``), waits for idle senders to exit, and prints the heap growth per
connection grouped by component: hypercorn, wsproto, h11, trio (tasks, sockets, events,
cancel scopes), Argus's web layer, sessions, provisioners, automation. RSS (what
``bench.scale_bench`` reports) adds the allocator's overhead and fragmentation on top.
"""

from __future__ import annotations

import collections
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

import trio

from argus import daemon
from argus.config import load_settings
from argus.sessions.subscriber import IDLE_EXIT_S
from argus.web import fastws
from bench.scale_bench import stdio_runtime_cmd, tcp_runtime

HOLDER = """
import sys
from bench.scale_bench import open_client, open_many
port, query, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
if query == "attach":
    first, session = open_client(port, "")
    query = f"?session={session}"
else:
    query = ""
held = open_many(port, query, n)
print("ready", flush=True)
sys.stdin.read()
"""

GROUPS = (
    ("hypercorn", "hypercorn/"),
    ("wsproto", "wsproto/"),
    ("h11", "h11/"),
    ("trio", "trio/"),
    ("argus web", "argus/web/"),
    ("argus sessions", "argus/sessions/"),
    ("argus provision", "argus/provision/"),
    ("argus automation", "argus/automation/"),
    ("argus protocol", "argus/protocol/"),
)


def group_of(filename: str) -> str:
    """The component a source file belongs to."""
    for name, marker in GROUPS:
        if marker in filename:
            return name
    return "other (stdlib: contextlib, json, ...)"


async def measure(mode: str, n: int) -> None:
    """Run the daemon, hold ``n`` idle connections from another process, print the split."""
    tmp = Path(tempfile.mkdtemp(prefix="argus-mem-"))
    env = {
        "ARGUS_HOME_HOST_PATH": str(tmp),
        "ARGUS_PORT": "0",
        "ARGUS_RUNTIME_NODE": "0",
        "ARGUS_MAX_SESSIONS": str(n + 10),
        "ARGUS_LOG_LEVEL": "warning",
    }
    fastws.install()
    try:
        async with tcp_runtime() as runtime_port, trio.open_nursery() as nursery:
            if mode == "own-tcp":
                env.update(
                    ARGUS_PROVISION_MODE="tcp",
                    ARGUS_TCP_HOST="127.0.0.1",
                    ARGUS_TCP_PORT=str(runtime_port),
                )
            else:
                env["ARGUS_RUNTIME_CMD"] = stdio_runtime_cmd()
            settings = load_settings(environ=env)
            binds = await nursery.start(daemon.serve, settings)
            port = binds[0].rsplit(":", 1)[1]
            await trio.sleep(1)
            gc.collect()
            tracemalloc.start(1)
            before = tracemalloc.take_snapshot()
            query = "attach" if mode == "attached" else "own"
            holder = await trio.lowlevel.open_process(
                [sys.executable, "-c", HOLDER, port, query, str(n)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=Path(__file__).parent.parent,
            )
            assert holder.stdout is not None and holder.stdin is not None
            await holder.stdout.receive_some(16)
            await trio.sleep(IDLE_EXIT_S + 1.5)
            gc.collect()
            after = tracemalloc.take_snapshot()
            report(after.compare_to(before, "filename"), n)
            await holder.stdin.aclose()
            await holder.wait()
            nursery.cancel_scope.cancel()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(stats: list[tracemalloc.StatisticDiff], n: int) -> None:
    """Print bytes per connection by component."""
    by_group: collections.Counter[str] = collections.Counter()
    for stat in stats:
        by_group[group_of(stat.traceback[0].filename)] += stat.size_diff
    total = sum(by_group.values())
    print(f"Python heap per idle connection: {total / n / 1024:.1f} KiB")
    for name, size in by_group.most_common():
        print(f"  {name:<40} {size / n:>7.0f} B")


def main() -> None:
    """``python -m bench.memory_breakdown attached|own-tcp [N]``."""
    mode = sys.argv[1] if len(sys.argv) > 1 else "attached"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    if mode not in ("attached", "own-tcp"):
        raise SystemExit("usage: python -m bench.memory_breakdown attached|own-tcp [N]")
    os.environ.pop("ARGUS_TOKEN", None)
    trio.run(measure, mode, n)


if __name__ == "__main__":
    main()

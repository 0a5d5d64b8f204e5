"""Round trip of one request: the stack's floor, the runtime read directly, and Argus.

Every case answers the same one-line request with the ``bench.bench_runtime`` runtime (or
an echo, for the floor), measured by the same blocking client (``bench.wsclient`` or a
plain socket) on the client core, the server on the server core:

* floor: a WebSocket echo through hypercorn's trio worker (raw ASGI), through
  trio-websocket, through ``argus.web.fastws`` (what Argus serves ``/ws`` with), and a plain
  trio TCP echo: what each layer costs before Argus does anything;
* direct: the runtime on its stdio pipes, and over TCP;
* Argus in ``tcp`` mode and in the default mode (local runtime behind the bridge).

``python -m bench.rtt_bench --echo KIND`` is the echo server side. Figures are medians
(over runs) of each run's p50 and p99.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import trio

from argus.testing import run_daemon
from bench.argus_bench import CLIENT_CPU, SERVER_CPU, pin_client
from bench.ceiling import _asgi_lifespan
from bench.scale_bench import RUNTIME_SCRIPT, cpu_s, stdio_runtime_cmd, tcp_runtime
from bench.wsclient import FastWsClient

Row = dict[str, Any]
ECHOES = ("hypercorn", "trio-websocket", "fastws", "trio-tcp")
REQUEST = '{"id":%d,"method":"bench/ping","params":{}}'


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in µs."""
    samples = sorted(samples)
    n = len(samples)
    return samples[n // 2] * 1e6, samples[min(n - 1, int(n * 0.99))] * 1e6


def ws_rtt(
    port: int,
    path: str,
    n: int,
    *,
    echo: bool = False,
    home: Path | None = None,
    cpu: list[float] | None = None,
) -> list[float]:
    """Round trips of ``n`` requests over one WebSocket (after a warm-up).

    With ``home`` (a daemon's), the session's bridge is put beside its runtime and, with
    ``cpu``, the CPU µs per request of the gateway (``cpu[0]`` is its pid) and of the
    bridge are appended to ``cpu``: a figure the machine's noise barely moves.
    """
    client = FastWsClient(port, path)
    samples = []
    procs: list[int] = []
    try:
        if not echo:
            client.recv_frame()  # argus/session
        if home is not None:
            procs = pin_bridges(home)
        if cpu:
            procs = [int(cpu.pop()), *procs]
        used: list[float] = []
        for i in range(200 + n):
            if i == 200:
                used = [cpu_s(pid) for pid in procs]
            request = REQUEST % i
            start = time.perf_counter()
            client.send_text(request)
            if echo:
                client.recv_frame()
            else:
                while json.loads(client.recv_frame()).get("id") != i:
                    pass
            if i >= 200:
                samples.append(time.perf_counter() - start)
        if cpu is not None:
            per = [(cpu_s(pid) - u) / n * 1e6 for pid, u in zip(procs, used, strict=True)]
            cpu += [per[0], sum(per[1:])]
    finally:
        client.close()
    return samples


def pin_bridges(home: Path) -> list[int]:
    """Put the session bridges of a daemon home on the client core, beside their runtimes.

    A bridge is the runtime's side of the hop (it owns the runtime, not the gateway), but
    it inherits the gateway's core when the gateway starts it.
    """
    pids = []
    for info in home.glob("sessions/*/bridge.json"):
        pid = json.loads(info.read_text()).get("pid")
        if isinstance(pid, int):
            try:
                os.sched_setaffinity(pid, {CLIENT_CPU})
                pids.append(pid)
            except OSError:
                pass
    return pids


def line_rtt(send: Any, recv: Any, n: int) -> list[float]:
    """Round trips of ``n`` JSONL requests over a byte stream (send/recv callables)."""
    samples = []
    for i in range(200 + n):
        start = time.perf_counter()
        send((REQUEST % i).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            data += recv(65536)
        if i >= 200:
            samples.append(time.perf_counter() - start)
    return samples


def direct_stdio(n: int) -> list[float]:
    """The runtime on pipes, as the gateway's reader would see it."""
    process = subprocess.Popen(
        [sys.executable, str(RUNTIME_SCRIPT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        bufsize=0,
        preexec_fn=lambda: os.sched_setaffinity(0, {CLIENT_CPU}),
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        return line_rtt(process.stdin.write, process.stdout.read, n)
    finally:
        process.kill()
        process.wait()


def direct_tcp(port: int, n: int) -> list[float]:
    """The runtime over one TCP connection."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        return line_rtt(sock.sendall, sock.recv, n)
    finally:
        sock.close()


def echo_server(kind: str) -> None:
    """Server side of a floor case: print the port, echo every message."""

    async def main() -> None:
        if kind == "trio-websocket":
            from trio_websocket import ConnectionClosed, serve_websocket

            async def handler(request: Any) -> None:
                ws = await request.accept()
                try:
                    while True:
                        await ws.send_message(await ws.get_message())
                except ConnectionClosed:
                    return

            async with trio.open_nursery() as nursery:
                server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
                print(server.port, flush=True)
            return
        if kind == "trio-tcp":

            async def tcp_handler(stream: trio.SocketStream) -> None:
                async for data in stream:
                    await stream.send_all(data)

            async with trio.open_nursery() as nursery:
                listeners = await nursery.start(trio.serve_tcp, tcp_handler, 0)
                print(listeners[0].socket.getsockname()[1], flush=True)
            return
        from hypercorn.config import Config
        from hypercorn.trio import serve as hypercorn_serve

        if kind == "fastws":
            from argus.web import fastws

            fastws.install()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "lifespan":
                await _asgi_lifespan(receive, send)
                return
            await receive()
            await send({"type": "websocket.accept"})
            while True:
                message = await receive()
                if message["type"] != "websocket.receive":
                    return
                await send({"type": "websocket.send", "text": message["text"]})

        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(hypercorn_serve, app, config)
            print(binds[0].rsplit(":", 1)[1], flush=True)

    trio.run(main)


def floor(kind: str, n: int) -> list[float]:
    """Round trips through one echo server (``kind``) on the server core."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.rtt_bench", "--echo", kind],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CPU}),
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        if kind == "trio-tcp":
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                return line_rtt(sock.sendall, sock.recv, n)
            finally:
                sock.close()
        return ws_rtt(port, "/", n, echo=True)
    finally:
        process.kill()
        process.wait(timeout=10)


async def argus_rtt(home: Path, env: dict[str, str], n: int, cpu: list[list[float]]) -> list[float]:
    """Round trips through a real daemon (its bridges, if any, beside the runtime); the
    gateway's and the bridge's CPU µs per request are appended to ``cpu``."""
    async with run_daemon(home, "--log-level", "warning", env=env, cpu=SERVER_CPU) as daemon:
        port = int(daemon.base_url.rsplit(":", 1)[1])
        used: list[float] = [daemon.process.pid]
        samples = await trio.to_thread.run_sync(
            partial(ws_rtt, port, "/ws", n, home=home, cpu=used)
        )
        cpu.append(used)
        return samples


def row(case: str, samples: list[list[float]], cpu: list[list[float]] | None = None) -> list[Row]:
    """p50/p99 rows: medians over runs (and the best run's p50, the least disturbed by
    other load); with ``cpu``, the gateway's and bridge's CPU µs per request."""
    p50s = [percentiles(s)[0] for s in samples]
    p99 = statistics.median(percentiles(s)[1] for s in samples)
    first: Row = {"bench": "rtt", "case": f"{case} p50", "value": statistics.median(p50s)}
    first.update(unit="us", best=min(p50s))
    if cpu:
        first["cpu_us"] = statistics.median(c[0] for c in cpu)
        first["bridge_cpu_us"] = statistics.median(c[1] for c in cpu)
    return [first, {"bench": "rtt", "case": f"{case} p99", "value": p99, "unit": "us"}]


async def run_all(quick: bool = False, floors: bool = True) -> list[Row]:
    """Every case; ``quick`` shrinks counts."""
    pin_client()
    runs, n = (1, 1000) if quick else (5, 2000)
    rows: list[Row] = []
    if floors:
        for kind in ECHOES:
            samples = [await trio.to_thread.run_sync(floor, kind, n) for _ in range(runs)]
            rows += row(f"floor: {kind} echo", samples)
    rows += row("direct: runtime stdio", [direct_stdio(n) for _ in range(runs)])
    with tempfile.TemporaryDirectory(prefix="argus-rtt-") as tmp:
        async with tcp_runtime() as runtime_port:
            rows += row("direct: runtime tcp", [direct_tcp(runtime_port, n) for _ in range(runs)])
            tcp_env = {
                "ARGUS_PROVISION_MODE": "tcp",
                "ARGUS_TCP_HOST": "127.0.0.1",
                "ARGUS_TCP_PORT": str(runtime_port),
            }
            cpu: list[list[float]] = []
            samples = [await argus_rtt(Path(tmp) / f"tcp{i}", tcp_env, n, cpu) for i in range(runs)]
            rows += row("argus tcp mode", samples, cpu)
        env = {"ARGUS_RUNTIME_CMD": stdio_runtime_cmd(), "ARGUS_RUNTIME_NODE": "0"}
        cpu = []
        samples = [await argus_rtt(Path(tmp) / f"default{i}", env, n, cpu) for i in range(runs)]
        rows += row("argus default (bridged)", samples, cpu)
        # The same through hypercorn's WebSocket stack (the path before issue 14).
        env["ARGUS_WS_FAST_PATH"] = "0"
        cpu = []
        samples = [await argus_rtt(Path(tmp) / f"hyper{i}", env, n, cpu) for i in range(runs)]
        rows += row("argus default, ARGUS_WS_FAST_PATH=0", samples, cpu)
    return rows


def run(quick: bool = False) -> list[Row]:
    """Synchronous entry point for ``python -m bench``."""
    return trio.run(run_all, quick)


def main() -> None:
    """``python -m bench.rtt_bench [--quick]``; ``--echo KIND`` is a floor server."""
    parser = argparse.ArgumentParser(prog="python -m bench.rtt_bench")
    parser.add_argument("--echo", choices=ECHOES)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-floor", action="store_true")
    options = parser.parse_args()
    if options.echo:
        echo_server(options.echo)
        return
    for r in trio.run(run_all, options.quick, not options.no_floor):
        extra = f"  (best run {r['best']:.0f})" if "best" in r else ""
        if "cpu_us" in r:
            extra += f"  gateway CPU {r['cpu_us']:.0f} us, bridge {r['bridge_cpu_us']:.0f} us"
        print(f"{r['case']:<40} {r['value']:>8.0f} {r['unit']}{extra}")


if __name__ == "__main__":
    main()

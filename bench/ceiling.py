"""The stack's own ceiling: frames/s one server can push to one client, with no Argus.

Each case is a server subprocess pinned to the server core that sends N text frames (the
size of an Argus delta notification) as fast as it can to one client: a bare Quart-Trio
WebSocket handler and a raw ASGI app under hypercorn's trio worker, and trio-websocket.
The client is ``bench.wsclient`` (much faster than any of them) on the other core.
``python -m bench.ceiling --serve KIND N`` is the server side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.wsclient import FastWsClient

SERVER_CPU = 1 if (os.cpu_count() or 1) > 1 else 0
PAYLOAD = (
    '{"method":"item/agentMessage/delta","params":{"threadId":"0199a1b2-0000-7000-8000-'
    '000000000001","turnId":"0199a1b2-0000-7000-8000-000000000002","itemId":"msg_0001",'
    '"delta":"00000000"}}'
)
CASES = ("quart-trio", "raw-asgi", "trio-websocket")


async def _asgi_lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def serve(kind: str, n: int) -> None:
    """Server side: print the port, then send ``n`` frames to each client."""
    import trio

    async def main() -> None:
        if kind == "trio-websocket":
            from trio_websocket import serve_websocket

            async def handler(request: Any) -> None:
                ws = await request.accept()
                for _ in range(n):
                    await ws.send_message(PAYLOAD)
                await ws.aclose()

            async with trio.open_nursery() as nursery:
                server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
                print(server.port, flush=True)
            return
        from hypercorn.config import Config
        from hypercorn.trio import serve as hypercorn_serve

        if kind == "quart-trio":
            from quart import websocket
            from quart_trio import QuartTrio

            app: Any = QuartTrio("ceiling")

            @app.websocket("/")
            async def ws() -> None:
                for _ in range(n):
                    await websocket.send(PAYLOAD)

        else:

            async def app(scope: Any, receive: Any, send: Any) -> None:
                if scope["type"] == "lifespan":
                    await _asgi_lifespan(receive, send)
                    return
                await receive()
                await send({"type": "websocket.accept"})
                for _ in range(n):
                    await send({"type": "websocket.send", "text": PAYLOAD})
                await send({"type": "websocket.close", "code": 1000})

        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(hypercorn_serve, app, config)
            print(binds[0].rsplit(":", 1)[1], flush=True)

    trio.run(main)


def measure(kind: str, n: int) -> float:
    """Frames per second the server ``kind`` delivers to one fast client."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.ceiling", "--serve", kind, str(n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CPU}),
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        client = FastWsClient(port, "/")
        start = time.perf_counter()
        frames = 0
        try:
            for _ in range(n):
                client.recv_frame()
                frames += 1
        finally:
            client.close()
        return frames / (time.perf_counter() - start)
    finally:
        process.kill()
        process.wait(timeout=10)


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Median frames/s per case."""
    runs, n = (2, 10_000) if quick else (5, 50_000)
    rows = []
    for kind in CASES:
        rates = [measure(kind, n) for _ in range(runs)]
        rows.append({"bench": "ceiling", "case": kind, "frames_per_s": statistics.median(rates)})
    return rows


def main() -> None:
    """``python -m bench.ceiling`` prints the table; ``--serve`` is the server side."""
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling")
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "N"))
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    if options.serve:
        serve(options.serve[0], int(options.serve[1]))
        return
    try:
        os.sched_setaffinity(0, {0})
    except OSError:
        pass
    for row in run(options.quick):
        print(f"{row['case']:<16} {row['frames_per_s']:>10.0f} frames/s")


if __name__ == "__main__":
    main()

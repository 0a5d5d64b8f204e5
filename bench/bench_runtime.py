"""A minimal benchmark runtime: answers every request at once, on stdio or over TCP.

Why: the demo runtime is an honest reference runtime (threads on disk, turns with items),
and its own turn costs about 140 µs, which hides what the gateway adds to a round trip.
This one does the least a JSONL JSON-RPC peer can do: read a line, find its ``id``, write
a response. ``initialize`` and ``thread/start`` get the shapes clients expect; any other
request gets ``{"ok": true}``; notifications are ignored. No trio, no JSON encoder on the
hot path (the response is built from the raw ``id`` bytes).

``python -m bench.bench_runtime`` serves stdio (``ARGUS_RUNTIME_CMD`` for local and bridged
modes); ``--tcp PORT`` serves any number of TCP connections, one runtime state each, with
``selectors`` in one thread (``tcp`` mode; prints the bound port). Bounded: a line over
1 MiB closes its connection; a TCP connection's unsent output over 16 MiB closes it too.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import sys

MAX_LINE = 1 << 20
MAX_OUT = 16 << 20
THREAD = b'{"thread":{"id":"0199a1b2-0000-7000-8000-000000000001","preview":"","turns":[]}}'
INIT = b'{"userAgent":"argus-bench-runtime/1"}'
OK = b'{"ok":true}'


def answer(line: bytes) -> bytes:
    """The response line for one input line (``b""`` for a notification or junk)."""
    raw_id = b""
    if line.startswith(b'{"id":') and b'"method"' in line:
        end = line.find(b",", 6)
        raw_id = line[6:end].strip() if end > 0 else b""
        if raw_id.startswith(b'"') and not raw_id.endswith(b'"'):
            raw_id = b""  # a string id holding a comma: parse it properly below
    if not raw_id:
        try:  # not the gateway's usual shape: parse properly (never on the hot path)
            msg = json.loads(line)
        except ValueError:
            return b""
        if not isinstance(msg, dict) or "id" not in msg or "method" not in msg:
            return b""
        raw_id = json.dumps(msg["id"]).encode()
    if b'"thread/start"' in line:
        result = THREAD
    elif b'"initialize"' in line:
        result = INIT
    else:
        result = OK
    return b'{"id":' + raw_id + b',"result":' + result + b"}\n"


def respond(buf: bytes) -> tuple[bytes, bytes]:
    """Responses to every whole line in ``buf``, and the unterminated rest."""
    *lines, rest = buf.split(b"\n")
    return b"".join(answer(line) for line in lines), rest


def serve_stdio() -> None:
    """One runtime on stdin/stdout, one write per read chunk."""
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    rest = b""
    while True:
        data = os.read(stdin, 1 << 16)
        if not data:
            return
        out, rest = respond(rest + data)
        if len(rest) > MAX_LINE:
            return
        while out:
            out = out[os.write(stdout, out) :]


def serve_tcp(port: int) -> None:
    """Every accepted connection is its own runtime; prints the port, then serves forever."""
    listener = socket.create_server(("127.0.0.1", port), backlog=4096)
    listener.setblocking(False)
    print(listener.getsockname()[1], flush=True)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    state: dict[socket.socket, list[bytes]] = {}  # [unterminated input, unsent output]

    def drop(conn: socket.socket) -> None:
        sel.unregister(conn)
        state.pop(conn, None)
        conn.close()

    while True:
        for key, events in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if key.data is None:
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                state[conn] = [b"", b""]
                sel.register(conn, selectors.EVENT_READ, True)
                continue
            pending = state[sock]
            if events & selectors.EVENT_READ:
                try:
                    data = sock.recv(1 << 16)
                except ConnectionError:
                    data = b""
                if not data:
                    drop(sock)
                    continue
                out, pending[0] = respond(pending[0] + data)
                pending[1] += out
                if len(pending[0]) > MAX_LINE or len(pending[1]) > MAX_OUT:
                    drop(sock)
                    continue
            if pending[1]:
                try:
                    sent = sock.send(pending[1])
                except BlockingIOError:
                    sent = 0
                except ConnectionError:
                    drop(sock)
                    continue
                pending[1] = pending[1][sent:]
                mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if pending[1] else 0)
                sel.modify(sock, mask, True)


def main() -> None:
    """``--tcp PORT`` (0: any free port) or stdio."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_runtime")
    parser.add_argument("--tcp", type=int, default=None, metavar="PORT")
    options = parser.parse_args()
    if options.tcp is None:
        serve_stdio()
    else:
        serve_tcp(options.tcp)


if __name__ == "__main__":
    main()

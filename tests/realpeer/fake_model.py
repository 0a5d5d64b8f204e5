"""A fake OpenAI Responses-API model server on 127.0.0.1, for running real codex offline.

Codex only ever POSTs ``{base_url}/responses`` and reads Server-Sent Events (reference doc,
Part 2). Each request pops the next scripted reply (text streamed as deltas, or an
``exec_command`` function call); with an empty script it answers a short default text, so a
test that does not care what the model says needs no script. A function call makes codex
send a follow-up request carrying the ``function_call_output``: that request simply pops
the next entry, so a test queues the call and then the text that ends the turn.

It is a stdlib ``ThreadingHTTPServer`` in a daemon thread rather than a Trio task, so it
works the same from sync fixtures, pytest-trio tests and benchmarks, and a test blocked in
Trio never starves it. It binds port 0: a fixed port once hit another server (pitfall 6).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_TEXT = "ok"

Event = dict[str, Any]


def _sse(event: Event) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def split_text(text: str, chunks: int) -> list[str]:
    """``text`` cut into at most ``chunks`` non-empty pieces (one empty piece for "")."""
    size = max(1, -(-len(text) // max(1, chunks)))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def text_events(response_id: str, text: str, chunks: int) -> list[Event]:
    """SSE events of an assistant message streamed in ``chunks`` deltas.

    Each ``response.output_text.delta`` becomes one ``item/agentMessage/delta`` in codex,
    which is what lets tests check streaming and not just the final text.
    """
    item_id = f"msg_{response_id}"
    item = {
        "type": "message",
        "role": "assistant",
        "id": item_id,
        "status": "in_progress",
        "content": [],
    }
    events: list[Event] = [
        {"type": "response.created", "response": {"id": response_id}},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
    ]
    for part in split_text(text, chunks):
        events.append(
            {
                "type": "response.output_text.delta",
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "delta": part,
            }
        )
    done = dict(
        item, status="completed", content=[{"type": "output_text", "text": text, "annotations": []}]
    )
    events.append({"type": "response.output_item.done", "output_index": 0, "item": done})
    events.append(completed_event(response_id))
    return events


def exec_events(
    response_id: str,
    call_id: str,
    arguments: dict[str, Any],
    name: str = "exec_command",
    namespace: str | None = None,
) -> list[Event]:
    """SSE events of a model calling the tool ``name`` (codex's ``exec_command`` by default).

    Codex offers MCP tools grouped in a ``namespace`` tool (``mcp__<server>``); a call of
    one carries the namespace beside the tool's own name.
    """
    item = {
        "type": "function_call",
        "id": f"fc_{response_id}",
        "call_id": call_id,
        "name": name,
        "arguments": json.dumps(arguments),
        "status": "completed",
    }
    if namespace is not None:
        item["namespace"] = namespace
    return [
        {"type": "response.created", "response": {"id": response_id}},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        completed_event(response_id),
    ]


def completed_event(response_id: str) -> Event:
    """``response.completed`` with usage: without it codex fails the turn (Part 2)."""
    usage = {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 15,
    }
    return {"type": "response.completed", "response": {"id": response_id, "usage": usage}}


@dataclass
class Reply:
    """One scripted answer: ``kind`` is "text" or "exec"; ``delay`` is seconds between events."""

    kind: str
    text: str = ""
    name: str = "exec_command"
    namespace: str | None = None
    chunks: int = 1
    call_id: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0

    def events(self, response_id: str) -> list[Event]:
        """The SSE events of this reply for the response ``response_id``."""
        if self.kind == "exec":
            return exec_events(response_id, self.call_id, self.arguments, self.name, self.namespace)
        return text_events(response_id, self.text, self.chunks)


class FakeModel:
    """``with FakeModel() as fm:`` serves scripted replies at ``fm.base_url``.

    ``fm.requests`` holds every request body (JSON) in arrival order and
    ``fm.request_headers`` their headers (lower-case names), so tests can check what codex
    sent the model: the conversation history, tool outputs, the API key.
    """

    def __init__(self, default_text: str = DEFAULT_TEXT) -> None:
        self.default_text = default_text
        self.script: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._responses = itertools.count(1)
        self._calls = itertools.count(1)
        model = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.send_error(404)

            def do_POST(self) -> None:
                body = self._read_body()
                if not self.path.rstrip("/").endswith("/responses"):
                    self.send_error(404)
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                events, delay = model._next(json.loads(body or b"{}"), headers)
                chunks = [_sse(e) for e in events]
                try:
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.send_header("cache-control", "no-cache")
                    self.send_header("content-length", str(sum(len(c) for c in chunks)))
                    self.end_headers()
                    for chunk in chunks:
                        self.wfile.write(chunk)
                        if delay:
                            self.wfile.flush()
                            time.sleep(delay)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    # Codex hung up mid-stream (turn interrupted, process stopped).
                    self.close_connection = True

            def _read_body(self) -> bytes:
                if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline().strip():
                                pass  # trailers
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("content-length") or 0))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-model",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        """The provider ``base_url`` for codex's config: ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def queue_text(self, text: str, chunks: int = 5, delay: float = 0.0) -> None:
        """The next request gets ``text`` in ``chunks`` deltas, ``delay`` s apart.

        A delay keeps a turn streaming long enough to disconnect or interrupt mid-turn.
        """
        self.script.append(Reply("text", text=text, chunks=chunks, delay=delay))

    def queue_exec_command(self, command: str, call_id: str | None = None, **extra: Any) -> str:
        """The next request gets an ``exec_command`` call running ``command``; returns its call_id.

        ``extra`` goes into the arguments (e.g. ``sandbox_permissions="require_escalated"``,
        ``justification=...`` to make ``on-request`` prompt). The call_id becomes the codex
        item id, so each call gets a fresh one unless given.
        """
        call_id = call_id or f"call_{next(self._calls)}"
        arguments = {"cmd": command, **extra}
        self.script.append(Reply("exec", call_id=call_id, arguments=arguments))
        return call_id

    def queue_function_call(
        self, name: str, arguments: dict[str, Any], namespace: str | None = None
    ) -> str:
        """The next request gets a call of tool ``name`` (e.g. an MCP tool); returns its call_id."""
        call_id = f"call_{next(self._calls)}"
        reply = Reply("exec", name=name, namespace=namespace, call_id=call_id, arguments=arguments)
        self.script.append(reply)
        return call_id

    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[list[Event], float]:
        with self._lock:
            self.requests.append(body)
            self.request_headers.append(headers)
            response_id = f"resp_{next(self._responses)}"
            reply = self.script.popleft() if self.script else Reply("text", self.default_text)
        return reply.events(response_id), reply.delay

    def __enter__(self) -> FakeModel:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

"""A fake OpenAI Responses-API model server on 127.0.0.1, for running real codex offline.

Codex only ever POSTs ``{base_url}/responses`` and reads Server-Sent Events. Each request
pops the next scripted reply (text streamed as deltas, or an ``exec_command`` function
call); with an empty script it answers a short default text. It runs in a daemon thread
(stdlib ``ThreadingHTTPServer``) so it works under any test event loop.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_TEXT = "ok"


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def text_events(response_id: str, text: str, chunks: int) -> list[dict[str, Any]]:
    """SSE events of an assistant message streamed in ``chunks`` deltas."""
    size = max(1, -(-len(text) // max(1, chunks)))
    parts = [text[i : i + size] for i in range(0, len(text), size)] or [""]
    item_id = f"msg_{response_id}"
    item = {
        "type": "message",
        "role": "assistant",
        "id": item_id,
        "status": "in_progress",
        "content": [],
    }
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"id": response_id}},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
    ]
    for part in parts:
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
    events.append(_completed(response_id))
    return events


def exec_events(response_id: str, command: str, call_id: str) -> list[dict[str, Any]]:
    """SSE events of a model asking to run ``command`` with the exec_command tool."""
    item = {
        "type": "function_call",
        "id": f"fc_{response_id}",
        "call_id": call_id,
        "name": "exec_command",
        "arguments": json.dumps({"cmd": command}),
        "status": "completed",
    }
    return [
        {"type": "response.created", "response": {"id": response_id}},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        _completed(response_id),
    ]


def _completed(response_id: str) -> dict[str, Any]:
    usage = {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 15,
    }
    return {"type": "response.completed", "response": {"id": response_id, "usage": usage}}


class FakeModel:
    """``with FakeModel() as fm:`` serves scripted replies at ``fm.base_url``."""

    def __init__(self) -> None:
        self.script: deque[Any] = deque()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._count = 0
        model = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if not self.path.endswith("/responses"):
                    self.send_error(404)
                    return
                events, delay = model._next(json.loads(body or b"{}"))
                chunks = [_sse(e) for e in events]
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("content-length", str(sum(len(c) for c in chunks)))
                self.end_headers()
                for chunk in chunks:
                    self.wfile.write(chunk)
                    if delay:
                        self.wfile.flush()
                        time.sleep(delay)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """What codex's ``base_url`` must be."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def queue_text(self, text: str, chunks: int = 5, delay: float = 0.0) -> None:
        """The next request gets ``text`` in ``chunks`` deltas, ``delay`` s apart."""
        self.script.append(("text", text, chunks, delay))

    def queue_exec_command(self, command: str, call_id: str = "call_1") -> None:
        """The next request gets a function call running ``command``."""
        self.script.append(("exec", command, call_id, 0.0))

    def _next(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], float]:
        with self._lock:
            self.requests.append(body)
            self._count += 1
            response_id = f"resp_{self._count}"
            step = self.script.popleft() if self.script else ("text", DEFAULT_TEXT, 1, 0.0)
        if step[0] == "exec":
            return exec_events(response_id, step[1], step[2]), 0.0
        return text_events(response_id, step[1], step[2]), step[3]

    def __enter__(self) -> FakeModel:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

"""Classifying JSON-RPC-shaped messages and building the gateway's own replies.

The runtime protocol is JSON-RPC 2.0 without the ``"jsonrpc"`` member. A message is a
request (``id`` and ``method``), a response (``id``, no ``method``) or a notification
(``method``, no ``id``). Anything else on the runtime's stdout is noise. These helpers are
pure functions so the hot path (one call per runtime line) stays cheap and testable.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import orjson

# Streaming deltas that may be coalesced for a lagging client: deltas of one item are
# concatenated by every client anyway, so joining them changes no rendered text.
DELTA_METHODS = frozenset(
    {
        "item/agentMessage/delta",
        "item/commandExecution/outputDelta",
        "item/reasoning/summaryTextDelta",
        "item/reasoning/textDelta",
        "item/plan/delta",
        "item/fileChange/outputDelta",
    }
)

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_loads = json.loads


class Kind(Enum):
    """What a parsed line is, which decides where it goes."""

    REQUEST = "request"
    RESPONSE = "response"
    NOTIFICATION = "notification"
    OTHER = "other"


def dumps(obj: Any) -> str:
    """Compact, single-line JSON: safe to write as one JSONL line.

    orjson is several times faster than the stdlib on this hot path; it refuses integers
    beyond 64 bits, which a client may legitimately use as an id, so those fall back.
    """
    try:
        return orjson.dumps(obj).decode()
    except TypeError:
        return _dumps(obj)


def classify(obj: Any) -> Kind:
    """Classify an already-parsed JSON value: the one classification the session routes by.

    A request has an ``id`` and a string ``method``; a response an ``id`` and no
    ``method``; a notification a string ``method`` and no ``id``; anything else is noise.
    """
    if type(obj) is not dict:
        return Kind.OTHER
    has_id = "id" in obj
    method = obj.get("method")
    if has_id and isinstance(method, str):
        return Kind.REQUEST
    if has_id and "method" not in obj:
        return Kind.RESPONSE
    if isinstance(method, str):
        return Kind.NOTIFICATION
    return Kind.OTHER


def parse(text: str) -> Any:
    """Parse JSON exactly as Python's ``json`` does; ``INVALID`` instead of raising.

    Used wherever parsed content is re-serialised (client frames, merged deltas): it keeps
    integers of any size exact, which orjson does not (it turns them into floats).
    """
    try:
        return _loads(text)
    except (ValueError, RecursionError):
        return INVALID


def parse_fast(text: str) -> Any:
    """Parse a runtime line with orjson (several times faster), exact where it matters.

    The reader only re-serialises runtime output on rare paths, which re-parse with
    ``parse``. What it does use directly are ids: a float ``id`` (orjson's rendering of a
    huge integer) and ``serverRequest/resolved`` (which carries one) are parsed exactly.
    """
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return parse(text)
    if type(obj) is dict and (
        type(obj.get("id")) is float or obj.get("method") == "serverRequest/resolved"
    ):
        return parse(text)
    return obj


class _Invalid:
    """Marker for text that is not JSON (distinct from a JSON ``null``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "INVALID"


INVALID = _Invalid()


def id_key(value: Any) -> str:
    """A hashable, type-preserving key for a JSON-RPC id (``1`` and ``"1"`` differ)."""
    return _dumps(value)


def error_response(req_id: Any, code: int, message: str, data: Any = None) -> str:
    """A JSON-RPC error response, serialised (no ``jsonrpc`` member, like the runtime)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return _dumps({"id": req_id, "error": error})


def result_response(req_id: Any, result: Any) -> str:
    """A JSON-RPC success response, serialised."""
    return _dumps({"id": req_id, "result": result})


def notification(method: str, params: Any) -> str:
    """A notification, serialised."""
    return _dumps({"method": method, "params": params})


def splice_seq(text: str, seq: int, seq_from: int | None = None) -> str:
    """Add ``argusSeq`` (and ``argusSeqFrom``) as the first members of a JSON object text.

    Splicing avoids re-serialising every broadcast message per client: the object text
    starts with ``{``, and members are inserted right after it.
    """
    if seq_from is None:
        head = f'{{"argusSeq":{seq}'
    else:
        head = f'{{"argusSeq":{seq},"argusSeqFrom":{seq_from}'
    rest = text[1:].lstrip()
    if rest.startswith("}"):
        return head + rest
    return head + "," + rest


def delta_key(method: str, params: Any) -> tuple[Any, ...] | None:
    """The identity of a delta stream (method + item + part), or None if not a delta."""
    if method not in DELTA_METHODS or type(params) is not dict:
        return None
    delta = params.get("delta")
    if not isinstance(delta, str):
        return None
    return (
        method,
        params.get("threadId"),
        params.get("turnId"),
        params.get("itemId"),
        params.get("summaryIndex"),
        params.get("contentIndex"),
    )


def compact(text: str, obj: Any) -> str:
    """The frame as one JSONL line: re-serialised only if it spans several lines."""
    if "\n" in text or "\r" in text:
        return dumps(obj)
    return text


def restore_id(text: str, upstream_id: int, original_id: Any) -> str:
    """The runtime's response with the client's own id put back, spliced when possible."""
    prefix = f'{{"id":{upstream_id},'
    if text.startswith(prefix):
        return '{"id":' + dumps(original_id) + "," + text[len(prefix) :]
    exact = parse(text)  # re-serialising: keep every number exact
    exact["id"] = original_id
    return dumps(exact)

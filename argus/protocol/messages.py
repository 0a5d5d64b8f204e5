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

from .codes import INVALID_REQUEST, PARSE_ERROR

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
# For everything the gateway writes itself: a string a client sent may hold a lone
# surrogate (valid JSON escape, not valid Unicode); as ASCII it is escaped and the frame can
# always be encoded, so one odd id can never fail the task that sends it.
_dumps_ascii = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode
_loads = json.loads


class Kind(Enum):
    """What a parsed line is, which decides where it goes."""

    REQUEST = "request"
    RESPONSE = "response"
    NOTIFICATION = "notification"
    OTHER = "other"


_REQUEST, _RESPONSE, _NOTIFICATION, _OTHER = (
    Kind.REQUEST,
    Kind.RESPONSE,
    Kind.NOTIFICATION,
    Kind.OTHER,
)


def dumps(obj: Any) -> str:
    """Compact, single-line JSON: safe to write as one JSONL line.

    orjson is several times faster than the stdlib on this hot path; it refuses integers
    beyond 64 bits, which a client may legitimately use as an id, so those fall back.
    """
    try:
        return orjson.dumps(obj).decode()
    except TypeError:  # a huge integer, or a lone surrogate: escaped, always encodable
        return _dumps_ascii(obj)


def classify(obj: Any) -> Kind:
    """Classify an already-parsed JSON value: the one classification the session routes by.

    A request has an ``id`` and a string ``method``; a response an ``id`` and no
    ``method``; a notification a string ``method`` and no ``id``; anything else is noise.
    Called once per runtime line, so it is written for speed (type checks, no isinstance).
    """
    if type(obj) is not dict:
        return _OTHER
    method = obj.get("method")
    if "id" in obj:
        if type(method) is str:
            return _REQUEST
        return _RESPONSE if "method" not in obj else _OTHER
    return _NOTIFICATION if type(method) is str else _OTHER


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
    """A JSON-RPC error response, serialised (no ``jsonrpc`` member, like the runtime).

    ASCII-only: the id is the client's, and may hold a lone surrogate.
    """
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return _dumps_ascii({"id": req_id, "error": error})


def result_response(req_id: Any, result: Any) -> str:
    """A JSON-RPC success response, serialised (ASCII-only, like ``error_response``)."""
    return _dumps_ascii({"id": req_id, "result": result})


def notification(method: str, params: Any) -> str:
    """A notification, serialised (ASCII-only: params may echo what a client sent)."""
    return _dumps_ascii({"method": method, "params": params})


def has_lone_surrogate(obj: Any) -> bool:
    """Whether any string in a parsed JSON value (keys too) holds a lone surrogate.

    ``"\\ud800"`` is valid JSON but not valid Unicode: it cannot be encoded as UTF-8, and
    the runtime (serde_json) refuses it, so the gateway refuses such a message itself with
    a clear error. Iterative, so a deeply nested value cannot exhaust the stack.
    """
    stack = [obj]
    while stack:
        value = stack.pop()
        if type(value) is str:
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return True
        elif type(value) is dict:
            stack.extend(value.keys())
            stack.extend(value.values())
        elif type(value) is list:
            stack.extend(value)
    return False


LONE_SURROGATE = (
    "Invalid request: a string holds a lone surrogate (an unpaired \\ud800-\\udfff escape),"
    " which is not valid Unicode"
)


def frame_problem(text: str, obj: Any) -> str | None:
    """The error reply for a client frame that cannot be routed at all, or None.

    Nothing with a lone surrogate goes further (the runtime refuses it, SQLite cannot
    store it); its id is echoed escaped, so the client can still match the reply.
    """
    if obj is INVALID:
        return error_response(None, PARSE_ERROR, "Parse error: invalid JSON")
    if type(obj) is not dict:
        message = "Invalid request: expected one JSON object per frame"
        return error_response(None, INVALID_REQUEST, message)
    if may_hold_surrogate(text) and has_lone_surrogate(obj):
        return error_response(obj.get("id"), INVALID_REQUEST, LONE_SURROGATE)
    if "method" in obj and type(obj["method"]) is not str:
        message = "Invalid request: 'method' must be a string"
        return error_response(obj.get("id"), INVALID_REQUEST, message)
    return None


def may_hold_surrogate(text: str) -> bool:
    """A cheap pre-check on the raw text: a lone surrogate needs a ``\\u`` escape."""
    return "\\u" in text


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

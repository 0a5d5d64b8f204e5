"""What every HTTP surface shares: the JSON error body, the token a request presents, and
the one JSON body parser.

Errors are JSON with a human ``detail`` (the original's member, kept for its clients) and a
stable machine ``code``, on the HTTP API, ``/automation``, ``/nodes`` and ``/mcp`` alike.
"""

from __future__ import annotations

import json
from typing import Any

from quart import Response, jsonify, request

from .. import auth
from ..protocol import messages as m


def error(status: int, code: str, detail: str) -> tuple[Response, int]:
    """A JSON error body with a stable ``code``."""
    return jsonify({"detail": detail, "code": code}), status


def request_token() -> str | None:
    """The token of the current Quart request: ``Authorization`` first, else ``?token=``."""
    query = {"token": request.args.getlist("token")} if "token" in request.args else {}
    return auth.extract_token(request.headers.get("authorization"), query)


def parse_json_body(data: bytes) -> tuple[Any, tuple[str, str] | None]:
    """A request body as JSON, or ``(None, (code, detail))`` saying why it is not.

    One parser for every JSON route, so bad input always gets the same stable codes
    instead of a 500: ``invalid_utf8``, ``invalid_json`` (too deep included) and
    ``lone_surrogate`` (a string the store and the runtime could not take).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, ("invalid_utf8", "The body is not valid UTF-8")
    try:
        value = json.loads(text)
    except RecursionError:
        return None, ("invalid_json", "Invalid JSON body: nested too deeply")
    except ValueError:
        return None, ("invalid_json", "Invalid JSON body")
    if m.may_hold_surrogate(text) and m.has_lone_surrogate(value):
        detail = "A string holds a lone surrogate (an unpaired \\ud800-\\udfff escape)"
        return None, ("lone_surrogate", detail)
    return value, None


async def json_body() -> tuple[Any, tuple[str, str] | None]:
    """The current request's body through ``parse_json_body`` (read first, bounded)."""
    return parse_json_body(await request.get_data())

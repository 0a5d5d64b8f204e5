"""What every HTTP surface shares: the JSON error body and the token a request presents.

Errors are JSON with a human ``detail`` (the original's member, kept for its clients) and a
stable machine ``code``, on the HTTP API, ``/automation``, ``/nodes`` and ``/mcp`` alike.
"""

from __future__ import annotations

from quart import Response, jsonify, request

from .. import auth


def error(status: int, code: str, detail: str) -> tuple[Response, int]:
    """A JSON error body with a stable ``code``."""
    return jsonify({"detail": detail, "code": code}), status


def request_token() -> str | None:
    """The token of the current Quart request: ``Authorization`` first, else ``?token=``."""
    query = {"token": request.args.getlist("token")} if "token" in request.args else {}
    return auth.extract_token(request.headers.get("authorization"), query)

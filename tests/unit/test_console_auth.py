"""The auth helpers the console relies on: the ``bearer.<token>`` subprotocol and the
same-origin rule (which only applies when a token is set: see ws.py)."""

from __future__ import annotations

from argus import auth


def test_subprotocol_token() -> None:
    assert auth.subprotocol_token(["argus.v1", "bearer.abc123"]) == "abc123"
    assert auth.subprotocol_token(["bearer.abc", "argus.v1"]) == "abc"
    assert auth.subprotocol_token(["argus.v1"]) is None
    assert auth.subprotocol_token(["bearer."]) is None


def test_same_origin() -> None:
    assert auth.same_origin("https://argus.example.org", "argus.example.org")
    assert auth.same_origin("http://10.0.0.5:8080", "10.0.0.5:8080")
    assert not auth.same_origin("http://10.0.0.5:8080", "10.0.0.5:9090")
    assert not auth.same_origin("https://evil.example", "argus.example.org")
    assert not auth.same_origin("null", "argus.example.org")
    assert not auth.same_origin(None, "argus.example.org")
    assert not auth.same_origin("ftp://argus.example.org", "argus.example.org")

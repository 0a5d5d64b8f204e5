"""Token extraction and comparison, the WebSocket Origin check, and the /ws query options.

The header wins over ``?token=``; comparison is exact; any page on the web must not be able
to drive a local agent through the user's browser, while the local console and listed
origins can. Malformed query options are refused with a message, never a traceback.
"""

from __future__ import annotations

import pytest

from argus.auth import (
    extract_token,
    header,
    origin_allowed,
    token_from_authorization,
    token_matches,
)


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
        ("  Bearer abc", "abc"),
        ("abc", "abc"),
        ("  abc  ", "abc"),
        ("", None),
        ("   ", None),
    ],
)
def test_token_from_authorization(value: str, token: str | None) -> None:
    assert token_from_authorization(value) == token


def test_header_token_is_used_and_query_ignored_when_header_present() -> None:
    query = {"token": ["from-query"]}
    assert extract_token("Bearer from-header", query) == "from-header"
    assert extract_token("bare-token", query) == "bare-token"
    # A present but empty header still means "the header was used": no fallback.
    assert extract_token("", query) is None


def test_query_token_only_without_header() -> None:
    assert extract_token(None, {"token": ["q"]}) == "q"
    assert extract_token(None, {"token": ["first", "second"]}) == "first"
    assert extract_token(None, {}) is None
    assert extract_token(None, {"token": []}) is None
    assert extract_token(None, {"other": ["x"]}) is None


def test_header_lookup_is_case_insensitive_and_first_wins() -> None:
    headers = [
        (b"Host", b"127.0.0.1"),
        (b"AUTHORIZATION", b"Bearer one"),
        (b"authorization", b"Bearer two"),
    ]
    assert header(headers, b"authorization") == "Bearer one"
    assert header(headers, b"origin") is None
    assert header([(b"x", "caf\u00e9".encode("latin-1"))], b"x") == "caf\u00e9"


def test_token_matches() -> None:
    assert token_matches(None, None) is True  # auth off
    assert token_matches(None, "anything") is True
    assert token_matches("secret", "secret") is True
    assert token_matches("secret", None) is False
    assert token_matches("secret", "") is False
    assert token_matches("secret", "Secret") is False
    assert token_matches("secret", "secret ") is False
    assert token_matches("secret", "secre") is False
    assert token_matches("t\u00f6k\u00e9n", "t\u00f6k\u00e9n") is True
    assert token_matches("t\u00f6k\u00e9n", "token") is False


def test_no_origin_is_allowed() -> None:
    assert origin_allowed(None, ()) is True


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:8080",
        "http://127.0.0.1",
        "https://127.0.0.1:8443",
        "http://127.8.9.10:3000",
        "http://localhost:5173",
        "https://localhost",
        "http://LOCALHOST:3000",
        "http://console.localhost:3000",
        "http://[::1]:8080",
        "https://[::1]",
        "http://127.0.0.1:8080/",
    ],
)
def test_loopback_origins_are_allowed(origin: str) -> None:
    assert origin_allowed(origin, ()) is True


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://evil.example:8080",
        "http://192.168.1.5:8080",
        "http://10.0.0.1",
        "http://127.0.0.1.evil.example",
        "http://localhost.evil.example",
        "http://[::2]:8080",
        "ws://127.0.0.1:8080",
        "file://",
        "chrome-extension://abcdef",
        "null",
        "",
        "garbage",
        "http://[::1",
    ],
)
def test_foreign_origins_are_refused(origin: str) -> None:
    assert origin_allowed(origin, ()) is False


def test_null_origin_refused_even_with_other_origins_listed() -> None:
    assert origin_allowed("null", ("https://app.example.com",)) is False


def test_listed_origin_is_allowed() -> None:
    allowed = ("https://app.example.com", "http://10.0.0.2:3000")
    assert origin_allowed("https://app.example.com", allowed) is True
    assert origin_allowed("https://app.example.com/", allowed) is True
    assert origin_allowed("http://10.0.0.2:3000", allowed) is True
    # Exactly as listed: another port, scheme or subdomain is someone else.
    assert origin_allowed("http://app.example.com", allowed) is False
    assert origin_allowed("https://app.example.com:444", allowed) is False
    assert origin_allowed("https://x.app.example.com", allowed) is False
    # Listing origins does not take away the local console.
    assert origin_allowed("http://127.0.0.1:8080", allowed) is True


def test_star_allows_every_origin() -> None:
    assert origin_allowed("https://anything.example", ("*",)) is True
    assert origin_allowed("http://192.168.1.5", ["*"]) is True


def test_allowed_may_be_any_iterable() -> None:
    allowed = iter(["https://app.example.com"])
    assert origin_allowed("https://app.example.com", allowed) is True

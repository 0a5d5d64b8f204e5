"""The query options of ``/ws`` (``argus.web.ws.parse_options``): parsed, or a clear problem."""

from __future__ import annotations

import pytest

from argus.web.ws import parse_options


def test_ws_options_defaults() -> None:
    opts, problem = parse_options({})
    assert problem == ""
    assert opts == {"session": None, "since": None, "seq": False, "coalesce": True}


def test_ws_options_parsed() -> None:
    query = {"session": [" s1 "], "since": ["42"], "seq": ["1"], "coalesce": ["0"]}
    opts, problem = parse_options(query)
    assert problem == ""
    assert opts == {"session": "s1", "since": 42, "seq": True, "coalesce": False}
    assert parse_options({"since": ["0"]})[0]["since"] == 0
    assert parse_options({"session": ["  "]})[0]["session"] is None


@pytest.mark.parametrize(("raw", "seq"), [("true", True), ("YES", True), ("0", False), ("", False)])
def test_ws_seq_option(raw: str, seq: bool) -> None:
    assert parse_options({"seq": [raw]})[0]["seq"] is seq


@pytest.mark.parametrize(
    ("raw", "coalesce"), [("false", False), ("No", False), ("1", True), ("yes", True)]
)
def test_ws_coalesce_option(raw: str, coalesce: bool) -> None:
    assert parse_options({"coalesce": [raw]})[0]["coalesce"] is coalesce


@pytest.mark.parametrize(
    "raw", ["abc", "-1", "1.5", "0x10", "1e3", "\u00b2", "\u00b9\u00b2", "9" * 5000]
)
def test_ws_bad_since_is_a_problem_not_an_exception(raw: str) -> None:
    """A malformed ``since`` gets a clean 1008 refusal, never a traceback in the handler."""
    opts, problem = parse_options({"since": [raw]})
    assert problem and "since" in problem
    assert opts == {}

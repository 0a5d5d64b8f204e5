"""The client library's pure parts: gateway URLs, final closes, following a turn, the table."""

from __future__ import annotations

import pytest

from argus.client.cli import format_sessions
from argus.client.connection import ArgusClientError, Endpoint, is_final_close
from argus.client.turns import _TurnFollower


@pytest.mark.parametrize(
    ("url", "http", "ws", "secure"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080", "ws://127.0.0.1:8080", False),
        ("ws://host:1/ws", "http://host:1", "ws://host:1", False),
        ("https://h.example:8443/", "https://h.example:8443", "wss://h.example:8443", True),
        ("wss://h.example", "https://h.example", "wss://h.example", True),
    ],
)
def test_endpoint_parse(url: str, http: str, ws: str, secure: bool) -> None:
    endpoint = Endpoint.parse(url)
    assert (endpoint.http_url, endpoint.ws_url, endpoint.secure) == (http, ws, secure)


@pytest.mark.parametrize("url", ["ftp://x", "127.0.0.1:8080", "http://h/ws?token=x", "http://"])
def test_endpoint_refuses(url: str) -> None:
    with pytest.raises(ArgusClientError):
        Endpoint.parse(url)


def test_session_url_never_carries_a_token() -> None:
    url = Endpoint.parse("http://h:1").session_url("default", 42)
    assert url == "ws://h:1/ws?seq=1&session=default&since=42"


def test_final_closes() -> None:
    assert is_final_close(1008, "Unauthorized")
    assert is_final_close(1001, "Session deleted")
    assert not is_final_close(1001, "Server shutting down")
    assert not is_final_close(1011, "Runtime exited")
    assert not is_final_close(1013, "Client too slow; resume with since=3")
    assert not is_final_close(None, "")


def note(method: str, **params: object) -> dict:
    return {"method": method, "params": params}


def test_follower_builds_the_turn_from_its_messages_only() -> None:
    seen: list[str] = []
    follower = _TurnFollower("t1", seen.append)
    # Arrives before turn/start's answer (kept), and other threads' traffic (ignored).
    follower.feed(
        note("item/agentMessage/delta", threadId="t1", turnId="u1", itemId="a", delta="He")
    )
    follower.feed(
        note("item/agentMessage/delta", threadId="t2", turnId="u9", itemId="z", delta="X")
    )
    follower.started("u1")
    follower.feed(
        note("item/agentMessage/delta", threadId="t1", turnId="u1", itemId="a", delta="y")
    )
    item = {"type": "agentMessage", "id": "a", "text": "Hey"}
    follower.feed(note("item/completed", threadId="t1", turnId="u1", item=item))
    final = {"type": "agentMessage", "id": "b", "text": "Done."}  # never streamed
    follower.feed(note("item/completed", threadId="t1", turnId="u1", item=final))
    follower.feed(note("turn/completed", threadId="t1", turn={"id": "u0", "status": "failed"}))
    assert follower.result is None  # another turn of the same thread
    follower.feed(note("turn/completed", threadId="t1", turn={"id": "u1", "status": "completed"}))
    result = follower.result
    assert result is not None and result.ok
    assert (result.text, result.messages) == ("Done.", ["Hey", "Done."])
    assert seen == ["He", "y", "Done."]


def test_follower_reports_a_failed_turn_and_a_runtime_exit() -> None:
    follower = _TurnFollower("t1", None)
    follower.started("u1")
    turn = {"id": "u1", "status": "failed", "error": {"message": "model overloaded"}}
    follower.feed(note("turn/completed", threadId="t1", turn=turn))
    assert follower.result is not None
    assert (follower.result.status, follower.result.error) == ("failed", "model overloaded")
    exited = _TurnFollower("t1", None)
    exited.started("u1")
    exited.feed(note("argus/runtime/exited", code=3, signal=None, stderrTail=""))
    assert exited.result is not None and exited.result.status == "failed"


def test_sessions_table_marks_the_default() -> None:
    table = format_sessions(
        [
            {
                "sessionId": "default",
                "default": True,
                "mode": "local",
                "state": "running",
                "clients": 2,
                "seq": 10,
            },
            {
                "sessionId": "b2444ae919b2",
                "default": False,
                "mode": "docker",
                "state": "stopped",
                "clients": 0,
                "seq": 0,
            },
        ]
    )
    lines = table.splitlines()
    assert lines[0].split() == ["SESSION", "MODE", "STATE", "CLIENTS", "SEQ"]
    assert lines[1].split() == ["default", "*", "local", "running", "2", "10"]
    assert lines[2].split() == ["b2444ae919b2", "docker", "stopped", "0", "0"]

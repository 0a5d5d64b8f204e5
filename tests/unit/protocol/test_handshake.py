"""The initialize/initialized state machine shared by every caller of one runtime process.

Exactly one ``initialize`` reaches the runtime at a time; concurrent callers wait for its
outcome, a success is cached for everyone after, a failure reaches every waiter and lets
the next caller try again, and ``initialized`` is forwarded once.
"""

from __future__ import annotations

from argus.protocol.handshake import Decision, Handshake, HandshakeState


def test_starts_new_with_nothing_cached() -> None:
    hs: Handshake[str] = Handshake()
    assert hs.state is HandshakeState.NEW
    assert hs.result is None and hs.waiters == [] and not hs.initialized_sent


def test_first_initialize_is_forwarded() -> None:
    hs: Handshake[str] = Handshake()
    assert hs.on_initialize("a") is Decision.FORWARD
    assert hs.state is HandshakeState.IN_FLIGHT
    assert hs.waiters == []  # the forwarding caller gets the runtime's own reply


def test_concurrent_initialize_waits_in_order() -> None:
    hs: Handshake[str] = Handshake()
    hs.on_initialize("a")
    assert hs.on_initialize("b") is Decision.WAIT
    assert hs.on_initialize("c") is Decision.WAIT
    assert hs.waiters == ["b", "c"]
    assert hs.state is HandshakeState.IN_FLIGHT


def test_result_releases_waiters_and_is_cached() -> None:
    hs: Handshake[str] = Handshake()
    hs.on_initialize("a")
    hs.on_initialize("b")
    hs.on_initialize("c")
    result = {"userAgent": "codex/1.0"}
    assert hs.on_result(result) == ["b", "c"]
    assert hs.state is HandshakeState.READY
    assert hs.result == result
    assert hs.waiters == []
    # Everyone after is answered from the cache; nothing more reaches the runtime.
    assert hs.on_initialize("d") is Decision.REPLY_CACHED
    assert hs.on_initialize("e") is Decision.REPLY_CACHED
    assert hs.waiters == []
    assert hs.result == result


def test_result_with_no_waiters() -> None:
    hs: Handshake[str] = Handshake()
    hs.on_initialize("a")
    assert hs.on_result({}) == []
    assert hs.state is HandshakeState.READY


def test_error_releases_waiters_and_the_next_caller_forwards_again() -> None:
    hs: Handshake[str] = Handshake()
    hs.on_initialize("a")
    hs.on_initialize("b")
    assert hs.on_error() == ["b"]
    assert hs.state is HandshakeState.NEW
    assert hs.waiters == []
    assert hs.result is None
    # The next attempt goes to the runtime, and concurrent ones wait for it again.
    assert hs.on_initialize("c") is Decision.FORWARD
    assert hs.on_initialize("d") is Decision.WAIT
    assert hs.on_result({"ok": 1}) == ["d"]
    assert hs.on_initialize("e") is Decision.REPLY_CACHED


def test_waiters_are_not_released_twice() -> None:
    hs: Handshake[str] = Handshake()
    hs.on_initialize("a")
    hs.on_initialize("b")
    assert hs.on_error() == ["b"]
    hs.on_initialize("c")
    assert hs.on_result({}) == []


def test_initialized_is_forwarded_once() -> None:
    hs: Handshake[str] = Handshake()
    assert hs.on_initialized() is True
    assert hs.initialized_sent
    assert hs.on_initialized() is False
    assert hs.on_initialized() is False


def test_initialized_not_forwarded_again_by_a_later_caller() -> None:
    hs: Handshake[str] = Handshake()
    hs.on_initialize("a")
    hs.on_result({})
    assert hs.on_initialized() is True
    hs.on_initialize("b")
    assert hs.on_initialized() is False


def test_forget_waiter_drops_only_matching_waiters() -> None:
    hs: Handshake[tuple[int, str]] = Handshake()
    hs.on_initialize((0, "first"))
    hs.on_initialize((1, "x"))
    hs.on_initialize((2, "y"))
    hs.on_initialize((1, "z"))
    hs.forget_waiter(lambda w: w[0] == 1)
    assert hs.waiters == [(2, "y")]
    # A client that left is not answered; the handshake itself carries on.
    assert hs.state is HandshakeState.IN_FLIGHT
    assert hs.on_result({}) == [(2, "y")]


def test_forget_waiter_with_no_match_or_no_waiters() -> None:
    hs: Handshake[str] = Handshake()
    hs.forget_waiter(lambda w: True)
    assert hs.waiters == []
    hs.on_initialize("a")
    hs.on_initialize("b")
    hs.forget_waiter(lambda w: w == "nobody")
    assert hs.waiters == ["b"]


def test_each_handshake_has_its_own_waiter_list() -> None:
    one: Handshake[str] = Handshake()
    two: Handshake[str] = Handshake()
    one.on_initialize("a")
    one.on_initialize("b")
    assert two.waiters == []
    assert two.on_initialize("c") is Decision.FORWARD

"""The sans-IO request map: rewritten ids, and each answer to the one who waits for it."""

from __future__ import annotations

from argus.protocol.requests import RequestMap, UpstreamIds


def new_map(limit: int = 10) -> RequestMap[str]:
    return RequestMap(limit)


def test_two_waiters_with_the_same_id_get_their_own_answers() -> None:
    requests = new_map()
    a = requests.add("alice", 1, "thread/start")
    b = requests.add("bob", 1, "thread/start")
    assert a != b
    pending, is_initialize = requests.answer(b)
    assert pending is not None and (pending.waiter, pending.original_id) == ("bob", 1)
    assert not is_initialize
    assert requests.answer(b) == (None, False)  # answered once only
    pending, _ = requests.answer(a)
    assert pending is not None and pending.waiter == "alice"


def test_an_answer_to_an_unknown_or_non_integer_id_is_nobodys() -> None:
    requests = new_map()
    requests.add("alice", "x", "m")
    assert requests.answer("1000000000") == (None, False)
    assert requests.answer(42) == (None, False)
    assert len(requests) == 1


def test_a_waiter_that_left_drops_its_answers_but_not_the_handshakes() -> None:
    requests = new_map()
    init = requests.add("alice", 0, "initialize", initialize=True)
    other = requests.add("alice", 1, "thread/start")
    kept = requests.add("bob", 1, "thread/start")
    requests.forget(lambda waiter: waiter == "alice")
    assert requests.answer(other) == (None, False)
    pending, is_initialize = requests.answer(init)
    assert is_initialize and pending is not None and pending.waiter is None
    assert requests.answer(kept)[0] is not None


def test_bounded_and_drained_when_the_runtime_goes() -> None:
    requests = new_map(limit=2)
    requests.add("alice", 1, "a", thread_id="t1")
    assert not requests.full
    requests.add("bob", 2, "b", initialize=True)
    assert requests.full
    drained = requests.drain()
    assert [(p.waiter, p.thread_id) for p in drained] == [("alice", "t1"), ("bob", None)]
    assert len(requests) == 0 and not requests.full


def test_a_cancelled_request_is_answered_to_nobody() -> None:
    requests = new_map()
    upstream = requests.add("daemon", None, "turn/start")
    requests.cancel(upstream)
    assert requests.answer(upstream) == (None, False)


def test_an_answer_from_an_earlier_connections_epoch_is_told_apart() -> None:
    earlier = RequestMap[str](10, UpstreamIds(epoch=1))
    old_id = earlier.add("alice", 1, "thread/start")
    requests = RequestMap[str](10, UpstreamIds(epoch=2))
    new_id = requests.add("alice", 1, "thread/start")
    assert old_id != new_id
    assert requests.answer(old_id) == (None, False)
    assert requests.from_earlier_connection(old_id)
    assert not requests.from_earlier_connection(new_id + 1)

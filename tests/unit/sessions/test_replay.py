"""The per-session replay log: sequence numbers, the byte budget, cursors and compaction.

A reconnecting client resumes from any sequence number still in the log; what was evicted
is reported as missing (``None``) rather than silently skipped, and the log's memory stays
within its budget however many messages go through it.
"""

from __future__ import annotations

import tracemalloc

from argus.sessions.replay import ENTRY_OVERHEAD, ReplayBuffer


def cost(text: str, delta: str | None = None) -> int:
    """What an entry counts against the budget."""
    return len(text) + ENTRY_OVERHEAD + (len(delta) if delta is not None else 0)


def check_invariants(replay: ReplayBuffer) -> None:
    """Everything a client relies on, for every retained entry."""
    assert len(replay) == replay.last_seq - replay.first_seq + 1
    assert replay.retained_bytes <= replay.max_bytes or len(replay) == 1
    total = broadcast = 0
    for seq in range(replay.first_seq, replay.last_seq + 1):
        entry = replay.get(seq)
        assert entry is not None and entry.seq == seq
        total += entry.cost
        broadcast += 0 if entry.directed else entry.cost
    assert total == replay.retained_bytes
    # A cursor just before the oldest retained entry owes what is retained for everyone
    # (directed entries are no client's backlog).
    assert replay.bytes_after(replay.first_seq - 1) == broadcast


def test_empty_log() -> None:
    replay = ReplayBuffer(10_000)
    assert len(replay) == 0
    assert (replay.first_seq, replay.last_seq) == (1, 0)
    assert replay.get(0) is None and replay.get(1) is None
    assert replay.bytes_after(0) == 0
    assert replay.statistics() == {"firstSeq": 1, "lastSeq": 0, "entries": 0, "bytes": 0}


def test_appends_are_numbered_from_one() -> None:
    replay = ReplayBuffer(1 << 20)
    entries = [replay.append(f"m{i}") for i in range(5)]
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert (replay.first_seq, replay.last_seq, len(replay)) == (1, 5, 5)
    assert [replay.get(s).text for s in range(1, 6)] == [f"m{i}" for i in range(5)]  # type: ignore[union-attr]
    check_invariants(replay)


def test_entry_carries_key_delta_and_directed() -> None:
    replay = ReplayBuffer(1 << 20)
    key = ("item/agentMessage/delta", "t", "u", "i", None, None)
    plain = replay.append("plain")
    delta = replay.append("delta-text", key=key, delta="hi")
    directed = replay.append("request", directed=True)
    assert (plain.key, plain.delta, plain.directed) == (None, None, False)
    assert (delta.key, delta.delta, delta.directed) == (key, "hi", False)
    assert directed.directed is True
    assert delta.cost == cost("delta-text", "hi")


def test_eviction_is_by_bytes_and_drops_the_oldest_first() -> None:
    per_entry = cost("x" * 10)
    replay = ReplayBuffer(max_bytes=5 * per_entry)
    for i in range(12):
        replay.append(f"{i:010d}")
        check_invariants(replay)
    assert (replay.first_seq, replay.last_seq, len(replay)) == (8, 12, 5)
    assert replay.retained_bytes == 5 * per_entry
    assert replay.total_bytes == 12 * per_entry
    assert [replay.get(s).text for s in range(8, 13)] == [  # type: ignore[union-attr]
        f"{i:010d}" for i in range(7, 12)
    ]


def test_large_entry_evicts_as_many_small_ones_as_needed() -> None:
    small = cost("s")
    replay = ReplayBuffer(max_bytes=10 * small)
    for _ in range(10):
        replay.append("s")
    replay.append("L" * (3 * small))  # needs three more small entries' worth of room
    check_invariants(replay)
    assert replay.last_seq == 11
    assert replay.first_seq == 5  # only as many evicted as needed (4 here, incl. overhead)
    assert replay.retained_bytes <= replay.max_bytes


def test_never_evicts_the_newest_entry() -> None:
    replay = ReplayBuffer(max_bytes=100)
    entry = replay.append("x" * 1000)
    assert len(replay) == 1 and replay.get(1) is entry
    check_invariants(replay)
    big = replay.append("y" * 5000)
    assert len(replay) == 1 and replay.get(2) is big and replay.get(1) is None
    assert replay.first_seq == 2
    # The next small entry finally pushes the oversized one out.
    replay.append("z")
    assert replay.get(2) is None and replay.get(3) is not None
    check_invariants(replay)


def test_get_for_evicted_and_future_numbers() -> None:
    replay = ReplayBuffer(max_bytes=3 * cost("abc"))
    for _ in range(10):
        replay.append("abc")
    assert (replay.first_seq, replay.last_seq) == (8, 10)
    for seq in (-1, 0, 1, 7):
        assert replay.get(seq) is None
    for seq in (11, 12, 1000):
        assert replay.get(seq) is None
    assert replay.get(8) is not None and replay.get(10) is not None


def test_bytes_after_measures_a_cursor_lag() -> None:
    replay = ReplayBuffer(1 << 20)
    texts = ["a", "bb", "ccc", "dddd"]
    for text in texts:
        replay.append(text)
    assert replay.bytes_after(4) == 0
    assert replay.bytes_after(3) == cost("dddd")
    assert replay.bytes_after(1) == cost("bb") + cost("ccc") + cost("dddd")
    assert replay.bytes_after(0) == sum(cost(t) for t in texts)
    # A cursor ahead of the head owes nothing.
    assert replay.bytes_after(99) == 0


def test_bytes_after_is_none_once_the_next_entry_was_evicted() -> None:
    replay = ReplayBuffer(max_bytes=4 * cost("m"))
    for _ in range(10):
        replay.append("m")
    assert replay.first_seq == 7
    assert replay.bytes_after(6) == 4 * cost("m")  # resumes exactly at the oldest entry
    assert replay.bytes_after(5) is None
    assert replay.bytes_after(0) is None
    assert replay.bytes_after(10) == 0


def test_statistics() -> None:
    replay = ReplayBuffer(max_bytes=2 * cost("q"))
    for _ in range(5):
        replay.append("q")
    assert replay.statistics() == {
        "firstSeq": 4,
        "lastSeq": 5,
        "entries": 2,
        "bytes": 2 * cost("q"),
    }


def test_many_small_appends_stay_bounded_and_indexes_survive_compaction() -> None:
    text = "0123456789"
    budget = 50 * cost(text)
    replay = ReplayBuffer(max_bytes=budget)
    n = 25_000
    texts = [f"{i:010d}" for i in range(1, n + 1)]  # allocated before measuring
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for i, text in enumerate(texts, 1):
            entry = replay.append(text)
            assert entry.seq == i
            assert len(replay) <= 50
            if i % 997 == 0:
                check_invariants(replay)
        held = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    # Evicted entries are really let go of: memory does not grow with the total appended
    # (25,000 entries kept would take several MB; 50 retained plus compaction slack do not).
    assert held < 512 * 1024
    assert replay.last_seq == n
    assert (replay.first_seq, len(replay)) == (n - 49, 50)
    for seq in range(replay.first_seq, n + 1):
        assert replay.get(seq).text == f"{seq:010d}"  # type: ignore[union-attr]
    assert replay.get(replay.first_seq - 1) is None
    assert replay.bytes_after(replay.first_seq - 2) is None
    assert replay.bytes_after(n - 10) == 10 * cost(text)
    assert replay.total_bytes == n * cost(text)
    check_invariants(replay)


def test_compaction_with_varying_sizes_keeps_every_retained_entry_reachable() -> None:
    replay = ReplayBuffer(max_bytes=64 * 1024)
    texts: dict[int, str] = {}
    for i in range(30_000):
        text = "v" * (i * 7919 % 900)
        entry = replay.append(text, directed=i % 5 == 0)
        texts[entry.seq] = text
    check_invariants(replay)
    for seq in range(replay.first_seq, replay.last_seq + 1):
        entry = replay.get(seq)
        assert entry is not None and entry.text == texts[seq]
        assert entry.directed == ((seq - 1) % 5 == 0)


def test_directed_entries_are_no_clients_backlog() -> None:
    # A bridged runtime's responses take numbers (placeholders) but are sent to nobody.
    replay = ReplayBuffer(10_000)
    replay.append("a")
    for _ in range(5):
        replay.append("", directed=True)
    assert replay.last_seq == 6 and replay.last_broadcast_seq == 1
    assert replay.bytes_after(1) == 0  # a cursor at the last broadcast owes nothing
    assert replay.bytes_after(0) == cost("a")
    replay.append("b")
    assert replay.bytes_after(3) == cost("b")


def test_evicted_directed_entries_lose_nobody_anything() -> None:
    per = cost("")
    replay = ReplayBuffer(per * 10)
    replay.append("x" * 5)  # seq 1, broadcast
    for _ in range(30):
        replay.append("", directed=True)
    assert replay.first_seq > 2  # the broadcast and some placeholders are gone
    assert replay.lost_after(0)  # a cursor before the broadcast lost it
    assert not replay.lost_after(1)  # one after it lost only placeholders
    assert replay.bytes_after(1) == 0
    replay.append("y")
    check_invariants(replay)
    assert replay.bytes_after(1) == cost("y")
    assert replay.bytes_after(0) is None

"""LineSplitter: splitting the runtime's byte stream into JSONL lines, bounded in memory.

The splitter must reassemble lines cut across reads, strip ``\\r`` of ``\\r\\n`` endings,
survive a line that never ends (one ``OversizedLine`` per over-long line, the following
lines intact) and never hold more than ``limit`` bytes of a partial line.
"""

from __future__ import annotations

import random
import tracemalloc

import pytest

from argus.protocol.framing import LineSplitter, OversizedLine

Event = bytes | OversizedLine


def feed_all(splitter: LineSplitter, chunks: list[bytes]) -> list[Event]:
    """Feed every chunk, then close; the events in stream order."""
    out: list[Event] = []
    for chunk in chunks:
        out.extend(splitter.feed(chunk))
    out.extend(splitter.close())
    return out


def reference(stream: bytes, limit: int) -> list[Event]:
    """What the splitter must produce for ``stream``, however it is chunked."""
    parts = stream.split(b"\n")
    tail = parts.pop()
    if tail:
        parts.append(tail)
    out: list[Event] = []
    for line in parts:
        if len(line) > limit:
            out.append(OversizedLine(len(line)))
        else:
            out.append(line[:-1] if line.endswith(b"\r") else line)
    return out


def test_line_split_across_chunks_is_reassembled() -> None:
    splitter = LineSplitter(1024)
    assert splitter.feed(b'{"method":') == []
    assert splitter.feed(b'"a"') == []
    assert splitter.feed(b"}\n") == [b'{"method":"a"}']
    assert splitter.close() == []


def test_many_lines_in_one_chunk_keep_their_order() -> None:
    splitter = LineSplitter(1024)
    lines = [f'{{"n":{i}}}'.encode() for i in range(100)]
    assert splitter.feed(b"\n".join(lines) + b"\n") == lines


def test_chunk_ending_mid_line_carries_the_rest_over() -> None:
    splitter = LineSplitter(1024)
    assert splitter.feed(b"one\ntwo\nthr") == [b"one", b"two"]
    assert splitter.feed(b"ee\nfo") == [b"three"]
    assert splitter.feed(b"ur\n") == [b"four"]


def test_crlf_endings_are_stripped_even_when_split_between_chunks() -> None:
    splitter = LineSplitter(1024)
    assert splitter.feed(b"a\r\nb\r\n") == [b"a", b"b"]
    assert splitter.feed(b"c\r") == []
    assert splitter.feed(b"\nd\n") == [b"c", b"d"]


def test_only_one_trailing_cr_is_stripped_and_inner_cr_kept() -> None:
    splitter = LineSplitter(1024)
    assert splitter.feed(b"a\rb\r\r\n") == [b"a\rb\r"]


def test_empty_lines_are_reported_as_empty() -> None:
    splitter = LineSplitter(1024)
    assert splitter.feed(b"\n\r\nx\n") == [b"", b"", b"x"]


def test_line_of_exactly_the_limit_passes_and_one_more_byte_does_not() -> None:
    splitter = LineSplitter(8)
    assert splitter.feed(b"12345678\n") == [b"12345678"]
    assert splitter.feed(b"123456789\nok\n") == [OversizedLine(9), b"ok"]


def test_oversized_line_spanning_many_chunks_is_one_event_and_next_lines_survive() -> None:
    limit = 10
    splitter = LineSplitter(limit)
    events: list[Event] = []
    events += splitter.feed(b"before\n" + b"x" * 6)
    events += splitter.feed(b"x" * 6)  # 12 > limit: from here on it is skipped
    events += splitter.feed(b"x" * 50)
    events += splitter.feed(b"x" * 50)
    events += splitter.feed(b"xx\nafter\nlast")
    events += splitter.close()
    assert events == [b"before", OversizedLine(6 + 6 + 50 + 50 + 2), b"after", b"last"]


def test_oversized_line_ending_exactly_at_a_chunk_boundary() -> None:
    splitter = LineSplitter(4)
    assert splitter.feed(b"abcdefgh") == []
    assert splitter.feed(b"\n") == [OversizedLine(8)]
    assert splitter.feed(b"ok\n") == [b"ok"]


def test_several_oversized_lines_in_a_row_each_reported_once() -> None:
    splitter = LineSplitter(4)
    events = feed_all(splitter, [b"a" * 10 + b"\n" + b"b" * 7, b"b" * 3 + b"\n", b"c" * 5 + b"\n"])
    assert events == [OversizedLine(10), OversizedLine(10), OversizedLine(5)]


def test_memory_stays_bounded_by_the_limit_whatever_arrives() -> None:
    limit = 64
    splitter = LineSplitter(limit)
    rng = random.Random(1)
    tracemalloc.start()
    try:
        for _ in range(2000):
            size = rng.randrange(0, 200)
            chunk = bytes(
                rng.choice(b"abc\n" if rng.random() < 0.05 else b"abc") for _ in range(size)
            )
            splitter.feed(chunk)
        # A line that never ends: 1 MB of it arrives, and the splitter keeps none of it.
        baseline = tracemalloc.get_traced_memory()[0]
        chunk = b"y" * 1000
        for _ in range(1000):
            splitter.feed(chunk)
        held = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert held < 8 * 1024  # without the bound it would hold the whole megabyte
    # ... and still reports it, once, when it finally ends, then carries on.
    dropped, line = splitter.feed(b"\nok\n")
    assert isinstance(dropped, OversizedLine) and dropped.size >= 1_000_000
    assert line == b"ok"


def test_close_returns_a_final_unterminated_line() -> None:
    splitter = LineSplitter(1024)
    assert splitter.feed(b"a\nb") == [b"a"]
    assert splitter.close() == [b"b"]
    # Nothing is reported twice.
    assert splitter.close() == []


def test_close_strips_cr_of_final_line() -> None:
    splitter = LineSplitter(1024)
    splitter.feed(b"tail\r")
    assert splitter.close() == [b"tail"]


def test_close_during_an_oversized_line_reports_it() -> None:
    splitter = LineSplitter(4)
    assert splitter.feed(b"ok\n" + b"z" * 20) == [b"ok"]
    assert splitter.close() == [OversizedLine(20)]
    assert splitter.close() == []


def test_close_with_nothing_pending_returns_nothing() -> None:
    splitter = LineSplitter(16)
    assert splitter.feed(b"done\n") == [b"done"]
    assert splitter.close() == []


def test_splitter_is_usable_again_after_close() -> None:
    splitter = LineSplitter(4)
    splitter.feed(b"z" * 20)
    splitter.close()
    assert splitter.feed(b"new\n") == [b"new"]


@pytest.mark.parametrize("seed", range(20))
def test_any_chunking_gives_the_same_events(seed: int) -> None:
    rng = random.Random(seed)
    limit = rng.choice([1, 3, 8, 32])
    alphabet = b"ab\r\n"
    stream = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 600)))
    if rng.random() < 0.5:
        stream += b"q" * rng.randrange(0, 100)  # maybe a long unterminated tail
    chunks = []
    pos = 0
    while pos < len(stream):
        step = rng.randrange(1, 50)
        chunks.append(stream[pos : pos + step])
        pos += step
    assert feed_all(LineSplitter(limit), chunks) == reference(stream, limit)
    # Byte by byte and all at once agree too.
    one_by_one = [stream[i : i + 1] for i in range(len(stream))]
    assert feed_all(LineSplitter(limit), one_by_one) == reference(stream, limit)
    assert feed_all(LineSplitter(limit), [stream]) == reference(stream, limit)

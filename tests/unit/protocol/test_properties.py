"""Property-based fuzzing (hypothesis) of the sans-IO cores.

Each property states what must hold for *every* input, not just the examples the other unit
tests pick: lines come out of the splitter as they went in however the bytes are chunked,
classification and parsing are total, an id put back is exactly the client's, sequence
splicing keeps the message intact, the handshake never forwards two initializes at once and
never forgets a waiter, and cron validation refuses with its own error only.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from argus.automation import cronspec
from argus.protocol import bridge
from argus.protocol import messages as m
from argus.protocol.framing import LineSplitter, OversizedLine
from argus.protocol.handshake import Decision, Handshake, HandshakeState
from argus.protocol.requests import EPOCH_SPAN, FIRST_UPSTREAM_ID, UpstreamIds

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
ids = (
    json_scalars
    | st.lists(json_scalars, max_size=2)
    | st.dictionaries(st.text(max_size=3), json_scalars, max_size=2)
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` split at the given positions (sorted, deduplicated, within range)."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return out


# -- framing ----------------------------------------------------------------------------


@FAST
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
    limit=st.integers(min_value=1, max_value=48),
    terminated=st.booleans(),
)
def test_line_splitter_yields_every_line_whatever_the_chunking(
    lines: list[bytes], cuts: list[int], limit: int, terminated: bool
) -> None:
    data = b"\n".join(lines) + (b"\n" if terminated and lines else b"")
    splitter = LineSplitter(limit)
    out: list[bytes | OversizedLine] = []
    for chunk in chunked(data, cuts):
        out += splitter.feed(chunk)
        assert len(splitter._buf) <= limit  # memory bounded by the limit, always
    out += splitter.close()
    expected: list[Any] = []
    for i, line in enumerate(lines):
        last_unterminated = i == len(lines) - 1 and not terminated
        if last_unterminated and not line:
            continue  # an empty tail is not a line
        if len(line) > limit:
            expected.append(OversizedLine(len(line)))
        else:
            expected.append(line[:-1] if line.endswith(b"\r") else line)
    assert out == expected


@FAST
@given(
    frames=st.lists(
        st.tuples(st.sampled_from([b"L", b"H", b"W", b"E"]), st.binary(max_size=64)), max_size=10
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=10),
)
def test_bridge_frames_round_trip_in_any_chunking(
    frames: list[tuple[bytes, bytes]], cuts: list[int]
) -> None:
    data = b"".join(bridge.frame(kind, payload) for kind, payload in frames)
    decoder = bridge.FrameDecoder(max_payload=64)
    got = []
    for chunk in chunked(data, cuts):
        got += decoder.feed(chunk)
    assert got == frames


@FAST
@given(st.binary(max_size=200))
def test_bridge_decoder_refuses_garbage_with_its_own_error(data: bytes) -> None:
    decoder = bridge.FrameDecoder(max_payload=32)
    try:
        for kind, payload in decoder.feed(data):
            assert len(kind) == 1 and len(payload) <= 32
    except bridge.FrameError:
        pass


# -- classification, parsing, ids --------------------------------------------------------


@FAST
@given(st.text(max_size=200))
def test_parse_and_frame_problem_are_total(text: str) -> None:
    obj = m.parse(text)
    problem = m.frame_problem(text, obj)
    kind = m.classify(obj)
    assert kind in m.Kind
    if problem is not None:
        reply = json.loads(problem)
        assert reply["error"]["code"] in (m.PARSE_ERROR, m.INVALID_REQUEST)
    elif obj is not m.INVALID:
        assert type(obj) is dict


@FAST
@given(json_values)
def test_dumps_parse_round_trip_exactly(value: Any) -> None:
    text = m.dumps(value)
    assert "\n" not in text
    assert m.parse(text) == value


@FAST
@given(ids, st.dictionaries(st.text(max_size=6), json_values, max_size=4))
def test_restore_id_puts_back_exactly_the_clients_id(original: Any, result: Any) -> None:
    upstream = UpstreamIds(epoch=3).next({})
    runtime_text = m.dumps({"id": upstream, "result": result})
    restored = json.loads(m.restore_id(runtime_text, upstream, original))
    assert restored == {"id": original, "result": result}
    assert type(restored["id"]) is type(original)


@FAST
@given(ids, ids)
def test_id_keys_tell_types_apart(a: Any, b: Any) -> None:
    if m.id_key(a) == m.id_key(b):
        assert json.dumps(a) == json.dumps(b)


@FAST
@given(
    st.dictionaries(st.text(max_size=6), json_values, max_size=4),
    st.integers(min_value=0, max_value=2**53),
    st.none() | st.integers(min_value=0, max_value=2**53),
)
def test_splice_seq_keeps_the_message(obj: dict, seq: int, seq_from: int | None) -> None:
    spliced = json.loads(m.splice_seq(m.dumps(obj), seq, seq_from))
    assert spliced.pop("argusSeq") == seq
    if seq_from is not None:
        assert spliced.pop("argusSeqFrom") == seq_from
    assert spliced == {k: v for k, v in obj.items() if k not in ("argusSeq", "argusSeqFrom")}


@FAST
@given(st.integers(min_value=0, max_value=1000), st.sets(st.integers(), max_size=50))
def test_upstream_ids_are_unique_and_owned(epoch: int, taken: set[int]) -> None:
    ids_ = UpstreamIds(epoch)
    inflight = {ids_.base + FIRST_UPSTREAM_ID + (t % 64): None for t in taken}
    got = set()
    for _ in range(20):
        upstream = ids_.next(inflight)
        assert upstream not in inflight and upstream not in got
        assert ids_.owns(upstream) and not UpstreamIds(epoch + 1).owns(upstream)
        assert upstream < (epoch + 1) * EPOCH_SPAN
        got.add(upstream)
        inflight[upstream] = None


# -- handshake ---------------------------------------------------------------------------

ops = st.lists(
    st.sampled_from(["initialize", "result", "error", "forget", "initialized"]), max_size=40
)


@FAST
@given(ops)
def test_handshake_forwards_one_initialize_at_a_time_and_answers_every_waiter(
    sequence: list[str],
) -> None:
    hs: Handshake[int] = Handshake()
    in_flight = False
    waiting: set[int] = set()
    answered: set[int] = set()
    initialized_forwarded = 0
    for n, op in enumerate(sequence):
        if op == "initialize":
            decision = hs.on_initialize(n)
            if decision is Decision.FORWARD:
                assert not in_flight
                in_flight = True
            elif decision is Decision.WAIT:
                assert in_flight
                waiting.add(n)
            else:
                assert hs.state is HandshakeState.READY
                answered.add(n)
        elif op in ("result", "error") and in_flight:
            released = hs.on_result({"ok": 1}) if op == "result" else hs.on_error()
            assert set(released) == waiting
            answered |= waiting
            waiting.clear()
            in_flight = False
        elif op == "forget" and waiting:
            gone = min(waiting)
            hs.forget_waiter(lambda w, gone=gone: w == gone)
            waiting.discard(gone)
        elif op == "initialized":
            initialized_forwarded += hs.on_initialized()
        assert set(hs.waiters) == waiting
    assert initialized_forwarded <= 1


# -- cron specs --------------------------------------------------------------------------

cron_field = st.sampled_from(["*", "*/5", "0", "1-5", "1,2", "30", "*/15", "7", "60", "x"])
cron_bodies = st.fixed_dictionaries(
    {},
    optional={
        "text": st.text(max_size=20) | st.integers(),
        "expr": st.lists(cron_field, min_size=1, max_size=6).map(" ".join) | json_scalars,
        "at": json_scalars,
        "tz": st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Nowhere/X", ""])
        | json_scalars,
        "mode": st.sampled_from(["systemEvent", "turn", "other"]) | json_scalars,
        "enabled": json_scalars,
        "jobId": st.text(max_size=70) | json_scalars,
        "threadId": json_scalars,
        "target": st.sampled_from(["main", "other"]) | json_scalars,
        "extra": json_scalars,
    },
)


@settings(max_examples=400, deadline=None)
@given(
    cron_bodies, st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1))
)
def test_cron_validation_refuses_only_with_its_own_error(body: dict, now: dt.datetime) -> None:
    try:
        job = cronspec.validate_job(body)
    except cronspec.CronValidationError as exc:
        assert str(exc)
        return
    after = now.replace(tzinfo=dt.UTC)
    first = cronspec.next_run(job, after)
    if first is None:
        assert job.get("at") is not None
        return
    assert first > after
    second = cronspec.next_run(job, first)
    assert second is None or second > first
    assert cronspec.count_missed(job, first, first) == 0

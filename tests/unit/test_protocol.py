"""Sans-IO protocol pieces: JSONL framing, message helpers, the handshake machine."""

from __future__ import annotations

import json

from argus.protocol import messages as m
from argus.protocol.framing import LineSplitter, OversizedLine
from argus.protocol.handshake import Decision, Handshake, HandshakeState


def test_lines_split_across_chunks_and_crlf() -> None:
    splitter = LineSplitter(limit=100)
    assert splitter.feed(b'{"a":') == []
    assert splitter.feed(b'1}\r\n{"b":2}\n{"c"') == [b'{"a":1}', b'{"b":2}']
    assert splitter.feed(b":3}\n") == [b'{"c":3}']
    assert splitter.feed(b"tail without newline") == []
    assert splitter.close() == [b"tail without newline"]


def test_overlong_line_is_skipped_once_and_memory_stays_bounded() -> None:
    splitter = LineSplitter(limit=10)
    assert splitter.feed(b"ok\n" + b"x" * 25) == [b"ok"]
    assert len(splitter._buf) <= 10
    assert splitter.feed(b"y" * 1000) == []
    assert len(splitter._buf) <= 10
    out = splitter.feed(b"zz\nnext\n")
    assert out == [OversizedLine(25 + 1000 + 2), b"next"]
    assert splitter.feed(b"0123456789A\nfine\n") == [OversizedLine(11), b"fine"]


def test_classify() -> None:
    assert m.classify({"id": 1, "method": "x"}) is m.Kind.REQUEST
    assert m.classify({"id": 1, "result": {}}) is m.Kind.RESPONSE
    assert m.classify({"method": "x", "params": {}}) is m.Kind.NOTIFICATION
    assert m.classify({"foo": 1}) is m.Kind.OTHER
    assert m.classify([1]) is m.Kind.OTHER


def test_parse_keeps_big_integers_exact() -> None:
    big = 10**30
    assert m.parse(json.dumps({"id": big}))["id"] == big
    assert m.parse_fast(json.dumps({"id": big}))["id"] == big
    assert m.parse("{nope") is m.INVALID
    assert m.parse("null") is None
    assert m.dumps({"id": big, "s": "é"}) == '{"id":1000000000000000000000000000000,"s":"é"}'


def test_id_key_preserves_type() -> None:
    keys = {m.id_key(v) for v in (1, "1", 1.5, None, "a")}
    assert len(keys) == 5


def test_replies_have_no_jsonrpc_member() -> None:
    assert json.loads(m.error_response(3, -32600, "bad")) == {
        "id": 3,
        "error": {"code": -32600, "message": "bad"},
    }
    assert json.loads(m.result_response("x", {"a": 1})) == {"id": "x", "result": {"a": 1}}


def test_splice_seq() -> None:
    text = '{"method": "x", "params": {"a": 1}}'
    assert json.loads(m.splice_seq(text, 7)) == {"argusSeq": 7, "method": "x", "params": {"a": 1}}
    merged = json.loads(m.splice_seq(text, 9, 5))
    assert (merged["argusSeq"], merged["argusSeqFrom"]) == (9, 5)
    assert json.loads(m.splice_seq("{}", 1)) == {"argusSeq": 1}


def test_delta_key() -> None:
    params = {"threadId": "t", "turnId": "u", "itemId": "i", "delta": "x"}
    assert m.delta_key("item/agentMessage/delta", params) is not None
    assert m.delta_key("item/agentMessage/delta", params) != m.delta_key(
        "item/agentMessage/delta", dict(params, itemId="j")
    )
    assert m.delta_key("turn/started", params) is None
    assert m.delta_key("item/agentMessage/delta", dict(params, delta=1)) is None


def test_handshake_forward_wait_cache() -> None:
    hs: Handshake[str] = Handshake()
    assert hs.on_initialize("a") is Decision.FORWARD
    assert hs.on_initialize("b") is Decision.WAIT
    assert hs.on_initialize("c") is Decision.WAIT
    hs.forget_waiter(lambda w: w == "c")
    assert hs.on_result({"ok": 1}) == ["b"]
    assert hs.state is HandshakeState.READY
    assert hs.on_initialize("d") is Decision.REPLY_CACHED
    assert hs.on_initialized() is True
    assert hs.on_initialized() is False


def test_handshake_error_releases_waiters_and_retries() -> None:
    hs: Handshake[str] = Handshake()
    hs.on_initialize("a")
    hs.on_initialize("b")
    assert hs.on_error() == ["b"]
    assert hs.state is HandshakeState.NEW
    assert hs.on_initialize("c") is Decision.FORWARD

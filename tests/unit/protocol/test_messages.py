"""Message helpers: classification, parsing, id keys, the gateway's replies, seq splicing.

The runtime protocol is JSON-RPC 2.0 without the ``"jsonrpc"`` member; what the gateway
writes must look exactly like what the runtime writes, and ids of any JSON type must come
back to the client unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from argus.protocol import codes
from argus.protocol import messages as m
from argus.protocol.messages import Kind


@pytest.mark.parametrize(
    ("obj", "kind"),
    [
        ({"id": 1, "method": "initialize", "params": {}}, Kind.REQUEST),
        ({"id": "abc", "method": "thread/start"}, Kind.REQUEST),
        ({"id": None, "method": "initialize"}, Kind.REQUEST),
        ({"id": 1, "result": {}}, Kind.RESPONSE),
        ({"id": 1, "error": {"code": -1, "message": "x"}}, Kind.RESPONSE),
        ({"id": None, "error": {"code": -32700, "message": "parse"}}, Kind.RESPONSE),
        ({"method": "turn/started", "params": {}}, Kind.NOTIFICATION),
        ({"method": "initialized"}, Kind.NOTIFICATION),
        ({}, Kind.OTHER),
        ({"result": 1}, Kind.OTHER),
        ({"method": 5}, Kind.OTHER),
        ({"id": 1, "method": 5}, Kind.OTHER),
        ({"id": 1, "method": None}, Kind.OTHER),
        ([{"id": 1, "method": "x"}], Kind.OTHER),
        ("text", Kind.OTHER),
        (42, Kind.OTHER),
        (None, Kind.OTHER),
        (m.INVALID, Kind.OTHER),
    ],
)
def test_classify(obj: Any, kind: Kind) -> None:
    assert m.classify(obj) is kind


def test_parse_returns_invalid_for_non_json_and_values_for_json() -> None:
    assert m.parse("not json") is m.INVALID
    assert m.parse("") is m.INVALID
    assert m.parse('{"id": 1') is m.INVALID
    assert m.parse("null") is None  # JSON null is a value, not INVALID
    assert m.parse("null") is not m.INVALID
    assert m.parse('{"id":1,"method":"x"}') == {"id": 1, "method": "x"}
    assert m.parse("[1, 2]") == [1, 2]
    assert repr(m.INVALID) == "INVALID"


def test_parse_survives_absurd_nesting() -> None:
    assert m.parse("[" * 100_000 + "]" * 100_000) is m.INVALID


def test_parse_keeps_huge_integers_exact() -> None:
    huge = 2**80 + 1
    assert m.parse(f'{{"id":{huge}}}') == {"id": huge}
    assert m.parse_fast(f'{{"id":{huge},"result":{{}}}}')["id"] == huge


def test_parse_fast_agrees_with_parse_on_ordinary_lines() -> None:
    line = '{"method":"item/agentMessage/delta","params":{"delta":"h\\u00e9","n":1.5}}'
    assert m.parse_fast(line) == m.parse(line)
    assert m.parse_fast("garbage") is m.INVALID


def test_dumps_is_one_line_and_handles_huge_ints() -> None:
    text = m.dumps({"a": "line\nbreak", "id": 2**70})
    assert "\n" not in text
    assert json.loads(text) == {"a": "line\nbreak", "id": 2**70}


def test_id_key_preserves_the_json_type() -> None:
    keys = [m.id_key(v) for v in (1, "1", 1.0, None, True, "null")]
    assert len(set(keys)) == len(keys)
    assert m.id_key(1) == m.id_key(1)
    assert m.id_key("abc") == m.id_key("abc")
    assert m.id_key(None) == m.id_key(None)
    assert m.id_key(2**80) != m.id_key(float(2**80))
    assert all(isinstance(k, str) for k in keys)


def test_error_response_shape() -> None:
    obj = json.loads(m.error_response(7, codes.METHOD_NOT_FOUND, "no such method"))
    assert obj == {"id": 7, "error": {"code": -32601, "message": "no such method"}}
    assert "jsonrpc" not in obj


def test_error_response_with_data_and_any_id_type() -> None:
    for req_id in ("req-1", None, 1.5, 2**70):
        text = m.error_response(req_id, codes.GATEWAY_ERROR, "boom", {"why": "because"})
        assert "\n" not in text
        obj = json.loads(text)
        assert obj["id"] == req_id and type(obj["id"]) is type(req_id)
        assert obj["error"] == {"code": -32000, "message": "boom", "data": {"why": "because"}}
        assert "jsonrpc" not in obj
    # Falsy data other than None is still data.
    assert json.loads(m.error_response(1, -1, "x", 0))["error"]["data"] == 0


def test_result_response_shape() -> None:
    obj = json.loads(m.result_response("a", {"ok": True}))
    assert obj == {"id": "a", "result": {"ok": True}}
    assert "jsonrpc" not in obj
    # A null result is still a result member (a response must carry result or error).
    assert json.loads(m.result_response(1, None)) == {"id": 1, "result": None}


def test_notification_shape() -> None:
    obj = json.loads(m.notification("argus/warning", {"code": "x"}))
    assert obj == {"method": "argus/warning", "params": {"code": "x"}}
    assert "jsonrpc" not in obj and "id" not in obj


def test_error_codes_are_the_documented_ones() -> None:
    assert (codes.PARSE_ERROR, codes.INVALID_REQUEST, codes.METHOD_NOT_FOUND) == (
        -32700,
        -32600,
        -32601,
    )
    assert (codes.INVALID_PARAMS, codes.INTERNAL_ERROR) == (-32602, -32603)
    assert (codes.GATEWAY_ERROR, codes.RUNTIME_EXITED, codes.TOO_MANY_REQUESTS) == (
        -32000,
        -32001,
        -32002,
    )


@pytest.mark.parametrize(
    "text",
    [
        '{"method":"turn/started","params":{"turn":{"id":"u"}}}',
        '{ "method" : "x" , "params" : [1, 2] }',
        '{\n  "id": 3,\n  "result": null\n}',
        '{"id":"s","error":{"code":-1,"message":"m"}}',
    ],
)
def test_splice_seq_adds_members_first_and_keeps_the_rest(text: str) -> None:
    original = json.loads(text)
    spliced = m.splice_seq(text, 42)
    obj = json.loads(spliced)
    assert next(iter(obj)) == "argusSeq"
    assert obj.pop("argusSeq") == 42
    assert obj == original

    ranged = json.loads(m.splice_seq(text, 50, 40))
    assert list(ranged)[:2] == ["argusSeq", "argusSeqFrom"]
    assert (ranged.pop("argusSeq"), ranged.pop("argusSeqFrom")) == (50, 40)
    assert ranged == original


@pytest.mark.parametrize("text", ["{}", "{ }", "{\n}"])
def test_splice_seq_on_an_empty_object(text: str) -> None:
    assert json.loads(m.splice_seq(text, 1)) == {"argusSeq": 1}
    assert json.loads(m.splice_seq(text, 9, 3)) == {"argusSeq": 9, "argusSeqFrom": 3}


def test_splice_seq_on_serialised_output_is_compact() -> None:
    text = m.notification("x", {"a": 1})
    assert m.splice_seq(text, 5) == '{"argusSeq":5,"method":"x","params":{"a":1}}'
    assert m.splice_seq(text, 5, 2).startswith('{"argusSeq":5,"argusSeqFrom":2,"method"')


def delta_params(**extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"threadId": "t", "turnId": "u", "itemId": "i", "delta": "hi"}
    params.update(extra)
    return params


@pytest.mark.parametrize("method", sorted(m.DELTA_METHODS))
def test_delta_key_for_every_delta_method(method: str) -> None:
    key = m.delta_key(method, delta_params())
    assert key is not None
    assert key == m.delta_key(method, delta_params(delta="other text"))
    hash(key)


def test_delta_key_identifies_method_item_and_part() -> None:
    base = m.delta_key("item/agentMessage/delta", delta_params())
    others = [
        m.delta_key("item/reasoning/textDelta", delta_params()),
        m.delta_key("item/agentMessage/delta", delta_params(itemId="j")),
        m.delta_key("item/agentMessage/delta", delta_params(turnId="v")),
        m.delta_key("item/agentMessage/delta", delta_params(threadId="s")),
        m.delta_key("item/agentMessage/delta", delta_params(summaryIndex=1)),
        m.delta_key("item/agentMessage/delta", delta_params(contentIndex=1)),
    ]
    assert base is not None
    assert all(k is not None and k != base for k in others)
    assert len(set(others)) == len(others)


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("turn/started", delta_params()),
        ("item/completed", delta_params()),
        ("item/agentMessage/delta", None),
        ("item/agentMessage/delta", ["delta"]),
        ("item/agentMessage/delta", {"itemId": "i"}),
        ("item/agentMessage/delta", delta_params(delta=None)),
        ("item/agentMessage/delta", delta_params(delta=5)),
    ],
)
def test_delta_key_is_none_for_non_deltas(method: str, params: Any) -> None:
    assert m.delta_key(method, params) is None

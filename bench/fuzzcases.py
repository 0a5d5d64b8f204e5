"""The live fuzzer's case generators (seeded, so a failing case can be replayed).

Values are built as JSON *text* from fragments, so a case can hold what no JSON library
writes: lone surrogate escapes, 400-digit integers, ``1e400``, duplicate keys, nesting deeper
than any parser's recursion limit, invalid UTF-8. Each /ws case says what answer it must
get (see ``bench/fuzz.py``).
"""

from __future__ import annotations

import json
import random
import struct
from dataclasses import dataclass
from typing import Any

from argus.protocol.messages import has_lone_surrogate
from bench.rawws import frame

WS_LIMIT = 1024 * 1024  # the fuzz daemon's ARGUS_WS_MAX_MESSAGE_BYTES
ODD_IDS = [
    "0", "-1", "7", "1" * 400, "-" + "9" * 30, "0.5", "1e300", "-0", "1e-400",
    "true", "false", "null", '""', '"x"', '"\\ud800"', '"a\\udfffb"', '"' + "i" * 3000 + '"',
    "[]", "[1,2]", '{"a":1}', "{}", '"\\u0000"', '"1"',
]  # fmt: skip
STRINGS = ['""', '"x"', '"\\ud800"', '"a\\udc00b"', '"\\ud83d"', '"\\u0000"', '"../../etc"', '"é"']
NUMBERS = ["0", "-1", "1e300", "-1e300", "1" * 400, "1e-400", "0.5", "1e400", "-0"]
OTHER = ["null", "true", "false", "[]", "{}", "[null]", '{"":null}', "[[[]]]"]
METHODS = [
    "initialize", "initialized", "thread/list", "thread/read", "thread/start", "thread/resume",
    "turn/start", "turn/interrupt", "argus/input/enqueue", "argus/systemEvent/enqueue",
    "argus/cron/add", "argus/cron/list", "argus/cron/remove", "argus/thread/main/ensure",
    "argus/heartbeat/request", "argus/turn/result", "argus/nope", "nope", "", "\\ud800",
]  # fmt: skip
FIELDS = [
    "threadId", "turnId", "text", "input", "at", "expr", "jobId", "tz", "mode", "kind",
    "target", "source", "cursor", "limit", "includeTurns", "clientInfo", "approvalPolicy",
]  # fmt: skip
BROKEN_JSON = [
    "", "{", "}", '{"id":1,', '{"id":1 "method":"x"}', "nul", "[1,]", '{"a":}', "'x'",
    '{"id":1}}', "\x00", "{\"id\":NaN}", '{"id":Infinity,"method":"x"}', "0x10", "--1",
]  # fmt: skip
INVALID_UTF8 = [b"\xc3\x28", b"\xff", b"\xed\xa0\x80", b'{"id":1,"method":"\xe2\x82"}', b"\x80"]


def key_of(value: Any) -> str:
    """A type-preserving key for a JSON id (``1``, ``1.0``, ``"1"`` and ``true`` differ)."""
    return type(value).__name__ + ":" + json.dumps(value, sort_keys=True)


def deep(depth: int) -> str:
    """Nested arrays ``depth`` deep."""
    return "[" * depth + "]" * depth


class Values:
    """Random JSON texts of every type, odd ones first."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def scalar(self) -> str:
        """A string, number or literal, usually an odd one."""
        return self.rng.choice(STRINGS + NUMBERS + OTHER)

    def any(self, depth: int = 0) -> str:
        """Any value, sometimes nested, huge or deep."""
        r = self.rng.random()
        if r < 0.6 or depth > 2:
            return self.scalar()
        if r < 0.75:
            return "[" + ",".join(self.any(depth + 1) for _ in range(self.rng.randint(0, 3))) + "]"
        if r < 0.9:
            return self.obj(depth + 1)
        if r < 0.97:
            return deep(self.rng.randint(20, 200))
        return '"' + "h" * self.rng.randint(10_000, 100_000) + '"'

    def obj(self, depth: int = 0) -> str:
        """An object of known field names with values of the wrong type."""
        keys = self.rng.sample(FIELDS, self.rng.randint(0, 4))
        return "{" + ",".join(f'"{k}":{self.any(depth + 1)}' for k in keys) + "}"


@dataclass
class WsCase:
    """One /ws frame and the answer it must get."""

    label: str
    data: bytes
    reply_key: str | None = None  # exactly one response with this id
    null_reply: int = 0  # this many errors with id null
    maybe_null: int = 0  # at most this many more
    close: bool = False  # the connection must be closed with a protocol close code


class WsCases:
    """Hostile /ws frames."""

    def __init__(self, rng: random.Random, threads: list[str]) -> None:
        self.rng = rng
        self.values = Values(rng)
        self.threads = threads

    def request_text(self) -> tuple[str, Any]:
        """A request with an odd id, a method and params of wrong types; (text, id)."""
        rng = self.rng
        id_text = rng.choice(ODD_IDS)
        method = rng.choice([json.dumps(m) if "\\" not in m else f'"{m}"' for m in METHODS])
        if rng.random() < 0.05:
            method = self.values.scalar()
        params = self.values.obj()
        if rng.random() < 0.2 and self.threads:
            params = params[:-1] + ("," if len(params) > 2 else "")
            params += f'"threadId":"{rng.choice(self.threads)}"}}'
        members = [f'"id":{id_text}', f'"method":{method}', f'"params":{params}']
        rng.shuffle(members)
        return "{" + ",".join(members) + "}", json.loads(id_text)

    def case(self) -> WsCase:
        """The next case (a close case at most one in fifty)."""
        rng = self.rng
        r = rng.random()
        if r < 0.45:
            text, req_id = self.request_text()
            return WsCase(text[:300], frame(0x1, text.encode()), reply_key=key_of(req_id))
        if r < 0.52:  # the same, in fragments
            text, req_id = self.request_text()
            data = fragmented(rng, text.encode())
            return WsCase("fragmented " + text[:300], data, reply_key=key_of(req_id))
        if r < 0.62:
            return WsCase("broken json", frame(0x1, rng.choice(BROKEN_JSON).encode()), null_reply=1)
        if r < 0.67:
            text = rng.choice(NUMBERS + STRINGS + ["[]", "[1]", "null", "true"])
            return WsCase("not an object", frame(0x1, text.encode()), null_reply=1)
        if r < 0.70:
            return WsCase("deep", frame(0x1, deep(rng.randint(2000, 20000)).encode()), null_reply=1)
        if r < 0.75:
            return WsCase("binary", frame(0x2, rng.randbytes(rng.randint(0, 64))), null_reply=1)
        if r < 0.83:  # a response to a request that was never made
            id_text = rng.choice(ODD_IDS)
            body = rng.choice([f'"result":{self.values.any()}', '"error":{"code":1,"message":"x"}'])
            text = f'{{"id":{id_text},{body}}}'
            # Dropped, unless it holds a lone surrogate: then it is refused with its id.
            parsed = json.loads(text)
            refused = key_of(parsed["id"]) if has_lone_surrogate(parsed) else None
            return WsCase("unsolicited response", frame(0x1, text.encode()), reply_key=refused)
        if r < 0.91:  # notifications and id-less objects
            method = rng.choice(['"initialized"', '"x/y"', '"\\ud800"', "5", "null"])
            text = rng.choice([f'{{"method":{method},"params":{self.values.obj()}}}', "{}"])
            return WsCase("notification", frame(0x1, text.encode()), maybe_null=1)
        if r < 0.98:  # a huge but allowed frame
            text = '{"id":"huge","method":"thread/list","params":{"cursor":"'
            text += "z" * rng.randint(100_000, WS_LIMIT - 1000) + '"}}'
            return WsCase("huge", frame(0x1, text.encode()), reply_key=key_of("huge"))
        return self.closing()

    def closing(self) -> WsCase:
        """A frame the protocol refuses: the connection must end with a close code."""
        rng = self.rng
        kind = rng.randrange(5)
        if kind == 0:
            return WsCase("invalid utf-8", frame(0x1, rng.choice(INVALID_UTF8)), close=True)
        if kind == 1:
            data = frame(0x1, b'"' + b"o" * (WS_LIMIT + 10) + b'"')
            return WsCase("over the size limit", data, close=True)
        if kind == 2:
            return WsCase("reserved opcode", frame(0x3, b"x"), close=True)
        if kind == 3:
            return WsCase("continuation first", frame(0x0, b'{"id":1}'), close=True)
        return WsCase("oversized ping", frame(0x9, b"p" * 200), close=True)


def fragmented(rng: random.Random, payload: bytes, opcode: int = 0x1) -> bytes:
    """``payload`` as a text (or binary) message in 2-5 fragments."""
    cuts = sorted(
        rng.sample(range(1, max(2, len(payload))), min(rng.randint(1, 4), max(1, len(payload) - 1)))
    )
    parts = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
    out = b""
    for i, part in enumerate(parts):
        out += frame(opcode if i == 0 else 0x0, part, fin=i == len(parts) - 1)
    return out


class NodeCases:
    """Hostile /nodes/ws frames."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.values = Values(rng)

    def bad_connect(self) -> tuple[bytes, set[int]]:
        """A first frame that is not a valid connect, and the close codes allowed."""
        rng = self.rng
        kind = rng.randrange(4)
        if kind == 0:
            return frame(0x1, rng.choice(INVALID_UTF8)), {1007}
        if kind == 1:
            return frame(0x1, rng.choice(BROKEN_JSON).encode()), {1008}
        if kind == 2:
            node_id = rng.choice(["null", "5", "[]", '""', '"  "', "{}", "true"])
            return frame(0x1, f'{{"type":"connect","nodeId":{node_id}}}'.encode()), {1008}
        return frame(0x1, f'{{"type":{self.values.scalar()},"nodeId":"n"}}'.encode()), {1008}

    def frame(self) -> bytes:
        """A frame on a connected node: garbage, or a result for an invoke never made."""
        rng = self.rng
        r = rng.random()
        if r < 0.35:
            payload = (
                f'{{"id":{rng.choice(ODD_IDS)},"nodeId":{self.values.scalar()},'
                f'"ok":{self.values.scalar()},"payloadJSON":{self.values.any()}}}'
            )
            text = f'{{"type":"event","event":"node.invoke.result","payload":{payload}}}'
        elif r < 0.55:
            event = rng.choice(['"node.process.exited"', '"node.heartbeat"', '"x"', "5", "null"])
            text = f'{{"type":"event","event":{event},"payload":{self.values.any()}}}'
        elif r < 0.7:
            text = rng.choice([*BROKEN_JSON, "[]", "5", deep(rng.randint(2000, 20000))])
        elif r < 0.8:
            return frame(0x2, rng.randbytes(rng.randint(0, 64)))
        elif r < 0.9:
            text = f'{{"type":"event","event":"node.heartbeat","payload":{self.values.obj()}}}'
            return fragmented(rng, text.encode())
        else:
            text = f'{{"type":{self.values.scalar()},"event":{self.values.scalar()}}}'
        return frame(0x1, text.encode())


class McpCases:
    """Hostile /mcp requests: (method, headers, body)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.values = Values(rng)

    def request(self, session_id: str) -> tuple[str, dict[str, str], bytes]:
        """The next request."""
        rng = self.rng
        headers = {"Content-Type": rng.choice(["application/json", "text/plain", "x/\x7f"])}
        if rng.random() < 0.8:
            headers["Accept"] = rng.choice(
                ["application/json", "application/json, text/event-stream", "text/html", "*/*"]
            )
        if rng.random() < 0.8:
            headers["MCP-Session-Id"] = rng.choice([session_id] * 4 + ["nope", "", "x" * 500])
        if rng.random() < 0.5:
            headers["MCP-Protocol-Version"] = rng.choice(["2025-06-18", "1999-01-01", ""])
        r = rng.random()
        if r < 0.03:
            return "GET", headers, b""
        if r < 0.05:
            return "DELETE", headers, b""
        if r < 0.15:
            return "POST", headers, rng.choice([*INVALID_UTF8, b"", b"\x00" * 10])
        if r < 0.25:
            return "POST", headers, rng.choice([*BROKEN_JSON, deep(5000)]).encode()
        if r < 0.27:
            return "POST", headers, b'"' + b"m" * (1024 * 1024 + 10) + b'"'
        message = self.message()
        if r < 0.35:
            message = "[" + ",".join(self.message() for _ in range(rng.randint(0, 4))) + "]"
        return "POST", headers, message.encode()

    def message(self) -> str:
        """One JSON-RPC message with odd members."""
        rng = self.rng
        method = rng.choice(
            [
                '"initialize"',
                '"ping"',
                '"tools/list"',
                '"tools/call"',
                '"notifications/x"',
                '"nope"',
                "5",
                "null",
            ]
        )
        members = [
            '"jsonrpc":' + rng.choice(['"2.0"', '"1.0"', "2", "null"]),
            f'"method":{method}',
        ]
        if rng.random() < 0.8:
            members.append(f'"id":{rng.choice(ODD_IDS)}')
        if rng.random() < 0.8:
            name = rng.choice(['"nodes_list"', '"node_invoke"', '"cron_add"', '"nope"', "5"])
            members.append(f'"params":{{"name":{name},"arguments":{self.values.any()}}}')
        if rng.random() < 0.1:  # a response to a request the server never made
            members = [f'"jsonrpc":"2.0","id":{rng.choice(ODD_IDS)},"result":{{}}']
        rng.shuffle(members)
        return "{" + ",".join(members) + "}"


class HttpCases:
    """Hostile requests on the HTTP API: (method, path, body)."""

    ROUTES = [
        "/healthz", "/", "/robots.txt", "/sessions", "/sessions/{id}", "/nodes", "/nodes/invoke",
        "/automation/state", "/automation/cron/jobs", "/automation/cron/jobs/{id}",
        "/automation/cron/jobs/{id}/runs", "/automation/systemEvent/enqueue",
        "/automation/heartbeat/now", "/metrics", "/nope", "/ws", "/nodes/ws",
    ]  # fmt: skip
    IDS = [
        "..", "..%2F..%2Fetc", "%00", "a%00b", "x" * 5000, "%ff%fe", "%C3%28", "a.b", "-",
        "0123456789ab", "%2e%2e", "~", "%20",
    ]  # fmt: skip

    def __init__(self, rng: random.Random, keep: set[str]) -> None:
        self.rng = rng
        self.values = Values(rng)
        self.keep = keep

    def request(self) -> tuple[str, str, bytes]:
        """The next request (never a DELETE of a session in ``keep``)."""
        rng = self.rng
        path = rng.choice(self.ROUTES).replace("{id}", rng.choice(self.IDS))
        method = rng.choice(["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"])
        if rng.random() < 0.3:
            path += "?" + rng.choice(["purge=1", "token=%00", "x=" + "q" * 3000, "since=-1"])
        r = rng.random()
        if r < 0.15:
            body = rng.choice(INVALID_UTF8)
        elif r < 0.3:
            body = rng.choice([*BROKEN_JSON, deep(5000)]).encode()
        elif r < 0.32:
            body = b'"' + b"b" * (1024 * 1024 + 10) + b'"'
        elif r < 0.4:
            body = b""
        else:
            fields = ["sessionId", "text", "at", "expr", "node", "command", "timeoutMs", "kind"]
            keys = rng.sample(fields, rng.randint(0, 5))
            vals = [self.values.any() for _ in keys]
            body = (
                "{" + ",".join(f'"{k}":{v}' for k, v in zip(keys, vals, strict=True)) + "}"
            ).encode()
        if any(s in path for s in self.keep):  # pragma: no cover - ids never collide
            method = "GET"
        return method, path, body


def close_payload(code: int) -> bytes:
    """A close frame's payload."""
    return struct.pack("!H", code)

"""A quick live fuzz (issue 9): hostile input on every surface of one real daemon.

A few hundred cases from a fixed seed (reproducible, bounded): lone surrogates in string
fields, odd ids of every JSON type, deep nesting, out-of-range numbers, invalid UTF-8 frames
and bodies, on /ws, /nodes/ws, /mcp and the HTTP API. Afterwards the daemon is alive,
another session still answers, and the daemon logged no traceback.
"""

from __future__ import annotations

import json
import random

import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from tests.harness import connect
from tests.rawws import close_code_after, frame, open_raw

SEED = 9
ODD_IDS = ['"\\ud800"', '"\\udfff"', "null", "true", "1e300", "-0", "[1]", '{"a":1}', "1" * 400]
STRINGS = ['"\\ud800"', '"a\\udc00b"', '"\\ud83d"', '"\\u0000"', '"' + "x" * 5000 + '"']
NUMBERS = ["1e300", "-1e300", "1" * 400, "-" + "9" * 30, "1e-400", "0.5"]
DEEP = "[" * 5000 + "]" * 5000
BAD_UTF8 = [b"\xc3\x28", b"\xff", b"\xed\xa0\x80", b'{"id":1,"method":"\xe2\x82"}']
HTTP_ROUTES = ["/mcp", "/automation/systemEvent/enqueue", "/automation/cron/jobs", "/nodes/invoke"]
METHODS = ["thread/list", "argus/cron/add", "argus/systemEvent/enqueue", "turn/start", "x"]


def odd_value(rng: random.Random) -> str:
    return rng.choice(STRINGS + NUMBERS + ODD_IDS + [DEEP])


def ws_frame(rng: random.Random) -> str:
    method = rng.choice(['"' + m + '"' for m in METHODS] + STRINGS + ["5"])
    params = {
        "text": odd_value(rng),
        "at": odd_value(rng),
        "threadId": odd_value(rng),
        "jobId": odd_value(rng),
        "expr": odd_value(rng),
    }
    chosen = rng.sample(sorted(params), rng.randint(0, len(params)))
    body = ",".join(f'"{k}":{params[k]}' for k in chosen)
    return f'{{"id":{rng.choice(ODD_IDS)},"method":{method},"params":{{{body}}}}}'


def http_body(rng: random.Random, session_id: str) -> bytes:
    kind = rng.randrange(3)
    if kind == 0:
        return rng.choice(BAD_UTF8)
    if kind == 1:
        return DEEP.encode()
    fields = {"sessionId": json.dumps(session_id), "text": odd_value(rng), "at": odd_value(rng)}
    fields |= {"jsonrpc": '"2.0"', "id": rng.choice(ODD_IDS), "method": '"tools/call"'}
    fields |= {"node": odd_value(rng), "command": odd_value(rng), "jobId": odd_value(rng)}
    return ("{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}").encode()


async def test_live_fuzz_leaves_the_daemon_and_other_sessions_working(daemon) -> None:
    rng = random.Random(SEED)
    with trio.fail_after(120):
        async with connect(daemon) as bystander, connect(daemon) as target:
            await bystander.handshake()
            await target.handshake()
            for _ in range(200):  # /ws: every reply arrives, the connection stays
                await target.ws.send_message(ws_frame(rng))
            await target.ws.send_message('{"id":"end","method":"thread/list","params":{}}')
            await target.recv_until(lambda m: m.get("id") == "end", timeout=30)
            async with daemon.http() as http:
                for _ in range(120):
                    route = rng.choice(HTTP_ROUTES)
                    response = await http.post(route, content=http_body(rng, target.id))
                    assert response.status_code < 500, (route, response.text)
            async with open_websocket_url(daemon.ws_url + "/nodes/ws") as node:
                await node.send_message(json.dumps({"type": "connect", "nodeId": "fuzz"}))
                await node.get_message()
                for _ in range(60):
                    payload = "{" + f'"nodeId":{odd_value(rng)},"id":{odd_value(rng)}' + "}"
                    text = f'{{"type":"event","event":"node.invoke.result","payload":{payload}}}'
                    await node.send_message(rng.choice([text, DEEP, ws_frame(rng)]))
                await node.send_message(json.dumps({"type": "event", "event": "x", "payload": {}}))
            for path in ("/ws", "/nodes/ws"):
                for bad in BAD_UTF8:
                    stream = await open_raw(daemon, path)
                    code = await close_code_after(stream, frame(0x1, bad))
                    assert code == 1007, (path, bad, code)
                    await stream.aclose()
            try:
                assert (await bystander.request("thread/list"))["result"] is not None
            except ConnectionClosed as exc:  # pragma: no cover - the failure being tested
                raise AssertionError(f"the other session's client was closed: {exc}") from exc
        async with connect(daemon) as fresh:
            await fresh.handshake()
        async with daemon.http() as http:
            assert (await http.get("/healthz")).json() == {"ok": True}
    assert daemon.process.returncode is None
    assert "Traceback" not in daemon.log_text

"""The node registry's rules: replacement, result routing, disconnects, bounds."""

from __future__ import annotations

from typing import Any

import trio

from argus.auth import derive_session_token
from argus.nodes.registry import NodeConnection, NodeRegistry
from argus.nodes.scope import ADMIN, Principal, Scopes, parse_allow_list


def node(
    node_id: str, sent: list[dict[str, Any]], commands: list[str] | None = None
) -> NodeConnection:
    async def send(frame: dict[str, Any]) -> None:
        sent.append(frame)

    commands = ["system.run"] if commands is None else commands
    return NodeConnection(node_id, None, None, None, [], commands, send)


async def test_results_count_only_from_the_connection_asked(autojump_clock: Any) -> None:
    registry = NodeRegistry()
    sent_a: list[dict[str, Any]] = []
    a, b = node("a", sent_a), node("b", [])
    registry.register(a)
    registry.register(b)
    outcome: dict[str, Any] = {}

    async def call() -> None:
        outcome.update(await registry.invoke("a", "system.run", {"argv": ["true"]}, 5000))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call)
        await trio.sleep(0.1)
        invoke_id = sent_a[0]["payload"]["id"]
        assert sent_a[0]["payload"]["timeoutMs"] == 5000
        assert not registry.on_result(b, {"id": invoke_id, "ok": True, "payload": "forged"})
        assert registry.on_result(a, {"id": invoke_id, "ok": True, "payload": {"x": 1}})
    assert outcome["ok"] is True and outcome["payload"] == {"x": 1}


async def test_replacement_and_disconnect_fail_pending_at_once(autojump_clock: Any) -> None:
    registry = NodeRegistry()
    first = node("mac", [])
    registry.register(first)
    results: list[dict[str, Any]] = []

    async def call() -> None:
        results.append(await registry.invoke("mac", "system.run", None, 60_000))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call)
        await trio.sleep(0.1)
        second = node("mac", [])
        assert registry.register(second) is first and first.replaced.is_set()
        assert not registry.unregister(first)  # the old handler's cleanup is a no-op
        nursery.start_soon(call)
        await trio.sleep(0.1)
        registry.unregister(second)
    assert [r["error"]["code"] for r in results] == ["NODE_REPLACED", "NODE_DISCONNECTED"]
    assert trio.current_time() < 1  # nobody waited for the 60 s timeout


async def test_gateway_side_errors(autojump_clock: Any) -> None:
    registry = NodeRegistry(max_timeout_ms=2000)
    registry.register(node("quiet", [], commands=[]))
    registry.register(node("slow", []))
    assert (await registry.invoke("nope", "x", None, None))["error"]["code"] == "NOT_CONNECTED"
    empty = await registry.invoke("quiet", "system.run", None, None)
    assert empty["error"]["code"] == "UNSUPPORTED"  # an empty list is not "everything"
    bad = await registry.invoke("slow", "system.run", {"x": object()}, None)
    assert bad["error"]["code"] == "BAD_PARAMS"
    start = trio.current_time()
    late = await registry.invoke("slow", "system.run", None, 10**9)
    assert late["error"]["code"] == "TIMEOUT" and trio.current_time() - start == 2.0
    assert registry.pending == {}


def test_scopes() -> None:
    scopes = Scopes("admin", None, "admin", parse_allow_list("mac, s2/build-*"))
    token = derive_session_token("admin", "s1")
    s1 = scopes.principal(token)
    assert s1 == Principal("s1") and scopes.principal("admin") == ADMIN
    assert scopes.principal("wrong") is None
    assert scopes.may_reach(s1, "runtime:s1") and scopes.may_reach(s1, "mac")  # type: ignore[arg-type]
    assert not scopes.may_reach(s1, "runtime:s2")  # type: ignore[arg-type]
    assert not scopes.may_reach(s1, "build-1")  # type: ignore[arg-type]
    assert scopes.may_reach(Principal("s2"), "build-1")
    assert scopes.node_principal("admin") == ADMIN  # the node token falls back to the admin's

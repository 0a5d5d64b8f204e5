"""Several clients on one session, approvals, and what survives a client leaving."""

from __future__ import annotations

import pytest
import trio

from tests.harness import Client, connect


def agent_text(messages: list[dict]) -> str:
    """The text a client builds from the deltas it saw."""
    return "".join(
        m["params"]["delta"] for m in messages if m.get("method") == "item/agentMessage/delta"
    )


def is_turn_completed(m: dict) -> bool:
    return m.get("method") == "turn/completed"


def is_approval(m: dict) -> bool:
    return m.get("method") == "item/commandExecution/requestApproval"


async def sessions(daemon) -> list[dict]:
    async with daemon.http() as http:
        return (await http.get("/sessions")).json()["sessions"]


async def test_two_clients_share_one_runtime(daemon) -> None:
    with trio.fail_after(30):
        async with connect(daemon) as a:
            init_a = await a.handshake()
            async with connect(daemon, session=a.id) as b:
                assert (b.session["attached"], b.session["created"]) == (True, False)
                assert await b.handshake() == init_a  # answered from the cache
                thread = await a.start_thread()
                await a.start_turn(thread, "hello there")
                await a.recv_until(is_turn_completed)
                await b.recv_until(is_turn_completed)
                assert agent_text(a.seen) == agent_text(b.seen) == "echo: hello there"
                # b never saw a's responses.
                assert not [m for m in b.seen if "result" in m and m.get("id") != "r1"]
                [entry] = await sessions(daemon)
                assert entry["clients"] == 2


async def test_leaving_mid_turn_stops_nothing(daemon) -> None:
    with trio.fail_after(30):
        async with connect(daemon) as watcher:
            await watcher.handshake()
            pid = (await sessions(daemon))[0]["pid"]
            async with connect(daemon, session=watcher.id) as driver:
                await driver.handshake()
                thread = await driver.start_thread()
                await driver.start_turn(thread, "/slow 20 20")
                await driver.recv_until(lambda m: m.get("method") == "item/agentMessage/delta")
            # The driver left; the turn goes on for the watcher.
            await watcher.recv_until(is_turn_completed)
            assert agent_text(watcher.seen) == "".join(f"{i:08d}" for i in range(20))
            [entry] = await sessions(daemon)
            assert entry["pid"] == pid and entry["state"] == "running"


async def test_output_while_nobody_listens_goes_to_next_client(daemon) -> None:
    with trio.fail_after(30):
        async with connect(daemon) as client:
            await client.handshake()
            thread = await client.start_thread()
            await client.start_turn(thread, "/slow 10 100")
            await client.recv_until(lambda m: m.get("method") == "turn/started")
            seen_before = list(client.seen)
        await trio.sleep(0.6)  # the rest of the turn happens with no client attached
        async with connect(daemon, session=client.id) as later:
            await later.recv_until(is_turn_completed)
            assert agent_text(seen_before + later.seen) == "".join(f"{i:08d}" for i in range(10))


async def approve_turn(client: Client, text: str = "/approve touch x") -> dict:
    thread = await client.start_thread()
    await client.start_turn(thread, text)
    return await client.recv_until(is_approval)


async def test_approval_round_trip_goes_to_turn_owner(daemon) -> None:
    with trio.fail_after(30):
        async with connect(daemon) as owner, connect(daemon, session=owner.id) as other:
            await owner.handshake()
            await other.handshake()
            request = await approve_turn(owner)
            assert request["params"]["command"] == "touch x"
            await owner.send({"id": request["id"], "result": {"decision": "accept"}})
            done = await owner.recv_until(
                lambda m: (
                    m.get("method") == "item/completed"
                    and m["params"]["item"]["type"] == "commandExecution"
                )
            )
            assert done["params"]["item"]["status"] == "completed"
            await owner.recv_until(is_turn_completed)
            await other.recv_until(is_turn_completed)
            assert not [m for m in other.seen if is_approval(m)]
            assert [m for m in other.seen if m.get("method") == "serverRequest/resolved"]


async def test_decline(daemon) -> None:
    with trio.fail_after(30):
        async with connect(daemon) as client:
            await client.handshake()
            request = await approve_turn(client)
            await client.send({"id": request["id"], "result": {"decision": "decline"}})
            done = await client.recv_until(
                lambda m: (
                    m.get("method") == "item/completed"
                    and m["params"]["item"]["type"] == "commandExecution"
                )
            )
            assert done["params"]["item"]["status"] == "declined"
            await client.recv_until(is_turn_completed)


async def test_pending_approval_moves_to_remaining_client(daemon) -> None:
    with trio.fail_after(30):
        async with connect(daemon) as other:
            await other.handshake()
            async with connect(daemon, session=other.id) as owner:
                await owner.handshake()
                request = await approve_turn(owner)
            # The owner left without answering: nothing is declined, the other client gets it.
            moved = await other.recv_until(is_approval)
            assert moved == request
            await other.send({"id": moved["id"], "result": {"decision": "accept"}})
            await other.recv_until(is_turn_completed)


async def test_pending_approval_replayed_to_later_client_once(daemon) -> None:
    with trio.fail_after(30):
        async with connect(daemon) as first:
            await first.handshake()
            request = await approve_turn(first)
        await trio.sleep(0.2)
        async with connect(daemon, session=first.id) as second:
            replayed = await second.recv_until(is_approval)
            assert replayed["id"] == request["id"]
            await second.send({"id": replayed["id"], "result": {"decision": "accept"}})
            # A second answer to the same request is not forwarded (the turn is unaffected).
            await second.send({"id": replayed["id"], "result": {"decision": "cancel"}})
            completed = await second.recv_until(is_turn_completed)
            assert completed["params"]["turn"]["status"] == "completed"
        async with connect(daemon, session=first.id) as third:
            await third.handshake()
            await third.request("thread/list", {})
            assert not [m for m in third.seen if is_approval(m)]


@pytest.mark.parametrize("query", [{}, {"coalesce": 0}])
async def test_fast_client_gets_every_delta(daemon, query) -> None:
    with trio.fail_after(60):
        async with connect(daemon, seq=1, **query) as client:
            await client.handshake()
            thread = await client.start_thread()
            await client.start_turn(thread, "/stream 20000")
            await client.recv_until(is_turn_completed, timeout=30)
            assert agent_text(client.seen) == "".join(f"{i:08d}" for i in range(20000))
            deltas = [m for m in client.seen if m.get("method") == "item/agentMessage/delta"]
            if query:
                assert len(deltas) == 20000
                assert not [m for m in deltas if "argusSeqFrom" in m]
            covered = sum(m["argusSeq"] - m.get("argusSeqFrom", m["argusSeq"]) + 1 for m in deltas)
            assert covered == 20000

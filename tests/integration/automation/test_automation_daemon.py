"""Automation through the real daemon: follow-ups over /ws, crash recovery, HTTP, the store."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from tests.harness import Client, connect, daemon_env, run_daemon, text_input


def results(client: Client) -> list[dict[str, Any]]:
    """The ``argus/turn/result`` notifications the client has seen."""
    return [m["params"] for m in client.seen if m.get("method") == "argus/turn/result"]


async def wait_results(client: Client, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    with trio.fail_after(timeout):
        while len(results(client)) < count:
            await client.recv(timeout)
    return results(client)


async def test_followups_queued_during_a_turn_run_in_order(daemon: Any) -> None:
    async with connect(daemon) as client:
        first = (await client.request("argus/input/enqueue", {"text": "/slow 5 100"}))["result"]
        assert first["started"] is True and first["turnId"]
        for i, word in enumerate(("alpha", "bravo", "charlie"), 1):
            queued = (await client.request("argus/input/enqueue", {"text": word}))["result"]
            assert queued == {
                "ok": True,
                "threadId": first["threadId"],
                "queued": True,
                "started": False,
                "followupDepth": i,
            }
        done = await wait_results(client, 4)
        order = [next(w for w in ("alpha", "bravo", "charlie") if w in r["text"]) for r in done[1:]]
        assert order == ["alpha", "bravo", "charlie"]
        # One follow-up per turn, never interleaved: each turn's start follows the last end.
        events = [
            m["method"]
            for m in client.seen
            if m.get("method") in ("turn/started", "turn/completed")
        ]
        assert events == ["turn/started", "turn/completed"] * 4


async def test_a_clients_own_turn_makes_enqueue_wait(daemon: Any) -> None:
    async with connect(daemon) as client:
        await client.handshake()
        thread_id = await client.start_thread()
        await client.start_turn(thread_id, "/slow 5 100")
        queued = await client.request(
            "argus/input/enqueue", {"text": "later", "threadId": thread_id}
        )
        assert queued["result"]["queued"] is True
        done = await wait_results(client, 1)
        assert "later" in done[0]["text"] and done[0]["kind"] == "followup"


async def test_kill_9_loses_no_queued_input_or_event(tmp_path: Path) -> None:
    home = tmp_path / "home"
    async with run_daemon(home) as first:
        async with connect(first) as client:
            started = await client.request("argus/input/enqueue", {"text": "/slow 200 100"})
            thread_id = started["result"]["threadId"]
            for word in ("one", "two", "three"):
                await client.request("argus/input/enqueue", {"text": f"queued {word}"})
            for i in range(3):
                await client.request("argus/systemEvent/enqueue", {"text": f"event {i}"})
            session_id = client.id
            await first.stop(signal.SIGKILL)
    async with run_daemon(home) as second:
        async with connect(second, session=session_id) as client:
            done = await wait_results(client, 3, timeout=60)
            texts = [r["text"] for r in done]
            assert all(r["threadId"] == thread_id for r in done)
            assert [
                "queued one" in texts[0],
                "queued two" in texts[1],
                "queued three" in texts[2],
            ] == [True] * 3
            # The events rode the first turn after the restart, once.
            assert all(f"event {i}" in texts[0] for i in range(3))
            assert not any("event 0" in t for t in texts[1:])
            await client.handshake()
            thread = await client.request(
                "thread/read", {"threadId": thread_id, "includeTurns": True}
            )
            turns = thread["result"]["thread"]["turns"]
            inputs = [str(t) for t in turns]
            for word in ("one", "two", "three"):
                assert sum(f"queued {word}" in t for t in inputs) == 1
        async with second.http() as http:
            state = (await http.get("/automation/state")).json()
        assert state["persisted"]["followups"] == [] and state["persisted"]["systemEvents"] == []


async def test_a_corrupt_database_stops_the_daemon_with_a_message(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = home / "gateway" / "argus.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"garbage" * 1000)
    with trio.fail_after(60):  # it must exit by itself, never start serving
        proc = await trio.run_process(
            [sys.executable, "-m", "argus", "serve", "--port", "0"],
            env=daemon_env(home),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    assert proc.returncode == 3
    message = proc.stderr.decode()
    assert "not a usable SQLite database" in message and str(db) in message
    assert "Traceback" not in message
    assert db.read_bytes() == b"garbage" * 1000


async def test_automation_http_validates_before_side_effects(daemon_factory: Any) -> None:
    async with daemon_factory(ARGUS_TOKEN="s3cret") as daemon:
        async with daemon.http() as anon:
            assert (await anon.get("/automation/state")).status_code == 401
        async with daemon.http("s3cret") as http:
            r = await http.post("/automation/systemEvent/enqueue", json={"sessionId": "nope"})
            assert r.status_code == 400 and r.json()["detail"] == "Missing 'text'"
            r = await http.post(
                "/automation/systemEvent/enqueue", json={"sessionId": "nope", "text": "x"}
            )
            assert r.status_code == 404 and r.json()["code"] == "session_not_found"
            assert (await http.get("/sessions")).json()["sessions"] == []
            headers = [("Authorization", "Bearer s3cret")]
            async with connect(daemon, headers=headers) as client:
                session_id = client.id
                r = await http.post(
                    "/automation/systemEvent/enqueue",
                    json={"sessionId": session_id, "text": "disk almost full", "kind": "alert"},
                )
                assert r.status_code == 200
                body = r.json()
                assert body["event"]["kind"] == "alert" and body["threadId"]
                done = await wait_results(client, 1)
                assert "[alert at=" in done[0]["text"] and done[0]["kind"] == "heartbeat"
            bad = {"sessionId": session_id, "expr": "61 * * * *", "text": "x"}
            r = await http.post("/automation/cron/jobs", json=bad)
            assert r.status_code == 400 and r.json()["detail"]
            r = await http.post(
                "/automation/cron/jobs",
                json={
                    "sessionId": session_id,
                    "expr": "0 9 * * *",
                    "tz": "Europe/Berlin",
                    "text": "secret plan",
                },
            )
            assert r.status_code == 200
            job_id = r.json()["job"]["jobId"]
            state = (await http.get("/automation/state")).json()
            assert "secret plan" not in str(state) and "disk almost full" not in str(state)
            assert state["cron"]["jobs"][0]["nextRunAtMs"] is not None
            assert (await http.get("/automation/cron/jobs")).json()["jobs"][0][
                "text"
            ] == "secret plan"
            assert (await http.delete(f"/automation/cron/jobs/{job_id}")).status_code == 200
            assert (await http.delete(f"/automation/cron/jobs/{job_id}")).status_code == 404
            assert (await http.post("/automation/heartbeat/now", json={})).json() == {"ok": True}


async def test_a_refused_client_turn_does_not_hold_the_lane(daemon: Any) -> None:
    async with connect(daemon) as client:
        await client.handshake()
        thread_id = await client.start_thread()
        refused = await client.request(
            "turn/start", {"threadId": "no-such-thread", "input": text_input("hi")}
        )
        assert "error" in refused
        # The lane of a real thread is unaffected, and the refused one is free again:
        # an input for it is tried at once (and fails on the unknown thread), not parked
        # behind a turn that never started.
        ghost = await client.request(
            "argus/input/enqueue", {"text": "hello", "threadId": "no-such-thread"}
        )
        assert ghost["result"]["queued"] is True and "startError" in ghost["result"]
        real = await client.request("argus/input/enqueue", {"text": "hi", "threadId": thread_id})
        assert real["result"]["started"] is True

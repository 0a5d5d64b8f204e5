"""When SQLite cannot write, an enqueue is refused (not acknowledged) and nothing is lost.

The store's directory is a 4 MiB tmpfs the test mounts (root only). While a turn waits for
an approval (so its lane stays busy and queued inputs stay queued), the disk is filled to
the last byte: every enqueue on /ws answers -32004 and every one over HTTP 503, and the
daemon keeps serving. (A read-only remount is not possible while SQLite holds the files
open; a full disk is the fault tested.) Once the disk has room again, enqueues are
accepted, and after the approval every acknowledged input runs exactly once; the refused
ones never run.

Not root, or no tmpfs: skipped with the reason (a failure under ARGUS_REQUIRE_REAL_PEERS=1
when running as root, where mounting must work).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.harness import Client, connect, run_daemon

APPROVAL = "item/commandExecution/requestApproval"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """``<home>/gateway`` on a 4 MiB tmpfs; yields the home."""
    home = tmp_path / "home"
    store_dir = home / "gateway"
    store_dir.mkdir(parents=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    mount = ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "argus-test", str(store_dir)]
    done = subprocess.run(mount, capture_output=True, text=True)
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs: {done.stderr.strip()}"
        if os.environ.get("ARGUS_REQUIRE_REAL_PEERS") == "1":
            pytest.fail(f"{reason} (ARGUS_REQUIRE_REAL_PEERS=1, running as root)")
        pytest.skip(reason)
    try:
        yield home
    finally:
        subprocess.run(["umount", "-l", str(store_dir)], capture_output=True)


async def enqueue(client: Client, thread_id: str, marker: str) -> dict:
    """``argus/input/enqueue`` of a one-delta turn saying ``marker``."""
    params = {"text": f"/quiet {marker}", "threadId": thread_id}
    return await client.request("argus/input/enqueue", params, timeout=30)


async def test_a_store_that_cannot_write_refuses_and_recovers(small_disk: Path) -> None:
    store_dir = small_disk / "gateway"
    with trio.fail_after(90):
        async with run_daemon(small_disk, env={"ARGUS_RUNTIME_NODE": "0"}) as daemon:
            async with connect(daemon) as client, daemon.http() as http:
                await client.handshake()
                ensure = await client.request("argus/thread/main/ensure", {})
                thread_id = ensure["result"]["threadId"]
                first = await client.request(
                    "argus/input/enqueue", {"text": "/approve hold", "threadId": thread_id}
                )
                assert first["result"]["started"] is True
                seen = [msg for msg in client.seen if msg.get("method") == APPROVAL]
                approval = (
                    seen[0]
                    if seen
                    else await client.recv_until(lambda msg: msg.get("method") == APPROVAL)
                )
                acked = ["A1", "A2"]
                for marker in acked:
                    assert (await enqueue(client, thread_id, marker))["result"]["queued"]
                filler = store_dir / "filler"
                await trio.run_process(
                    ["dd", "if=/dev/zero", f"of={filler}", "bs=64k"],
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
                refused = []
                for n in range(3):
                    marker = f"R{n}"
                    reply = await enqueue(client, thread_id, marker)
                    assert reply["error"]["code"] == -32004, reply
                    assert "nothing was changed" in reply["error"]["message"]
                    refused.append(marker)
                r = await http.post(
                    "/automation/systemEvent/enqueue", json={"sessionId": client.id, "text": "x"}
                )
                assert r.status_code == 503 and r.json()["code"] == "store_unavailable"
                assert (await http.get("/healthz")).json() == {"ok": True}
                assert (await client.request("thread/list"))["result"] is not None
                filler.unlink()  # the disk has room again
                reply = await enqueue(client, thread_id, "B1")
                assert reply["result"]["ok"] is True
                acked.append("B1")
                await client.send({"id": approval["id"], "result": {"decision": "accept"}})
                with trio.fail_after(60):
                    while True:
                        state = (await http.get("/automation/state")).json()
                        busy = [lane for lane in state["runtime"]["lanes"] if lane["busy"]]
                        if not state["persisted"]["followups"] and not busy:
                            break
                        await trio.sleep(0.1)
                read = await client.request(
                    "thread/read", {"threadId": thread_id, "includeTurns": True}
                )
            turns = [str(turn) for turn in read["result"]["thread"]["turns"]]
            for marker in acked:
                assert sum(f"/quiet {marker}" in t for t in turns) == 1, marker
            for marker in refused:
                assert not any(f"/quiet {marker}" in t for t in turns), marker
            assert "store unavailable" in daemon.log_text
            assert "Traceback" not in daemon.log_text

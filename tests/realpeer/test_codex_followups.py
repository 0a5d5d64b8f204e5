"""The follow-up queue against the real ``codex app-server`` (offline, fake model).

Inputs queued while codex is busy run as the next turns, in order, one per turn; each
reaches the model with the project context the gateway adds, and each answer comes back
to the client as ``argus/turn/result``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from argus.testing import run_daemon
from tests.harness import connect
from tests.realpeer.codex_home import make_codex_home
from tests.realpeer.fake_model import FakeModel

pytestmark = pytest.mark.codex


async def test_followups_run_in_order_on_codex(
    tmp_path: Path, codex_bin: str, fake_model: FakeModel
) -> None:
    env = make_codex_home(tmp_path, fake_model.base_url)
    env["ARGUS_RUNTIME_CMD"] = f"{codex_bin} app-server"
    fake_model.queue_text("answer one, slowly", chunks=10, delay=0.1)
    fake_model.queue_text("answer two", chunks=2)
    fake_model.queue_text("answer three", chunks=2)
    with trio.fail_after(180):
        async with run_daemon(tmp_path / "home", env=env) as daemon:
            async with connect(daemon) as client:
                first = await client.request(
                    "argus/input/enqueue", {"text": "first question"}, timeout=60
                )
                assert first["result"]["started"] is True, first
                second = await client.request("argus/input/enqueue", {"text": "second question"})
                third = await client.request("argus/input/enqueue", {"text": "third question"})
                assert second["result"]["followupDepth"] == 1
                assert third["result"]["followupDepth"] == 2
                results = []
                while len(results) < 3:
                    msg = await client.recv_until(
                        lambda m: m.get("method") == "argus/turn/result", timeout=90
                    )
                    results.append(msg["params"])
    assert [r["text"] for r in results] == ["answer one, slowly", "answer two", "answer three"]
    assert all(r["status"] == "completed" for r in results)
    asked = [str(req["input"]) for req in fake_model.requests]
    firsts = [next(i for i, a in enumerate(asked) if q in a) for q in ("first", "second", "third")]
    assert firsts == sorted(firsts)
    assert "# Project Context" in asked[firsts[1]]  # the gateway's context block reached codex

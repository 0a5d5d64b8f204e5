"""Failure boundaries (issue 9): a bug while serving one client or one session stays there.

These inject the bug itself (a send that raises, a hook that raises on a runtime
notification): no client input reaches such a bug today, which is what the boundaries are
for when one does.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import trio

from argus.boundary import contained
from argus.config import Settings
from argus.sessions.hooks import SessionHooks
from argus.sessions.manager import SessionManager
from argus.sessions.replay import ReplayBuffer
from tests.automation_kit import InProcessProvisioner
from tests.unit.sessions.subscriber_helpers import FakeClient, append_note, new_subscriber, settle


async def test_a_failing_send_closes_that_client_only(nursery: trio.Nursery, caplog) -> None:
    with trio.fail_after(10):
        replay = ReplayBuffer(1 << 20)
        healthy = FakeClient()

        async def broken_send(text: str) -> None:
            raise ValueError("a bug in the send path")

        bad = new_subscriber(replay, healthy, with_seq=False)
        bad.send_text = broken_send
        good = new_subscriber(replay, healthy, with_seq=False)
        bad.start_in(nursery)
        good.start_in(nursery)
        append_note(replay, "n1")
        bad.wake()
        good.wake()
        await bad.done.wait()
        await settle()
        assert (bad.close_code, bad.close_reason) == (1011, "Internal error")
        assert good.close_code is None and [json.loads(f)["method"] for f in healthy.frames] == [
            "n1"
        ]
        assert "internal error while sending" in caplog.text


async def test_contained_logs_and_stops_an_exception_but_not_cancellation(caplog) -> None:
    async def fails() -> None:
        raise KeyError("boom")

    await contained(fails, "test job")()
    assert "test job failed" in caplog.text
    with trio.move_on_after(0.01) as scope:
        await contained(trio.sleep_forever, "sleeper")()
    assert scope.cancelled_caught


class FailingHooks(SessionHooks):
    """Raises on ``thread/started`` for one session: a bug in routing its runtime output."""

    def __init__(self) -> None:
        self.victim = ""

    def on_notification(self, session: Any, method: str, params: dict[str, Any]) -> None:
        if session.id == self.victim and method == "thread/started":
            raise RuntimeError("a bug while routing runtime output")


async def _request(session: Any, client: FakeClient, sub: Any, method: str, req_id: int) -> Any:
    params = {"clientInfo": {"name": "test", "version": "1"}}
    frame = {"id": req_id, "method": method, "params": params}
    await session.handle_client_text(sub, json.dumps(frame))
    while True:
        for obj in client.objs:
            if obj.get("id") == req_id:
                return obj
        await trio.sleep(0.01)


@pytest.mark.filterwarnings("ignore")
async def test_a_failing_session_ends_that_session_only(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    hooks = FailingHooks()
    manager = SessionManager(
        Settings(home_host_path=tmp_path), InProcessProvisioner(tmp_path), hooks
    )
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(manager.serve)
            victim, bystander = await manager.create(), await manager.create()
            hooks.victim = victim.id
            attached = {}
            for session in (victim, bystander):
                await session.ensure_running()
                client = FakeClient()
                sub, _ = session.attach(client.send_text, since=None, with_seq=False, coalesce=True)
                session.start_sender(sub)
                attached[session.id] = (client, sub)
                await _request(session, client, sub, "initialize", 1)
            client, sub = attached[victim.id]
            await session_handle(victim, sub, {"id": 2, "method": "thread/start", "params": {}})
            await sub.done.wait()
            assert sub.close_code == 1011 and sub.close_reason.startswith("Session failed")
            await victim.finished.wait()
            client, sub = attached[bystander.id]
            reply = await _request(bystander, client, sub, "thread/list", 3)
            assert "result" in reply
            nursery.cancel_scope.cancel()
    assert f"session failed session={victim.id}" in caplog.text


async def session_handle(session: Any, sub: Any, obj: dict[str, Any]) -> None:
    await session.handle_client_text(sub, json.dumps(obj))

"""Work per attach does not grow with the clients already attached (issue 14).

A session with many idle clients: a new client attaching, making one request and getting
its answer must not visit any of the idle ones, and neither must its leaving. Visits are
counted (calls into each subscriber), not timed. The session runs the real demo runtime
in the default (bridged) mode, where every response also takes a directed placeholder in
the replay log. A broadcast, by contrast, must reach each client once.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from argus.config import load_settings
from argus.provision.local import LocalProvisioner
from argus.sessions.manager import SessionManager
from argus.sessions.session import Session
from argus.sessions.subscriber import Subscriber

COUNTED = ("wake", "has_pending", "backlog_bytes", "push", "request_close")


class Client:
    """A subscriber's frames, as a WebSocket handler would send them."""

    def __init__(self, session: Session) -> None:
        self.frames: list[dict[str, Any]] = []
        self.sub, _ = session.attach(self.send_text, since=None, with_seq=False, coalesce=True)
        session.start_sender(self.sub)

    async def send_text(self, text: str) -> None:
        self.frames.append(json.loads(text))

    async def answer(self, session: Session, request_id: str, method: str) -> dict[str, Any]:
        request = {"id": request_id, "method": method, "params": {}}
        await session.handle_client_text(self.sub, json.dumps(request))
        with trio.fail_after(20):
            while True:
                for frame in self.frames:
                    if frame.get("id") == request_id:
                        return frame
                await trio.sleep(0.005)


@pytest.fixture
def visits(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[int]:
    """Calls into each subscriber (by key), counted for every method in COUNTED."""
    counter: collections.Counter[int] = collections.Counter()

    def counting(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Subscriber, *args: Any, **kwargs: Any) -> Any:
            counter[self.key] += 1
            return original(self, *args, **kwargs)

        return wrapper

    for name in COUNTED:
        monkeypatch.setattr(Subscriber, name, counting(getattr(Subscriber, name)))
    return counter


async def session_with_idle_clients(
    tmp_path: Path, nursery: trio.Nursery, idle: int
) -> tuple[Session, list[Client]]:
    settings = load_settings(environ={"ARGUS_HOME_HOST_PATH": str(tmp_path)})
    manager = SessionManager(settings, LocalProvisioner(settings))
    await nursery.start(manager.serve)
    session = await manager.create()
    await session.ensure_running()
    first = Client(session)
    await first.answer(session, "init", "initialize")
    clients = [first]
    for i in range(idle):
        client = Client(session)
        await client.answer(session, f"c{i}", "thread/list")
        clients.append(client)
    return session, clients


async def one_attach(session: Session, visits: collections.Counter[int]) -> int:
    """Visits spent on a client attaching, asking once, being answered and leaving."""
    visits.clear()
    newcomer = Client(session)
    answer = await newcomer.answer(session, "ask", "thread/list")
    assert "result" in answer
    session.detach(newcomer.sub)
    await trio.testing.wait_all_tasks_blocked()
    return sum(visits.values())


async def test_attach_visits_no_idle_client(
    tmp_path: Path, nursery: trio.Nursery, visits: collections.Counter[int]
) -> None:
    session, clients = await session_with_idle_clients(tmp_path, nursery, idle=60)
    with trio.fail_after(60):
        small = await one_attach(session, visits)
        assert not any(visits[c.sub.key] for c in clients)  # nobody idle was touched
        for i in range(200):  # the session grows to 260 idle clients
            client = Client(session)
            await client.answer(session, f"more{i}", "thread/list")
            clients.append(client)
        large = await one_attach(session, visits)
        assert not any(visits[c.sub.key] for c in clients)
        # The same work whether 60 or 260 clients are attached.
        assert large == small
        # Those idle clients still get what is meant for everyone, each once.
        visits.clear()
        session.note("argus/test", {"hello": True})
        await trio.testing.wait_all_tasks_blocked()
        with trio.fail_after(10):
            while not all(any(f.get("method") == "argus/test" for f in c.frames) for c in clients):
                await trio.sleep(0.01)
        for client in clients:
            assert [f for f in client.frames if f.get("method") == "argus/test"] == [
                {"method": "argus/test", "params": {"hello": True}}
            ]
    session.stop()

"""The daemon's own calls share the runtime connection and its handshake with clients."""

from __future__ import annotations

from pathlib import Path

import trio

from argus.config import load_settings
from argus.provision.local import LocalProvisioner
from argus.sessions.manager import SessionManager
from argus.sessions.session import RuntimeCallError


async def test_internal_calls_and_clients_share_one_handshake(tmp_path: Path, nursery) -> None:
    settings = load_settings(environ={"ARGUS_HOME_HOST_PATH": str(tmp_path)})
    manager = SessionManager(settings, LocalProvisioner(settings))
    await nursery.start(manager.serve)
    with trio.fail_after(30):
        session = await manager.create()
        received: list[str] = []

        async def send_text(text: str) -> None:
            received.append(text)

        sub, _ = session.attach(send_text, since=None, with_seq=False, coalesce=True)
        session.start_sender(sub)
        await session.ensure_running()
        # A client initialize and the daemon's own call race for the one handshake.
        async with trio.open_nursery() as race:
            race.start_soon(
                session.handle_client_text,
                sub,
                '{"id": "c1", "method": "initialize", "params": {}}',
            )
            race.start_soon(session.call, "thread/list", {})
        started = await session.call("thread/start", {})
        assert started["thread"]["id"]
        listed = await session.call("thread/list", {})
        assert [t["id"] for t in listed["data"]] == [started["thread"]["id"]]
        try:
            await session.call("no/such/method", {})
        except RuntimeCallError as exc:
            assert exc.error["code"] == -32601
        else:
            raise AssertionError("expected a JSON-RPC error")
        with trio.fail_after(5):
            while not any('"c1"' in text for text in received):
                await trio.sleep(0.01)
        reply = next(text for text in received if '"c1"' in text)
        assert '"result"' in reply and "Already initialized" not in reply
        # The client saw the daemon's thread/started broadcast, but none of its responses.
        assert any("thread/started" in text for text in received)
        assert not any('"data"' in text for text in received)
        await manager.stop_all()

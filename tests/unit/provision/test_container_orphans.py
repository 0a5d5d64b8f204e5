"""The orphan guard every container engine shares, on an in-memory listing."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from argus.config import load_settings
from argus.provision.base import GatewayLink, ProvisionError
from argus.provision.container import ContainerProvisioner, Endpoint, Owned


class Listed(ContainerProvisioner):
    """Lists what ``items`` holds; ``ensure`` creates an item (a runtime being started)."""

    mode = "memory"

    def __init__(self, tmp_path: Path) -> None:
        environ = {"ARGUS_HOME_HOST_PATH": str(tmp_path), "ARGUS_CONNECT_TIMEOUT_S": "0.05"}
        super().__init__(load_settings(environ=environ))
        self.gateway = GatewayLink("http://127.0.0.1:1", "k" * 32)
        self.items: list[Owned] = []
        self.removed: list[str] = []
        self.listed = trio.Event()
        self.go_on = trio.Event()

    async def ensure(self, session_id: str) -> Endpoint:
        self.items.append(Owned(session_id, self.name(session_id), True))
        return Endpoint("127.0.0.1", 1)

    async def list_ours(self) -> list[Owned]:
        self.listed.set()
        await self.go_on.wait()
        return list(self.items)

    async def remove(self, session_id: str, purge: bool) -> None:
        self.removed.append(session_id)

    async def remove_owned(self, items: list[Owned]) -> None:
        self.removed += [o.session_id or "?" for o in items]


async def test_only_labelled_unknown_sessions_are_orphans(tmp_path: Path) -> None:
    p = Listed(tmp_path)
    p.items = [Owned("known", "a", True), Owned("gone", "b", False), Owned(None, "gateway", True)]
    p.go_on.set()
    assert await p.collect_orphans(["known"]) == ["b"]
    assert p.removed == ["gone"]  # not the known one, not the one without a session id


async def test_a_session_started_while_collecting_is_not_an_orphan(tmp_path: Path) -> None:
    p = Listed(tmp_path)
    result: list[str] = []

    async def collect() -> None:
        result.extend(await p.collect_orphans([]))  # the store knew no session yet

    async with trio.open_nursery() as nursery:
        nursery.start_soon(collect)
        await p.listed.wait()
        # A client creates a session now; its runtime is asked for before the listing ends
        # (and created; nothing listens at the fake endpoint, so the connection fails).
        with pytest.raises(ProvisionError):
            async with p.open_runtime("new1"):
                pass
        p.go_on.set()
    assert result == [] and p.removed == []

"""The channel end to end against the stand-in: a message in, the agent's reply out."""

from __future__ import annotations

from tests.telegram.conftest import OWNER, wait_for
from tests.telegram.standin import BotApiStandIn


async def test_owner_message_gets_the_agents_reply(api: BotApiStandIn, gateway) -> None:
    async with gateway() as daemon:
        owner = api.user(OWNER, "owner")
        api.text(OWNER, owner, "/quiet hello from the phone")
        replies = await wait_for(lambda: api.in_chat(OWNER))
        assert replies[0].text == "hello from the phone"
        assert "bot" + api.token not in daemon.log_text
        assert api.token.split(":")[1] not in daemon.log_text
        assert {c["command"] for c in api.commands} == {"where", "new", "stop", "status", "help"}

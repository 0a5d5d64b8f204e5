"""The channel end to end against the stand-in: access, threads, commands, topics, outbound
faults, live feedback, approvals, media, home chat and the poller's rules."""

from __future__ import annotations

import time

import httpx
import trio

from tests.harness import connect
from tests.telegram.conftest import FRIEND, GROUP, OWNER, STRANGER, wait_for
from tests.telegram.standin import BotApiStandIn, Fault


def owner(api: BotApiStandIn) -> dict:
    return api.user(OWNER, "owner", "Olivia")


def texts(api: BotApiStandIn, chat: int) -> list[str]:
    """Replies in a chat (a streaming preview ends with an ellipsis and is left out)."""
    return [m.text for m in api.in_chat(chat) if not m.text.endswith("…")]


async def reply_to(api: BotApiStandIn, chat: int, count: int = 1, timeout: float = 20) -> list[str]:
    await wait_for(lambda: len(texts(api, chat)) >= count, timeout)
    return texts(api, chat)


async def test_access_default_deny_with_one_reply_per_cooldown(api, gateway) -> None:
    async with gateway():
        stranger = api.user(STRANGER, "eve")
        api.text(STRANGER, stranger, "/quiet let me in")
        api.text(STRANGER, stranger, "/quiet please")
        first = await reply_to(api, STRANGER)
        assert "999" in first[0] and "ARGUS_TELEGRAM_ALLOW" in first[0]
        api.text(OWNER, owner(api), "/quiet sync")  # a marker: the queue moved past both
        await reply_to(api, OWNER)
        assert len(texts(api, STRANGER)) == 1  # cooldown: one reply, not one per message
        friend = api.user(FRIEND, "Friend")  # allowed by @username, case-insensitive
        api.text(FRIEND, friend, "/quiet hi friend")
        assert (await reply_to(api, FRIEND)) == ["hi friend"]


async def test_groups_need_a_mention_and_carry_the_senders_name(api, gateway) -> None:
    async with gateway():
        bob = api.user(5, "bob", "Bob")
        api.text(GROUP, bob, "/quiet not for the bot")
        api.text(GROUP, bob, "/where@other_bot")
        api.text(-42, bob, "@argus_test_bot /quiet not an allowed group")
        api.text(GROUP, bob, "@argus_test_bot hello")
        replies = await reply_to(api, GROUP)
        assert len(replies) == 1
        assert "Bob (@bob): hello" in replies[0]  # the demo echoes its whole prompt
        assert "not for the bot" not in replies[0]


async def test_owner_on_main_thread_friend_and_topics_on_their_own(api, gateway) -> None:
    async with gateway():
        api.text(OWNER, owner(api), "/where")
        api.text(FRIEND, api.user(FRIEND, "friend"), "/quiet x")
        await reply_to(api, FRIEND)
        api.text(FRIEND, api.user(FRIEND, "friend"), "/where")
        where_owner = (await reply_to(api, OWNER))[0]
        where_friend = (await reply_to(api, FRIEND, 2))[1]
        assert "chatKey: 111" in where_owner
        owner_thread = where_owner.split("threadId: ")[1].split("\n")[0]
        friend_thread = where_friend.split("threadId: ")[1].split("\n")[0]
        assert owner_thread != friend_thread
        bob = api.user(5, "bob", "Bob")
        api.text(GROUP, bob, "@argus_test_bot /quiet in topic", topic=7)
        api.text(GROUP, bob, "@argus_test_bot /quiet in general", topic=1)
        await wait_for(lambda: len(api.in_chat(GROUP)) >= 2)
        # Group inputs carry the sender's name, so the demo echoes the whole prompt.
        topic = [m.thread_id for m in api.in_chat(GROUP) if "in topic" in m.text]
        general = [m.thread_id for m in api.in_chat(GROUP) if "in general" in m.text]
        assert topic == [7]
        assert general == [None]  # thread 1 is never sent as message_thread_id
        api.text(OWNER, owner(api), "/new")
        new = (await reply_to(api, OWNER, 2))[1]
        assert new.startswith("ok (new thread): ") and owner_thread not in new
        api.text(OWNER, owner(api), "/where")
        assert new.split(": ")[1] in (await reply_to(api, OWNER, 3))[2]
        api.text(OWNER, owner(api), "/help")
        assert "/stop" in (await reply_to(api, OWNER, 4))[3]


async def test_replies_survive_429_5xx_resets_and_parse_errors(api, gateway) -> None:
    async with gateway(ARGUS_TELEGRAM_STREAM="off"):  # faults hit replies, not previews
        api.faults += [Fault("sendMessage", "429", "before", retry_after=1)]
        api.text(OWNER, owner(api), "/quiet after a 429")
        assert (await reply_to(api, OWNER)) == ["after a 429"]
        api.faults += [Fault("sendMessage", "parse", "before")]
        api.text(OWNER, owner(api), "/quiet **bold** text")
        await reply_to(api, OWNER, 2)
        last = api.in_chat(OWNER)[-1]
        assert last.html is None and last.text == "**bold** text"  # resent as plain text
        api.faults += [Fault("sendMessage", "reset", "after")]
        api.text(OWNER, owner(api), "/quiet reset after store")
        got = await reply_to(api, OWNER, 4)
        assert got[2] == "reset after store"
        assert got[3].startswith("↻") and got[3].endswith("reset after store")
        api.faults += [Fault("sendMessage", "502", "before")]
        api.text(OWNER, owner(api), "/quiet five oh two")
        got = await reply_to(api, OWNER, 5)
        assert got[4].startswith("↻") and got[4].endswith("five oh two")
        api.faults += [Fault("getUpdates", "reset", "before"), Fault("getUpdates", "500", "before")]
        api.text(OWNER, owner(api), "/quiet after poll faults")
        got = await reply_to(api, OWNER, 6, timeout=30)
        assert got[5] == "after poll faults"
        assert len(got) == 6


async def test_a_long_reply_is_split_within_limits(api, gateway) -> None:
    async with gateway():
        api.text(OWNER, owner(api), "/stream 1000 10")  # 10,000 characters in one line
        await wait_for(lambda: sum(len(m.text) for m in api.in_chat(OWNER)) >= 10_000)
        parts = api.in_chat(OWNER)
        assert len(parts) == 3
        assert "".join(m.text for m in parts) == "".join(
            f"{i:08d}".ljust(10, ".") for i in range(1000)
        )


async def test_typing_and_preview_while_a_turn_runs(api, gateway) -> None:
    async with gateway():
        api.text(OWNER, owner(api), "/slow 25 120")
        final = "".join(f"{i:08d}" for i in range(25))
        await wait_for(lambda: any(m.text == final for m in api.in_chat(OWNER)), 30)
        assert len(api.actions) >= 1 and all(a["action"] == "typing" for a in api.actions)
        previews = [m for m in api.sent if m.chat_id == OWNER and m.text.endswith("…")]
        assert previews and previews[0].edits >= 1  # one message, edited as text came
        await wait_for(lambda: all(p.deleted for p in previews))
        assert [m.text for m in api.in_chat(OWNER)] == [final]
        bob = api.user(5, "bob", "Bob")
        api.text(GROUP, bob, "@argus_test_bot /slow 10 100")
        await wait_for(lambda: api.in_chat(GROUP), 30)
        assert not any(m.text.endswith("…") for m in api.sent if m.chat_id == GROUP)


async def test_approval_buttons_first_answer_wins(api, gateway) -> None:
    async with gateway() as daemon:
        api.text(OWNER, owner(api), "/approve make coffee")
        prompt = (await wait_for(lambda: [m for m in api.in_chat(OWNER) if m.reply_markup]))[0]
        buttons = [b[0] for b in prompt.reply_markup["inline_keyboard"]]
        assert "make coffee" in prompt.text
        accept = next(b for b in buttons if "Approve" in b["text"])
        api.press(owner(api), prompt, accept["callback_data"])
        await wait_for(lambda: "approved" in texts(api, OWNER))
        await wait_for(lambda: "→ accept by" in prompt.text)
        assert prompt.reply_markup == {"inline_keyboard": []}
        assert api.callback_answers and "sent" in api.callback_answers[0]["text"]
        # A web client answers the next one first; the chat's message shows it.
        async with httpx.AsyncClient(base_url=daemon.base_url) as http:
            session_id = (await http.get("/sessions")).json()["sessions"][0]["sessionId"]
        async with connect(daemon, session=session_id) as web:
            await web.handshake()
            api.text(OWNER, owner(api), "/approve second")
            request = await web.recv_until(
                lambda m: str(m.get("method", "")).endswith("requestApproval")
            )
            second = (
                await wait_for(
                    lambda: [m for m in api.in_chat(OWNER) if m.reply_markup and "second" in m.text]
                )
            )[0]
            late = second.reply_markup["inline_keyboard"][0][0]["callback_data"]
            await web.send({"id": request["id"], "result": {"decision": "decline"}})
            await wait_for(lambda: "decline (in another client)" in second.text)
            api.press(owner(api), second, late)  # too late: the first answer won
            await wait_for(lambda: len(api.callback_answers) >= 2)
            assert api.callback_answers[1]["text"].startswith("Already answered")
        await wait_for(lambda: "declined" in texts(api, OWNER))


async def test_photos_are_saved_into_the_workspace(api, gateway, tmp_path) -> None:
    api.files["files/ph1"] = b"\x89PNG fake image bytes"
    async with gateway():
        api.text(
            OWNER,
            owner(api),
            "",
            caption="/quiet look at this",
            photo=[
                {
                    "file_id": "ph1",
                    "file_unique_id": "u1",
                    "width": 10,
                    "height": 10,
                    "file_size": 21,
                }
            ],
        )
        reply = (await reply_to(api, OWNER))[0]
        assert reply == "look at this"
        saved = list((tmp_path / "home").rglob("telegram/*-photo-u1.jpg"))
        assert len(saved) == 1 and saved[0].read_bytes() == b"\x89PNG fake image bytes"
        api.text(
            OWNER,
            owner(api),
            "",
            caption="/quiet too big",
            document={
                "file_id": "big",
                "file_unique_id": "u2",
                "file_name": "big.bin",
                "file_size": 10**9,
            },
        )
        assert (await reply_to(api, OWNER, 2))[1] == "too big"


async def test_cron_results_go_to_the_home_chat(api, gateway) -> None:
    async with gateway(ARGUS_TELEGRAM_HOME=f"{GROUP}:7") as daemon:
        api.text(OWNER, owner(api), "/quiet make the session")
        await reply_to(api, OWNER)
        async with httpx.AsyncClient(base_url=daemon.base_url) as http:
            session_id = (await http.get("/sessions")).json()["sessions"][0]["sessionId"]
            at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
            job = {"sessionId": session_id, "at": at, "mode": "turn", "text": "/quiet cron says hi"}
            response = await http.post("/automation/cron/jobs", json=job)
            assert response.status_code == 200, response.text
        message = (await wait_for(lambda: api.in_chat(GROUP), 30))[0]
        assert message.text == "cron says hi" and message.thread_id == 7


async def test_turns_of_other_clients_on_a_bound_thread_are_delivered(api, gateway) -> None:
    async with gateway() as daemon:
        api.text(OWNER, owner(api), "/quiet bind")
        await reply_to(api, OWNER)
        api.text(OWNER, owner(api), "/where")
        where = (await reply_to(api, OWNER, 2))[1]
        thread_id = where.split("threadId: ")[1].split("\n")[0]
        session_id = where.split("sessionId: ")[1].split("\n")[0]
        async with connect(daemon, session=session_id) as web:
            await web.handshake()
            await web.request("thread/resume", {"threadId": thread_id})
            await web.start_turn(thread_id, "/quiet from the web")
        assert (await reply_to(api, OWNER, 3))[2] == "from the web"


async def test_cold_start_skips_the_backlog_and_webhook_is_dropped(api, gateway) -> None:
    for n in range(150):  # more than one page
        api.text(OWNER, owner(api), f"/quiet old {n}")
    api.webhook_url = "https://example.invalid/hook"
    async with gateway() as daemon:
        api.text(OWNER, owner(api), "/quiet fresh")
        assert (await reply_to(api, OWNER)) == ["fresh"]
        assert "webhook was deleted" in daemon.log_text
        assert api.webhook_url == ""


async def test_second_poller_gets_409_and_the_gateway_recovers(api, gateway) -> None:
    async with gateway() as daemon:
        async with httpx.AsyncClient() as rogue:
            url = f"{api.url}/bot{api.token}/getUpdates"
            response = await rogue.post(url, json={"offset": 0, "timeout": 1})
        assert api.conflicts_sent >= 1
        body = response.json()
        if response.status_code == 409:  # the rogue itself may be the one terminated
            assert body == {"ok": False, "error_code": 409, "description": body["description"]}
        await wait_for(lambda: "409 conflict" in daemon.log_text)
        api.text(OWNER, owner(api), "/quiet still here")
        assert (await reply_to(api, OWNER, timeout=30)) == ["still here"]


async def test_restart_keeps_offset_and_replies_exactly_once(api, gateway) -> None:
    async with gateway():
        api.text(OWNER, owner(api), "/quiet one")
        await reply_to(api, OWNER)
    api.text(OWNER, owner(api), "/quiet two while down")  # no longer a cold start: processed
    async with gateway():
        assert (await reply_to(api, OWNER, 2)) == ["one", "two while down"]
        await trio.sleep(0.5)
        assert texts(api, OWNER) == ["one", "two while down"]


async def test_stop_and_status(api, gateway) -> None:
    async with gateway():
        api.text(OWNER, owner(api), "/slow 400 50")
        await wait_for(lambda: any(m.text.endswith("…") for m in api.sent), 20)
        api.text(OWNER, owner(api), "/status")
        status = (await reply_to(api, OWNER))[0]
        assert "running turn: " in status and "running turn: none" not in status
        api.text(OWNER, owner(api), "/stop")
        later = (await reply_to(api, OWNER, 3))[1:]  # the stop's answer and the cut reply
        stop = next(t for t in later if t.startswith("Stopping turn "))
        partial = next(t for t in later if t != stop)
        assert partial.startswith("00000000") and len(partial) < 400 * 8


async def test_a_group_upgraded_to_a_supergroup_keeps_its_thread(api, gateway) -> None:
    new_id = -100777
    api.add_chat(new_id, "supergroup")
    async with gateway(ARGUS_TELEGRAM_ALLOW_CHATS=f"{GROUP},{new_id}"):
        bob = api.user(5, "bob", "Bob")
        api.text(GROUP, bob, "/where@argus_test_bot")
        api.text(GROUP, bob, "@argus_test_bot /quiet make a thread")
        await wait_for(lambda: len(api.in_chat(GROUP)) >= 2)
        api.text(GROUP, bob, "/where@argus_test_bot")
        await wait_for(lambda: len(api.in_chat(GROUP)) >= 3)
        before = api.in_chat(GROUP)[2].text.split("threadId: ")[1].split("\n")[0]
        api.push(
            {
                "message": {
                    "message_id": 99,
                    "date": 1,
                    "chat": {"id": GROUP, "type": "group"},
                    "from": bob,
                    "migrate_to_chat_id": new_id,
                }
            }
        )
        api.text(new_id, bob, "/where@argus_test_bot")
        where = (await wait_for(lambda: api.in_chat(new_id)))[0].text
        assert f"threadId: {before}" in where and f"chatKey: {new_id}" in where

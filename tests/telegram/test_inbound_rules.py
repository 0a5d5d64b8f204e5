"""Who may talk to the bot, and what an update becomes."""

from __future__ import annotations

from argus.channels.telegram import settings as tg_settings
from argus.channels.telegram.inbound import BotIdentity, classify

BOT = BotIdentity(42, "argus_bot")
SETTINGS = tg_settings.load(
    {
        "ARGUS_TELEGRAM_BOT_TOKEN": "42:secret",
        "ARGUS_TELEGRAM_ALLOW": "111, @Friend",
        "ARGUS_TELEGRAM_ALLOW_CHATS": "-100",
    }
)
assert SETTINGS is not None


def msg(chat_id: int, user_id: int, text: str, chat_type: str = "private", **extra) -> dict:
    sender = {"id": user_id, "is_bot": False, "first_name": "Ann", **extra.pop("sender", {})}
    message = {
        "message_id": 5,
        "chat": {"id": chat_id, "type": chat_type},
        "from": sender,
        "text": text,
        **extra,
    }
    return {"update_id": 1, "message": message}


def test_owner_and_usernames_are_allowed_others_denied() -> None:
    assert classify(msg(111, 111, "hi"), BOT, SETTINGS)[1]["kind"] == "message"
    friend = msg(222, 222, "hi", sender={"username": "friend"})
    assert classify(friend, BOT, SETTINGS)[1]["kind"] == "message"
    assert classify(msg(999, 999, "hi"), BOT, SETTINGS)[1]["kind"] == "deny"


def test_groups_need_an_allowed_chat_and_an_address() -> None:
    assert classify(msg(-100, 5, "hello all", "supergroup"), BOT, SETTINGS) is None
    assert classify(msg(-200, 5, "@argus_bot hi", "supergroup"), BOT, SETTINGS) is None
    key, payload = classify(msg(-100, 5, "@argus_bot what's up", "supergroup"), BOT, SETTINGS)
    assert key == "-100"
    assert payload["text"] == "Ann: what's up"  # the sender's name travels with the text
    reply = {"reply_to_message": {"message_id": 1, "from": {"id": 42, "is_bot": True}}}
    assert (
        classify(msg(-100, 5, "and then?", "supergroup", **reply), BOT, SETTINGS)[1]["kind"]
        == "message"
    )
    command = classify(msg(-100, 5, "/where@argus_bot", "supergroup"), BOT, SETTINGS)[1]
    assert command["kind"] == "command" and command["command"] == "where"
    assert classify(msg(-100, 5, "/where", "supergroup"), BOT, SETTINGS) is None


def test_commands_for_other_bots_are_ignored() -> None:
    assert classify(msg(111, 111, "/new@other_bot"), BOT, SETTINGS) is None
    assert classify(msg(111, 111, "/new@ARGUS_BOT"), BOT, SETTINGS)[1]["command"] == "new"
    assert classify(msg(111, 111, "/deploy now"), BOT, SETTINGS)[1]["kind"] == "message"


def test_topics_only_when_is_topic_message() -> None:
    plain_reply = msg(-100, 5, "@argus_bot x", "supergroup", message_thread_id=9)
    assert classify(plain_reply, BOT, SETTINGS)[0] == "-100"
    topic = msg(-100, 5, "@argus_bot x", "supergroup", message_thread_id=9, is_topic_message=True)
    assert classify(topic, BOT, SETTINGS)[0] == "-100:9"


def test_bots_service_messages_and_migrations() -> None:
    assert classify(msg(111, 111, "hi", sender={"is_bot": True}), BOT, SETTINGS) is None
    service = msg(-100, 5, "", "supergroup")
    del service["message"]["text"]
    service["message"]["new_chat_title"] = "x"
    assert classify(service, BOT, SETTINGS) is None
    service["message"]["migrate_to_chat_id"] = -1009
    assert classify(service, BOT, SETTINGS)[1] == {"kind": "migrate", "from": -100, "to": -1009}


def test_settings_refuse_bad_values() -> None:
    import pytest

    from argus.config import ConfigError

    assert tg_settings.load({}) is None
    with pytest.raises(ConfigError, match="ARGUS_TELEGRAM_ALLOW"):
        tg_settings.load({"TELEGRAM_BOT_TOKEN": "1:a", "ARGUS_TELEGRAM_ALLOW": "bob"})
    with pytest.raises(ConfigError, match="ARGUS_TELEGRAM_HOME"):
        tg_settings.load({"TELEGRAM_BOT_TOKEN": "1:a", "ARGUS_TELEGRAM_HOME": "x:y"})
    loaded = tg_settings.load({"TELEGRAM_BOT_TOKEN": "'1:a'", "ARGUS_TELEGRAM_HOME": "-5:3"})
    assert loaded is not None and loaded.home == (-5, 3) and loaded.token == "1:a"


def test_edited_messages_and_callbacks() -> None:
    update = msg(111, 111, "fixed typo")
    update["edited_message"] = update.pop("message")
    assert classify(update, BOT, SETTINGS)[1]["text"] == "(edited message) fixed typo"
    press = {
        "update_id": 2,
        "callback_query": {
            "id": "c1",
            "from": {"id": 999, "is_bot": False, "first_name": "Eve"},
            "data": "ap:1:0",
            "message": {"message_id": 3, "chat": {"id": 111, "type": "private"}},
        },
    }
    key, payload = classify(press, BOT, SETTINGS)
    assert key == "111" and payload["kind"] == "callback" and payload["allowed"] is False

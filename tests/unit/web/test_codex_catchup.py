"""The open message a reconnecting codex client is given back (web/codex_catchup.py)."""

from __future__ import annotations

import json
from typing import Any

from argus.protocol import messages as m
from argus.sessions.replay import ReplayBuffer
from argus.web.codex_catchup import ThreadCatchUp, open_messages


def note(replay: ReplayBuffer, method: str, **params: Any) -> None:
    text = json.dumps({"method": method, "params": params})
    key = m.delta_key(method, params)
    replay.append(text, key, params["delta"] if key else None)


def streaming_log() -> ReplayBuffer:
    replay = ReplayBuffer(1 << 20)
    t, u = "thr", "turn2"
    note(replay, "turn/started", threadId=t, turn={"id": "turn1"})
    note(replay, "turn/completed", threadId=t, turn={"id": "turn1", "status": "completed"})
    note(replay, "turn/started", threadId=t, turn={"id": u})
    note(replay, "item/started", threadId=t, turnId=u, item={"type": "userMessage", "id": "q"})
    note(replay, "item/completed", threadId=t, turnId=u, item={"type": "userMessage", "id": "q"})
    note(replay, "item/started", threadId=t, turnId=u, item={"type": "agentMessage", "id": "a"})
    for word in ("one ", "two "):
        note(replay, "item/agentMessage/delta", threadId=t, turnId=u, itemId="a", delta=word)
    note(replay, "item/agentMessage/delta", threadId="other", turnId="x", itemId="z", delta="X")
    note(replay, "item/completed", threadId=t, turnId=u, item={"type": "agentMessage", "id": "a"})
    note(replay, "item/started", threadId=t, turnId=u, item={"type": "agentMessage", "id": "b"})
    for word in ("three ", "four"):
        note(replay, "item/agentMessage/delta", threadId=t, turnId=u, itemId="b", delta=word)
    return replay


def test_the_open_message_with_its_text_so_far() -> None:
    replay = streaming_log()
    frames = [json.loads(f) for f in open_messages(replay, replay.last_seq, "thr", set())]
    assert [f["method"] for f in frames] == ["item/started", "item/agentMessage/delta"]
    assert frames[0]["params"]["item"]["id"] == "b"
    assert frames[1]["params"] == {
        "threadId": "thr",
        "turnId": "turn2",
        "itemId": "b",
        "delta": "three four",
    }
    # Only what the client was sent up to its cursor: the rest comes live.
    early = [json.loads(f) for f in open_messages(replay, replay.last_seq - 1, "thr", set())]
    assert early[1]["params"]["delta"] == "three "


def test_nothing_when_listed_finished_or_elsewhere() -> None:
    replay = streaming_log()
    assert open_messages(replay, replay.last_seq, "thr", {"b"}) == []
    assert open_messages(replay, replay.last_seq, "nobody", set()) == []
    note(
        replay,
        "item/completed",
        threadId="thr",
        turnId="turn2",
        item={"type": "agentMessage", "id": "b"},
    )
    note(replay, "turn/completed", threadId="thr", turn={"id": "turn2", "status": "completed"})
    assert open_messages(replay, replay.last_seq, "thr", set()) == []


class FakeSub:
    cursor = 0


def test_only_answers_to_its_item_list_requests_get_it() -> None:
    replay = streaming_log()

    class FakeSession:
        pass

    session: Any = FakeSession()
    session.replay = replay
    catch_up = ThreadCatchUp(session)
    sub: Any = FakeSub()
    sub.cursor = replay.last_seq
    catch_up.attached(sub)
    catch_up.on_client_text(json.dumps({"id": 7, "method": "thread/list", "params": {}}))
    assert not catch_up.wanted
    request = {"id": "L1", "method": "thread/items/list", "params": {"threadId": "thr"}}
    catch_up.on_client_text(json.dumps(request))
    assert catch_up.frames_after('{"id":7,"result":{"data":[]}}') == []
    frames = catch_up.frames_after('{"id":"L1","result":{"data":[]}}')
    assert len(frames) == 2
    assert catch_up.frames_after('{"id":"L1","result":{"data":[]}}') == []  # once
    for i in range(100):  # bounded: the oldest unanswered requests are forgotten
        catch_up.on_client_text(json.dumps({**request, "id": i}))
    assert len(catch_up.wanted) == 64

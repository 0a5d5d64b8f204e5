"""Shared pieces of the subscriber tests: a fake client and log builders."""

from __future__ import annotations

import json
from typing import Any

import trio
import trio.lowlevel
import trio.testing

from argus.protocol import messages as m
from argus.sessions.replay import ReplayBuffer
from argus.sessions.subscriber import Subscriber

DELTA = "item/agentMessage/delta"


class FakeClient:
    """Records every frame sent; while ``held`` is set, sends block until ``release()``."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self._gate: trio.Event | None = None

    def hold(self) -> None:
        self._gate = trio.Event()

    def release(self) -> None:
        if self._gate is not None:
            self._gate.set()
            self._gate = None

    async def send_text(self, text: str) -> None:
        gate = self._gate
        if gate is not None:
            await gate.wait()
        else:
            await trio.lowlevel.checkpoint()
        self.frames.append(text)

    @property
    def objs(self) -> list[dict[str, Any]]:
        return [json.loads(f) for f in self.frames]


def append_delta(replay: ReplayBuffer, text: str, item: str = "i", method: str = DELTA) -> int:
    """Append a streaming delta the way the session does; its sequence number."""
    params = {"threadId": "t", "turnId": "u", "itemId": item, "delta": text}
    key = m.delta_key(method, params)
    assert key is not None
    return replay.append(m.notification(method, params), key, text).seq


def append_note(replay: ReplayBuffer, method: str, **params: Any) -> int:
    """Append a plain (non-delta) notification; its sequence number."""
    return replay.append(m.notification(method, params)).seq


def new_subscriber(
    replay: ReplayBuffer,
    client: FakeClient,
    *,
    cursor: int = 0,
    with_seq: bool = True,
    coalesce: bool = True,
) -> Subscriber:
    return Subscriber(replay, client.send_text, cursor=cursor, with_seq=with_seq, coalesce=coalesce)


async def settle() -> None:
    """Let the sender run until every task is blocked."""
    await trio.testing.wait_all_tasks_blocked()


def describe(frame: str) -> str:
    """A short label of a frame: the private text, method, or merged delta."""
    if not frame.startswith("{"):
        return frame
    obj = json.loads(frame)
    if obj.get("method") == DELTA:
        return "delta:" + obj["params"]["delta"]
    return obj.get("method", frame)


def is_delta(frame: str) -> bool:
    """Whether a frame is a streaming delta."""
    return frame.startswith("{") and json.loads(frame).get("method") in m.DELTA_METHODS


def rendered_text(frames: list[str]) -> dict[str, str]:
    """The text a client builds by concatenating deltas, per item."""
    text: dict[str, str] = {}
    for frame in frames:
        obj = json.loads(frame)
        if obj.get("method") in m.DELTA_METHODS:
            item = obj["params"]["itemId"]
            text[item] = text.get(item, "") + obj["params"]["delta"]
    return text

"""Upstream request ids: one epoch per runtime connection, never past 2**53."""

from __future__ import annotations

import pytest

from argus.protocol.requests import (
    EPOCH_SPAN,
    EPOCHS,
    FIRST_UPSTREAM_ID,
    UpstreamIds,
    bridged_epoch,
)


@pytest.mark.parametrize("generation", [1, 2, 1000, EPOCHS - 1, EPOCHS, EPOCHS + 1, 2**40])
def test_a_bridge_generation_gives_an_epoch_that_keeps_ids_json_safe(generation: int) -> None:
    epoch = bridged_epoch(generation)
    assert 1 <= epoch < EPOCHS
    ids = UpstreamIds(epoch, start=EPOCH_SPAN - 1)  # the last id of the epoch
    assert ids.next({}) < 2**53


def test_consecutive_generations_never_share_an_id() -> None:
    first, second = UpstreamIds(bridged_epoch(1)), UpstreamIds(bridged_epoch(2))
    a = [first.next({}) for _ in range(1000)]
    b = [second.next({}) for _ in range(1000)]
    assert not set(a) & set(b)
    assert all(second.owns(i) and not first.owns(i) for i in b)


def test_the_counter_wraps_inside_its_epoch_and_skips_ids_in_flight() -> None:
    ids = UpstreamIds(3, start=EPOCH_SPAN - 1)
    last = ids.next({})
    in_flight = {3 * EPOCH_SPAN + FIRST_UPSTREAM_ID: object()}
    wrapped = ids.next(in_flight)
    assert last == 4 * EPOCH_SPAN - 1
    assert wrapped == 3 * EPOCH_SPAN + FIRST_UPSTREAM_ID + 1
    assert ids.owns(last) and ids.owns(wrapped)


def test_a_bridge_without_generations_gets_a_nonzero_epoch() -> None:
    assert all(1 <= bridged_epoch(None) < EPOCHS for _ in range(100))

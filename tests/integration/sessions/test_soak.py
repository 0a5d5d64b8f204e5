"""Shortened soaks (the full ones are ``make bench``): random disconnects lose nothing."""

from __future__ import annotations

from bench.soak import report, run_soak


async def test_random_disconnects_lose_no_delta(daemon) -> None:
    stats = await run_soak(daemon, sessions=2, watchers=4, target=150, deltas=800, seed=7)
    assert stats.clean, (report(stats, "test"), stats.problems[:5])
    assert stats.disconnects >= 150
    assert stats.abrupt > 0 and stats.abrupt < stats.disconnects
    # Half the watchers coalesce (and got merged deltas), half do not (and never did).
    assert stats.merged > 0
    # Both the driver and every watcher checked every agent message of every turn.
    assert stats.items_checked >= stats.turns * (1 + 4) // 2
    assert "Traceback" not in daemon.log_text

"""Load, small and for correctness only (figures: ``python -m bench.load``, in make bench).

Several sessions with several clients each stream a turn at once: every reading client
receives every delta. Then one client stops reading altogether: every other client still
receives every delta (nobody waits for the stalled one). No timing is asserted.
"""

from __future__ import annotations

from bench.load import ENV, run_load


async def test_many_clients_stream_and_a_stalled_one_harms_nobody(daemon_factory) -> None:
    async with daemon_factory(**ENV) as daemon:
        normal, stalled = await run_load(daemon, sessions=4, clients=4, deltas=60, ms=5)
    assert normal.short == 0 and stalled.short == 0
    assert normal.deltas == 4 * 4 * 60
    assert stalled.deltas == (4 * 4 - 1) * 60
    assert "Traceback" not in daemon.log_text

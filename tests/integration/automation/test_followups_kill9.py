"""Follow-ups queued behind a pending approval survive repeated ``kill -9`` of the gateway.

Each acknowledged follow-up runs exactly once however the kills fall (issue 9, defect 2).
``make test`` runs a few kills (``ARGUS_KILL_LOOP_KILLS``, default 20); the 20-kill version
is ``python -m bench.kill9_bench``.
"""

from __future__ import annotations

import os
from pathlib import Path

import trio

from tests.kill_loop import kill_loop


async def test_no_acknowledged_followup_is_lost_or_run_twice(tmp_path: Path) -> None:
    kills = int(os.environ.get("ARGUS_KILL_LOOP_KILLS", "20"))
    with trio.fail_after(60 + 30 * kills):
        report = await kill_loop(tmp_path / "home", kills, seed=kills)
    assert report.kills == kills
    assert not report.lost, f"acknowledged follow-ups never ran: {report.lost}"
    assert not report.doubled, f"follow-ups ran twice: {report.doubled}"

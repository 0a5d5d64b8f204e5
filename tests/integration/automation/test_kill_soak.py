"""A shortened kill -9 soak (100 kills in ``make bench``): nothing lost, nothing run twice.

Kills land at random points of streaming follow-up turns; the watcher resumes with
``since`` across each new gateway. ``ARGUS_KILL_SOAK_KILLS`` sets the number (default 4).
"""

from __future__ import annotations

import os
from pathlib import Path

import trio

from bench.kill_soak import kill_soak, summary


async def test_kill_9_during_streaming_followups_loses_nothing(tmp_path: Path) -> None:
    kills = int(os.environ.get("ARGUS_KILL_SOAK_KILLS", "4"))
    with trio.fail_after(120 + 20 * kills):
        report = await kill_soak(tmp_path / "home", kills, seed=kills)
    assert report.kills == kills
    assert report.items_checked >= len(report.acked), summary(report)
    assert report.clean, summary(report)

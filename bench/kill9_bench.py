"""``python -m bench.kill9_bench [--runs N] [--kills K]``: the kill -9 loop, several times.

Each run: follow-ups queued behind a pending approval, K ``kill -9``s of the gateway during
the turns (``tests/kill_loop.py``), then every approval answered until the queue is empty.
Prints, per run, the follow-ups acknowledged, lost and run twice, and the wall time; exits
1 if any run lost or doubled one. Not part of ``make bench`` (it is a correctness loop).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import trio

from tests.kill_loop import kill_loop


async def main(runs: int, kills: int) -> int:
    """Run the loop ``runs`` times; 0 when nothing was lost or doubled."""
    bad = 0
    for run in range(runs):
        with tempfile.TemporaryDirectory(prefix="argus-kill9-") as tmp:
            began = time.monotonic()
            report = await kill_loop(Path(tmp) / "home", kills, seed=run)
            took = time.monotonic() - began
        bad += bool(report.lost or report.doubled)
        print(
            f"run {run + 1}/{runs}: kills={report.kills} acknowledged={len(report.acked)}"
            f" lost={len(report.lost)} twice={len(report.doubled)}"
            f" moments={report.moments} {took:.1f}s",
            flush=True,
        )
    print(f"{runs - bad}/{runs} runs lost nothing and ran nothing twice")
    return 1 if bad else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kills", type=int, default=20)
    args = parser.parse_args()
    sys.exit(trio.run(main, args.runs, args.kills))

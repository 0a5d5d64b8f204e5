"""The reliability group of ``make bench``: soaks, fuzzing and load, as table rows.

Defaults (``make bench``): 1,000 random disconnects, 100 ``kill -9``s, 10,000 fuzz cases
per surface, 100 sessions x 10 clients. ``--quick`` shrinks each; ``--long`` runs the long
soak (10,000 disconnects). Each part prints its own figures line as it finishes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import trio

from argus.testing import run_daemon
from bench import fuzz, kill_soak, load, soak

Row = dict[str, Any]


async def _run(quick: bool, long: bool) -> list[Row]:
    rows: list[Row] = []
    target = 100 if quick else (10_000 if long else 1000)
    with tempfile.TemporaryDirectory(prefix="argus-rel-") as tmp:
        async with run_daemon(Path(tmp) / "soak") as daemon:
            stats = await soak.run_soak(daemon, sessions=3, watchers=4, target=target)
        print(soak.report(stats, "disconnects"), flush=True)
        rows.append({"bench": "soak", "case": "disconnects survived", "value": stats.disconnects})
        lost = stats.items_lost + stats.duplicates + stats.gaps
        rows.append({"bench": "soak", "case": "deltas lost/duplicated", "value": lost})

        kills = 5 if quick else 100
        report = await kill_soak.kill_soak(Path(tmp) / "kill", kills)
        print(kill_soak.summary(report), flush=True)
        rows.append({"bench": "kill9", "case": "kills survived", "value": report.kills})
        bad = report.items_lost + report.duplicates + report.gaps
        rows.append({"bench": "kill9", "case": "messages lost/duplicated", "value": bad})
        rows.append(
            {"bench": "kill9", "case": "follow-ups never run", "value": len(report.followups_lost)}
        )
        rows.append(
            {
                "bench": "kill9",
                "case": "follow-ups run twice",
                "value": len(report.followups_doubled),
            }
        )

        cases = 500 if quick else 10_000
        async with run_daemon(Path(tmp) / "fuzz", env=fuzz.FUZZ_ENV) as daemon:
            freport = await fuzz.run_fuzz(daemon, cases)
        for line in fuzz.summary(freport):
            print(line, flush=True)
        for name, surface in freport.surfaces.items():
            undefined = len(surface.failures) + surface.stuck
            rows.append({"bench": "fuzz", "case": f"{name} cases", "value": surface.cases})
            rows.append({"bench": "fuzz", "case": f"{name} undefined/stuck", "value": undefined})
        rows.append({"bench": "fuzz", "case": "RSS after/before", "value": freport.memory_ratio})

        sessions, clients = (10, 5) if quick else (100, 10)
        async with run_daemon(Path(tmp) / "load", env=load.ENV) as daemon:
            normal, stalled = await load.run_load(daemon, sessions, clients, 100, 100, rounds=2)
        for line in load.report(normal, stalled, sessions, clients):
            print(line, flush=True)
        label = f"{sessions}x{clients}"
        rows.append({"bench": "load", "case": f"{label} deltas/s", "value": normal.rate})
        rows.append({"bench": "load", "case": f"{label} p99 ms", "value": normal.percentile(0.99)})
        change = (stalled.rate - normal.rate) / normal.rate * 100 if normal.rate else 0.0
        rows.append({"bench": "load", "case": "stalled client effect %", "value": change})
    for row in rows:
        row.setdefault("unit", "")
    return rows


def run(quick: bool = False, long: bool = False) -> list[Row]:
    """Every reliability figure, as rows for bench/__main__.py."""
    return trio.run(_run, quick, long)

"""The live fuzzer, shortened (``make bench`` sends 10,000 cases per surface).

Every case on /ws, /nodes/ws, /mcp and the HTTP API gets a defined answer (a reply with its
id, an error with id null, a close code, a status below 500 with a JSON body), slowloris
upgrades are closed, and afterwards the daemon is healthy and every session answers.
No timing or memory assertion here: the figures are the benchmark's.
"""

from __future__ import annotations

import os

from bench.fuzz import FUZZ_ENV, run_fuzz, summary


async def test_every_fuzz_case_gets_a_defined_answer(daemon_factory) -> None:
    cases = int(os.environ.get("ARGUS_FUZZ_CASES", "300"))
    async with daemon_factory(**FUZZ_ENV) as daemon:
        report = await run_fuzz(daemon, cases, seed=11, slow_connections=5)
    lines = "\n".join(summary(report))
    assert report.clean, lines
    assert all(s.cases >= cases for n, s in report.surfaces.items() if n != "slowloris"), lines
    assert report.surfaces["slowloris"].answers["closed by the daemon"] == 5, lines

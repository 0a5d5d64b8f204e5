"""``make bench``: run every benchmark and print one table with the targets.

``python -m bench [--quick] [--only NAME ...]``. Figures are medians of 5 runs (2 with
``--quick``), the daemon pinned to one core and the client to the other.
"""

from __future__ import annotations

import argparse
import importlib.util
from typing import Any

from bench import argus_bench, automation_bench, bridge_bench, console_bench, nodes_bench

Row = dict[str, Any]


def ceiling_rows(quick: bool) -> list[Row]:
    """The stack's own ceiling (bench/ceiling.py), when present."""
    if importlib.util.find_spec("bench.ceiling") is None:
        return []
    from bench import ceiling

    rows = []
    for row in ceiling.run(quick=quick):
        rows.append(
            {
                "bench": "ceiling",
                "case": row["case"],
                "value": row["frames_per_s"],
                "unit": "frames/s",
            }
        )
    return rows


def find(rows: list[Row], bench: str, prefix: str) -> Row | None:
    """The first row of ``bench`` whose case starts with ``prefix``."""
    return next((r for r in rows if r["bench"] == bench and r["case"].startswith(prefix)), None)


def verdicts(rows: list[Row]) -> list[str]:
    """Each issue target against the measured figure."""
    out = []

    def line(name: str, measured: str, target: str, ok: bool | None) -> None:
        mark = "n/a" if ok is None else ("MET" if ok else "MISSED")
        out.append(f"{name:<38} {measured:<28} target {target:<24} {mark}")

    bare = find(rows, "ceiling", "quart-trio")
    frames = find(rows, "stream", "argus, coalesce=0")
    if bare and frames:
        ratio = frames["value"] / bare["value"]
        line("stream frames/s vs bare Quart-Trio", f"{ratio:.2f}x", ">= 0.8x", ratio >= 0.8)
    turn20 = find(rows, "turn", "20000 ")
    if turn20:
        line(
            "20,000-delta turn",
            f"{turn20['value'] * 1e3:.0f} ms",
            "<= 250 ms",
            turn20["value"] <= 0.25,
        )
    t1, t40 = find(rows, "turn", "1000 "), find(rows, "turn", "40000 ")
    if t1 and t40:
        ratio = t40["per_delta_us"] / t1["per_delta_us"]
        line("per-delta cost 40k vs 1k", f"{ratio:.2f}x", "<= 1.10x", ratio <= 1.10)
    p50, p99 = find(rows, "rtt", "argus p50"), find(rows, "rtt", "argus p99")
    if p50 and p99:
        line("rtt p50", f"{p50['value']:.0f} us", "<= 237 us", p50["value"] <= 237)
        line("rtt p99", f"{p99['value']:.0f} us", "<= 350 us", p99["value"] <= 350)
    fan = find(rows, "fan-out", "")
    if fan:
        line(
            "fan-out 10 clients, 5,000 deltas",
            f"{fan['value'] * 1e3:.0f} ms",
            "<= 200 ms",
            fan["value"] <= 0.2,
        )
    idle = find(rows, "idle", "per client")
    if idle:
        line("idle client", f"{idle['value']:.1f} KiB", "<= 30 KiB", idle["value"] <= 30)
    size = find(rows, "console", "JS minified") or find(rows, "console", "JS served")
    if size:
        line("console JS, gzipped", f"{size['value']:.1f} KB", "<= 100 KB", size["value"] <= 100)
    return out


def main() -> None:
    """Run and print."""
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small counts, 2 runs")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the stack ceiling")
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="only these groups: ceiling core automation nodes bridge console",
    )
    options = parser.parse_args()
    rows: list[Row] = []
    groups = set(options.only or ("ceiling", "core", "automation", "nodes", "bridge", "console"))
    if not options.no_ceiling and "ceiling" in groups:
        rows += ceiling_rows(options.quick)
    if "core" in groups:
        rows += argus_bench.run(quick=options.quick)
    if "automation" in groups:
        rows += automation_bench.run(quick=options.quick)
    if "nodes" in groups:
        rows += nodes_bench.run(quick=options.quick)
    if "bridge" in groups:
        rows += bridge_bench.run(quick=options.quick)
    if "console" in groups:
        rows += console_bench.run(quick=options.quick)
    print(f"{'bench':<9} {'case':<40} {'value':>14} unit")
    for row in rows:
        extra = ""
        if "frames_per_s" in row:
            extra = f"  ({row['frames_per_s']:.0f} frames/s)"
        if "per_delta_us" in row:
            extra = f"  ({row['per_delta_us']:.2f} us/delta)"
        print(f"{row['bench']:<9} {row['case']:<40} {row['value']:>14.1f} {row['unit']}{extra}")
    direct = find(rows, "stream", "direct")
    coalesced = find(rows, "stream", "argus, coalescing")
    if direct and coalesced:
        print(f"\nstream through Argus / direct: {coalesced['value'] / direct['value']:.2f}")
    print()
    for line in verdicts(rows):
        print(line)


if __name__ == "__main__":
    main()

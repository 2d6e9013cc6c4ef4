"""The rehearsals side by side: one row per ``benchmarks/pool_scale.py --save`` file.

    python benchmarks/pool_scale_table.py RUN.json [RUN.json ...]

Prints two markdown tables: what each run measured (jobs, wall, jobs per minute, the mean
cycle and its split, planning per level, bytes through the access point per cycle, next's
time and memory, the processing share), and the campaign model's wall time and mean cycle
beside the measured ones with their ratios.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SPLIT = ("planning_s", "dagman_start_s", "queue_wait_s", "htclean_s", "pegasus_jobs_s",
         "bookkeeping_s")


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def row(run: dict) -> tuple[str, str]:
    m, model = run["measured"], run["model"]
    name = f"{run['parts']} x {run['cycles']} @ {model['negotiation_interval_s']:g} s"
    cycles = m["cycles"]
    split = " / ".join(f"{mean([c[k] for c in cycles]):.0f}" for k in SPLIT)
    plans = list(m["planning_s"].values())
    nxt = list(m["next"].values())
    exe = [r["exe_s"] for r in nxt if r["exe_s"] is not None]
    rss = [r["exe_maxrss_mb"] or r["max_rss_mb"] or 0 for r in nxt]
    top = run.get("timing", {}).get("top_pegasus_plan_s")
    measured = (f"| {name} | {m['jobs']} | {m['wall_s']} s | {m['jobs_per_min']:.1f} | "
                f"{mean([c['wall_s'] for c in cycles]):.0f} s | {split} | "
                f"{top or 0:.0f} s; {min(plans, default=0)}-{max(plans, default=0)} s | "
                f"{mean([c['ap_bytes'] for c in cycles]) / 1e6:.1f} MB | "
                f"{min(exe, default=0):.2f}-{max(exe, default=0):.2f} s, "
                f"{max(rss, default=0):.0f} MB | {100 * m['processing_share']:.0f} % |")
    mc, mm = mean([c["wall_s"] for c in cycles]), mean(model["cycle_s"])
    versus = (f"| {name} | {m['wall_s']} s | {model['wall_s']:.0f} s | "
              f"{model['wall_s'] / m['wall_s']:.2f} | {mc:.0f} s | {mm:.0f} s | {mm / mc:.2f} | "
              f"{100 * m['processing_share']:.0f} % | {100 * model['processing_share']:.0f} % |")
    return measured, versus


def main(argv: list[str]) -> int:
    runs = [json.loads(Path(p).read_text()) for p in argv]
    rows = [row(r) for r in runs]
    print("| run (parts x cycles @ negotiation) | jobs | wall | jobs/min | cycle (mean) | "
          "planning / DAGMan start / queue waits / htclean / Pegasus jobs / bookkeeping (s, "
          "mean) | planning: top; cycles | AP bytes a cycle | next: time, peak RSS | "
          "processing share |")
    print("| --- " * 10 + "|")
    for measured, _ in rows:
        print(measured)
    print()
    print("| run | wall measured | model | ratio | cycle measured | model | ratio | "
          "processing share measured | model |")
    print("| --- " * 9 + "|")
    for _, versus in rows:
        print(versus)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

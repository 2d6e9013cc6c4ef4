"""The local engine's cost per job: a workflow of N independent trivial jobs.

    python benchmarks/engine_overhead.py [--jobs-in-workflow 200] [--slots 1 2 4] [--repeat 3]

Each job is ``/bin/sh`` writing one declared output, so the figures are the engine's own
(planning, working directory, process start, output check, stage-out, the record). Prints,
best of --repeat, for each pool size: wall, jobs/s and ms per job; and, as the floor, the same
N processes run one after another with subprocess.run and nothing else.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import enginetoys  # noqa: E402

from htclean.engine.runner import run_workflow  # noqa: E402


def bare_processes(n: int, tmp: Path) -> float:
    """Wall of n ``touch`` processes run one after another, no engine."""
    tools = enginetoys.write_tools(tmp / "bare")
    t0 = time.perf_counter()
    for i in range(n):
        subprocess.run([str(tools["touch"]), str(tmp / "bare" / f"out-{i}")], check=True)
    return time.perf_counter() - t0


def engine_wall(n: int, slots: int, tmp: Path, run: int) -> float:
    plan = tmp / f"plan-{slots}-{run}"
    enginetoys.write_plan(plan, enginetoys.trivial(n), retry=0)
    t0 = time.perf_counter()
    result = run_workflow(plan, jobs=slots)
    wall = time.perf_counter() - t0
    if result.status != "succeeded" or result.attempts != n:
        raise SystemExit(f"benchmark run failed: {result.message}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs-in-workflow", type=int, default=200)
    parser.add_argument("--slots", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.jobs_in_workflow
    with tempfile.TemporaryDirectory(prefix="htclean-engine-bench-") as tmpdir:
        tmp = Path(tmpdir)
        floor = min(bare_processes(n, tmp) for _ in range(args.repeat))
        print(f"{n} trivial jobs; best of {args.repeat}")
        print(f"  bare subprocess.run, serial: {floor:6.2f} s  {n / floor:7.1f} jobs/s  "
              f"{1000 * floor / n:6.2f} ms/job")
        for slots in args.slots:
            wall = min(engine_wall(n, slots, tmp, r) for r in range(args.repeat))
            extra = f"  (+{1000 * (wall - floor) / n:.2f} ms/job over bare)" if slots == 1 else ""
            print(f"  engine, {slots} slot(s):          {wall:6.2f} s  {n / wall:7.1f} jobs/s  "
                  f"{1000 * wall / n:6.2f} ms/job{extra}")


if __name__ == "__main__":
    main()

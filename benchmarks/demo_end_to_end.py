"""Wall time of the demo-size CLEAN end to end, and how much of it is overhead.

    python benchmarks/demo_end_to_end.py [--dir DIR] [--jobs N] [--no-serial] [--no-wsclean]

Simulates the demo observation (htclean demo's: VLA D, 3 h, 4 x 16 MHz, 180 x 180 pixels of
10 arcsec), writes the demo configuration and runs it with `htclean run`:

1. with ``--jobs N`` (default 0 = every core): the demo's wall time;
2. with one job at a time (skip with --no-serial): total wall - the sum of the job records'
   wall times = the share spent outside the executables' own work, split into the process
   overhead (interpreter start, imports, argument and config parsing: the engine's attempt
   times minus the records' times) and the engine's own time (planning, sub-workflow
   planning, scheduling: when no job runs);
3. if ``wsclean`` is on PATH (skip with --no-wsclean): the same image (Briggs 0, Hogbom,
   mgain 0.8, auto-threshold 3) with WSClean 3.1, its wall time and the ratio.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from htclean.engine.state import read_attempts
from htclean.workflows import cli
from htclean.workflows.commands import demo


def timed_run(config: Path, out: Path, jobs: int) -> float:
    t0 = time.perf_counter()
    code = cli.main(["run", str(config), "-o", str(out), "--jobs", str(jobs), "--force"])
    wall = time.perf_counter() - t0
    if code != 0:
        sys.exit(f"htclean run failed with exit status {code}")
    return wall


def busy_time(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one of the (start, end) intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def breakdown(out: Path, wall: float) -> dict[str, float]:
    records = [json.loads(Path(p).read_text())
               for p in glob.glob(str(out / "outputs" / "*.record.json"))]
    tries = [a for a in read_attempts(out / "engine")
             if str(a.get("transformation")).startswith("htclean-")]
    jobs_wall = sum(r["wall_s"] for r in records)
    process_wall = sum(a["end"] - a["start"] for a in tries)
    busy = busy_time([(a["start"], a["end"]) for a in tries])
    return {"jobs": len(records), "total": wall, "jobs_wall": jobs_wall,
            "outside": wall - jobs_wall, "process": process_wall - jobs_wall,
            "engine": wall - busy, "cpu": sum(r["cpu_s"] for r in records)}


def wsclean(ms: Path, truth: dict, work: Path, threads: int) -> float:
    work.mkdir(parents=True, exist_ok=True)
    copy = work / "demo.ms"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(ms, copy)
    size = str(int(truth["image"]["size"]))
    cmd = ["wsclean", "-quiet", "-name", str(work / "wsclean"), "-size", size, size,
           "-scale", f"{truth['image']['cell_asec']:g}asec", "-data-column", "DATA",
           "-weight", "briggs", "0", "-niter", "5000", "-gain", "0.1", "-mgain", "0.8",
           "-auto-threshold", "3", "-use-wgridder", "-no-update-model-required",
           "-j", str(threads), str(copy)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default="bench-demo", help="working directory (kept)")
    p.add_argument("--jobs", type=int, default=0, help="jobs at a time; 0 = every core")
    p.add_argument("--no-serial", action="store_true", help="skip the one-job-at-a-time run")
    p.add_argument("--no-wsclean", action="store_true", help="skip the WSClean comparison")
    args = p.parse_args(argv)

    work = Path(args.dir).absolute()
    demo.prepare_dir(work)
    truth = demo.simulate_observation(work)
    config = work / demo.CONFIG_NAME
    config.write_text(demo.demo_config(truth, args.jobs))
    cores = len(os.sched_getaffinity(0))

    wall = timed_run(config, work / "run", args.jobs)
    b = breakdown(work / "run", wall)
    summary = json.loads((work / "run" / "outputs" / "demo-summary.json").read_text())
    print(f"\ndemo end to end ({b['jobs']} jobs, {args.jobs or cores} at a time, {cores} cores): "
          f"{wall:.1f} s wall; {summary['cycles']} major cycles, {summary['iterations']} "
          f"iterations, stop: {summary['stop_reason']}; job CPU {b['cpu']:.1f} s")
    if not args.no_serial:
        wall1 = timed_run(config, work / "run-serial", 1)
        s = breakdown(work / "run-serial", wall1)
        print(f"one job at a time: {wall1:.1f} s wall; the executables' own work "
              f"{s['jobs_wall']:.1f} s; outside it {s['outside']:.1f} s "
              f"({100 * s['outside'] / wall1:.0f}%): process start and imports "
              f"{s['process']:.1f} s ({100 * s['process'] / wall1:.0f}%), engine "
              f"{s['engine']:.1f} s ({100 * s['engine'] / wall1:.0f}%)")
    if not args.no_wsclean and shutil.which("wsclean"):
        from astropy.io import fits

        ws = wsclean(work / demo.MS_NAME, truth, work / "wsclean", cores)
        ws_peak = float(fits.getdata(work / "wsclean" / "wsclean-image.fits").max())
        print(f"wsclean (same image, {cores} threads): {ws:.1f} s wall; "
              f"htclean / wsclean = {wall / ws:.1f}; restored peak htclean "
              f"{summary['image']['peak']:.4f}, wsclean {ws_peak:.4f} Jy/beam")
    elif not args.no_wsclean:
        print("wsclean: not on PATH, no comparison")
    return 0


if __name__ == "__main__":
    sys.exit(main())

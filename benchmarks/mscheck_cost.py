"""What the plan-time data checks cost (imaging/ms/mscheck.py), on a good MS and on bad ones.

    python benchmarks/mscheck_cost.py [MS] [--hours 8] [--nchan 64] [--integration 30]

Without MS, simulates a VLA A-configuration observation (benchmarks/simulate_large.py's
defaults: ~3.9M visibilities). Prints rows, visibilities, and the wall seconds of
``mscheck.check`` on the MS as it is (good data: the existence queries stop at the first
usable row), with every sample flagged and with every visibility NaN (the worst cases: the
queries read every selected row), next to ``msinfo.describe`` (the scan `htclean plan`
already makes of a local MS for its size and rows).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def timed(fn) -> tuple[float, str]:
    t0 = time.perf_counter()
    try:
        fn()
        outcome = "ok"
    except Exception as exc:  # the bad cases end with their one line
        outcome = str(exc)[-70:]
    return time.perf_counter() - t0, outcome


def spoil(ms: Path, column: str, value) -> None:
    import casacore.tables as ct

    with ct.table(str(ms), readonly=False, ack=False) as t:
        step = 200_000
        for start in range(0, t.nrows(), step):
            n = min(step, t.nrows() - start)
            cell = t.getcol(column, start, n)
            t.putcol(column, np.full_like(cell, value), start, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ms", nargs="?", help="an MS to check (default: simulate one)")
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--nchan", type=int, default=64)
    parser.add_argument("--integration", type=float, default=30.0)
    args = parser.parse_args()

    from htclean.imaging.ms import mscheck, msinfo

    work = Path(tempfile.mkdtemp(prefix="htclean-mscheck-"))
    try:
        if args.ms:
            ms = Path(args.ms)
        else:
            from htclean.imaging.simulation.simulate import SimulationSpec, simulate

            ms = work / "obs.ms"
            spec = replace(SimulationSpec.demo(), configuration="A",
                           hour_angle_h=(-args.hours / 2, args.hours / 2), nchan=args.nchan,
                           chan_width=128e6 / args.nchan, integration=args.integration,
                           image_size=2048)
            simulate(str(ms), spec)
        data = {"column": "DATA", "field": 0, "spw": None}
        info = msinfo.describe(ms)
        print(f"MS {ms}: {info.rows} rows, {info.visibilities} visibilities, "
              f"{info.size_bytes / 1e6:.0f} MB")
        wall, _ = timed(lambda: msinfo.describe(ms))
        print(f"msinfo.describe (already done by plan): {wall:7.2f} s")
        wall, outcome = timed(lambda: mscheck.check(ms, data))
        print(f"mscheck.check, good data:               {wall:7.2f} s  {outcome}")
        for what, column, value in (("all flagged", "FLAG", True),
                                    ("all NaN", "DATA", np.nan)):
            bad = work / f"bad-{column}.ms"
            shutil.copytree(ms, bad)
            spoil(bad, column, value)
            wall, outcome = timed(lambda b=bad: mscheck.check(b, data))
            print(f"mscheck.check, {what + ':':25s}{wall:7.2f} s  ...{outcome}")
            shutil.rmtree(bad)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

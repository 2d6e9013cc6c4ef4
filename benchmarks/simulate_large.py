"""Benchmark the VLA simulator at scale: write a multi-million-visibility Measurement Set.

    python benchmarks/simulate_large.py [--configuration A] [--hours 8] [--nchan 64]
                                        [--integration 30] [--out DIR] [--keep]

Prints rows, visibilities, wall seconds, MB written (the MS on disk), MB/s, visibilities/s and
the peak memory of the process (the writer works in row blocks, so memory stays bounded).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from dataclasses import replace

from htclean.imaging.ms import msinfo
from htclean.imaging.simulation.simulate import SimulationSpec, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configuration", default="A")
    parser.add_argument("--hours", type=float, default=8.0, help="hour-angle range, centred")
    parser.add_argument("--nchan", type=int, default=64)
    parser.add_argument("--integration", type=float, default=30.0, help="seconds")
    parser.add_argument("--correlations", default="RR,LL")
    parser.add_argument("--out", help="directory for the MS (default a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the MS afterwards")
    args = parser.parse_args()

    spec = replace(SimulationSpec.demo(), configuration=args.configuration,
                   hour_angle_h=(-args.hours / 2, args.hours / 2), nchan=args.nchan,
                   chan_width=128e6 / args.nchan, integration=args.integration,
                   correlations=tuple(args.correlations.split(",")), image_size=2048)
    workdir = args.out or tempfile.mkdtemp(prefix="htclean-bench-")
    path = os.path.join(workdir, "large.ms")
    start = time.perf_counter()
    truth = simulate(path, spec, force=True)
    wall = time.perf_counter() - start
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    start = time.perf_counter()
    info = msinfo.describe(path)
    describe_wall = time.perf_counter() - start
    obs = truth["observation"]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"configuration      VLA {obs['configuration']}, {args.hours:g} h, {obs['nchan']} "
          f"channels, {args.integration:g} s, {' '.join(obs['correlations'])}, "
          f"{len(truth['sources'])} sources")
    print(f"rows               {obs['rows']}")
    print(f"visibilities       {obs['visibilities']}")
    print(f"seconds            {wall:.2f}")
    print(f"MB on disk         {size / 1e6:.1f}")
    print(f"MB/s               {size / 1e6 / wall:.1f}")
    print(f"visibilities/s     {obs['visibilities'] / wall:.3g}")
    print(f"peak memory MB     {peak_mb:.0f}")
    print(f"describe seconds   {describe_wall:.2f} (suggested cell "
          f"{info.suggested_cell * 206264.806:.3g} asec, size {info.suggested_size})")
    if not args.keep:
        shutil.rmtree(path)
        os.remove(path + ".sources.json")
        if not args.out:
            os.rmdir(workdir)


if __name__ == "__main__":
    main()

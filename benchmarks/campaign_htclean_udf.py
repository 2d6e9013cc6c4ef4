"""The campaign model on the VLA HUDF campaign: HTClean's December 2023 figures reproduced
with an HTClean-style graph on HTClean's pool, then htclean's prediction for the same data.

    python benchmarks/campaign_htclean_udf.py [--seed 1] [--parts 200 50 20]

Assumptions and fitted values: htclean.workflows.campaign.hudf and the pool files
(pools/htclean2023.yml, pools/ospool.yml). htclean's prediction runs the planner's own graph
with htclean's measured job costs; its GPU speed (gpu_equivalent_cores) is an assumption, so
the prediction is also given at 1/4 and 4x that speed.
"""

from __future__ import annotations

import argparse
import dataclasses

from htclean.workflows.campaign import htclean_graph, hudf, metrics, pool, simulate
from htclean.workflows.campaign.table import render


def reproduction(seed: int) -> None:
    p = pool.load("htclean2023")
    s = hudf.htclean2023_run(p, seed)
    print(render(s, "HTClean-style graph on the htclean2023 pool (HUDF, 2 TB, 200 parts, "
                    "PSF + dirty + 6 cycles)"))
    print("\n  figure                    published    modelled   difference")
    for f in hudf.PUBLISHED:
        m = f.modelled(s)
        diff = 100 * (m / f.published - 1)
        print(f"  {f.name:<24} {f.published:>10.4g} {m:>11.4g} {diff:>+10.0f} %")


def prediction(seed: int, parts: list[int], pool_name: str) -> None:
    base = pool.load(pool_name)
    print(f"\nhtclean on the same campaign, pool {pool_name} (its planner's graph, measured "
          "costs; speed: GPU = gpu_equivalent_cores of ducc0)")
    print("  parts  device  GPU=cores   wall      jobs  jobs/min  GPU h  processing share  "
          "bytes/cycle   lost at barriers")
    for n in parts:
        for device, speeds in (("gpu", (base.gpu_equivalent_cores / 4,
                                        base.gpu_equivalent_cores,
                                        base.gpu_equivalent_cores * 4)), ("cpu", (0,))):
            for speed in speeds:
                p = dataclasses.replace(base, gpu_equivalent_cores=speed or 1)
                c = hudf.htclean_campaign(n, device)
                nodes = htclean_graph.build(c, p)
                s = metrics.summarise(nodes, simulate.simulate(nodes, p, seed))
                cyc = [x for x in s.cycles if 1 <= x.cycle <= c.cycles]
                per = sum(x.bytes for x in cyc) / max(1, len(cyc))
                print(f"  {n:>5}  {device:>6}  {speed or '-':>9}  {s.wall_s / 3600:6.2f} h "
                      f"{s.total_jobs:>6} {s.jobs_per_min:>8.2f} {s.gpu_hours:>6.1f} "
                      f"{100 * s.processing_share:>14.1f} % {per / 1e9:>10.1f} GB "
                      f"{s.barrier_s / 60:>10.1f} min")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=hudf.SEED)
    parser.add_argument("--parts", type=int, nargs="+", default=[200, 50, 20])
    parser.add_argument("--pool", default="htclean2023",
                        help="the pool of htclean's prediction (default: HTClean's)")
    args = parser.parse_args()
    reproduction(args.seed)
    prediction(args.seed, args.parts, args.pool)


if __name__ == "__main__":
    main()

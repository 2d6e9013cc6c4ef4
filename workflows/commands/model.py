"""Predict a campaign on a pool before spending its hours: a simulation of the job graph
htclean's planner writes for CONFIG (its levels, Pegasus's added jobs) as HTCondor and DAGMan
would run it on POOL (negotiation cycles, queue waits, transfers, DAGMan's scans and submit
rate), with job durations from htclean's measured costs (htclean.workflows.campaign.costs).

Prints the wall time, jobs and jobs per minute, bytes per cycle (and through the access
point), the time lost at barriers and the share of the wall time in which htclean work ran.
POOL is a pool file or a shipped one: testpool, ospool, htclean2023. The data size and
visibilities come from the MS, or from data.size, or from --data-bytes / --visibilities.
"""

from __future__ import annotations

import argparse

HELP = "simulate a campaign on a pool: wall time, jobs, bytes, processing share"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="the configuration file (YAML)")
    parser.add_argument("--pool", required=True,
                        help="a pool file, or testpool, ospool, htclean2023")
    parser.add_argument("--site", choices=("condor", "ospool", "path"),
                        help="plan for this site (default: execution.site)")
    parser.add_argument("--parts", type=int, help="override the number of parts")
    parser.add_argument("--cycles", type=int,
                        help="major cycles expected (default: deconvolution.max_cycles)")
    parser.add_argument("--data-bytes", type=float, help="size of the input MSs, bytes")
    parser.add_argument("--visibilities", type=float, help="Stokes I samples in all")
    parser.add_argument("--seed", type=int, default=1, help="the queue waits' seed")
    parser.add_argument("--timeline", metavar="PNG", help="also plot jobs running by type")


def run(args: argparse.Namespace) -> int:
    from htclean.workflows.campaign import campaign, htclean_graph, metrics, pool, simulate
    from htclean.workflows.campaign.table import render

    p = pool.load(args.pool)
    c = campaign.load(args.config, data_bytes=args.data_bytes,
                      visibilities=args.visibilities, parts=args.parts, cycles=args.cycles,
                      site=args.site)
    nodes = htclean_graph.build(c, p)
    times = simulate.simulate(nodes, p, args.seed)
    summary = metrics.summarise(nodes, times)
    print(render(summary, f"htclean on pool {p.name}: {c.parts} parts, {c.cycles} cycles, "
                 f"{c.data_bytes / 1e9:.3g} GB, {c.visibilities:.3g} visibilities"))
    if args.timeline:
        from htclean.workflows.campaign.timeline import plot

        plot(nodes, times, args.timeline, f"htclean on {p.name}")
        print(f"timeline: {args.timeline}")
    return 0

"""htclean-next: after a major cycle, decide whether to go on, and write the next level.

    htclean-next --config R-config.yml --record R-next-cKK.record.json --cycle K
                 [--gather IN.npz ... [--psf-fits R-psf.fits]]
                 --residual (R-dirty.fits | R-residual-cKK.fits) [--state R-deconvolve-cKK.json]
                 --partitions R-partitions.json
                 --workflow cycle-(K+1).yml --decision R-next-cKK.json

It runs on the submit host. With ``--gather`` it is the root of the cycle's gather tree first
(as ``htclean-gather --image-fits``): it sums the partials, normalises them and WRITES
``--residual`` (and, at cycle 0, ``--psf-fits``); without, it reads ``--residual``.

The decision is imaging.deconvolution.loop.decide on the residual's peak, the
threshold (deconvolution.threshold, auto_threshold x robust sigma) and the minor cycle's state
(niter spent, threshold reached, divergence, max_cycles, no progress). It writes
``cycle-(K+1).yml``: major cycle K+1, or the final workflow (restore) once the loop stops, with
an inline replica catalog naming where the files it needs from earlier levels are
(``replicas.inline_catalog``). It reads nothing but its declared inputs, so it never waits on
a job that is not its parent (under DAGMan or Pegasus's Shell code generator alike): the next
level's own SubWorkflow job declares the files handed down (``graph.carried``), and the parts'
sizes for its disk requests come from the partition manifest. Same inputs, same bytes: a
retried sub-workflow is not re-planned, so a retried next must write exactly what the first
attempt wrote.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from htclean.executables.atomic import write_bytes_atomic
from htclean.executables.record import Job, job_parser, run_job
from htclean.imaging.errors import InputError

PROG = "htclean-next"


def build_parser() -> argparse.ArgumentParser:
    parser = job_parser(PROG, __doc__)
    parser.add_argument("--cycle", required=True, type=int, metavar="K",
                        help="the major cycle just finished (0: only the dirty image exists)")
    parser.add_argument("--gather", nargs="+", metavar="IN.npz",
                        help="the partials of the gather tree's root: sum and normalise them "
                        "into --residual (and --psf-fits) first")
    parser.add_argument("--psf-fits", metavar="R-psf.fits",
                        help="with --gather at cycle 0: where to write the PSF")
    parser.add_argument("--residual", required=True, metavar="RESIDUAL.fits",
                        help="R-dirty.fits (cycle 0) or R-residual-cKK.fits (written with "
                        "--gather, read otherwise)")
    parser.add_argument("--state", metavar="R-deconvolve-cKK.json",
                        help="the minor-cycle state of cycle K (cycles > 0)")
    parser.add_argument("--partitions", required=True, metavar="R-partitions.json",
                        help="the partition manifest (the parts and their sizes)")
    parser.add_argument("--workflow", required=True, metavar="cycle-(K+1).yml",
                        help="where to write the next level's workflow")
    parser.add_argument("--decision", required=True, metavar="R-next-cKK.json",
                        help="where to write the decision and why (JSON)")
    return parser


def loop_state(job: Job, args: argparse.Namespace):
    """The imaging.deconvolution.loop.LoopState after cycle K, from the residual and the
    minor-cycle state."""
    import numpy as np

    from htclean.executables.deconvolve import read_state
    from htclean.imaging.deconvolution.clean import CleanParams
    from htclean.imaging.deconvolution.loop import LoopState
    from htclean.imaging.fits import read_fits

    k, settings = args.cycle, job.settings
    if k < 0:
        raise InputError(f"--cycle must be >= 0, got {k}")
    if (k == 0) != (args.state is None):
        raise InputError("--state: cycle 0 takes none, every later cycle needs its own")
    residual, _, _ = read_fits(job.read(args.residual, "--residual"))
    nx, ny = settings["image"]["nx"], settings["image"]["ny"]
    if residual.shape != (ny, nx):
        raise InputError(f"--residual: {args.residual} is {residual.shape[1]}x"
                         f"{residual.shape[0]} pixels, the configured image is {nx}x{ny}")
    peak = float(np.max(np.abs(residual)))
    threshold = CleanParams.from_settings(settings).cycle_threshold(residual)
    if k == 0:
        return LoopState(0, 0, peak, threshold)
    state = read_state(job.read(args.state, "--state"))
    if state["cycle"] != k:
        raise InputError(f"--state: {args.state} is the state of cycle {state['cycle']}, "
                         f"not of cycle {k}")
    return LoopState(k, state["iterations_total"], peak, threshold,
                     previous_peak=state["peak_start"], minor_stop=state["stop_reason"],
                     minor_iterations=state["iterations"])


def next_level(ctx, k: int, go_on: bool):
    """(workflow, LFNs of earlier levels it names) of the level after cycle ``k``."""
    from htclean.workflows import graph

    return graph.cycle_workflow(ctx, k + 1) if go_on else graph.final_workflow(ctx, k)


def part_sizes(job: Job, path: str) -> dict[str, int]:
    """Bytes of every part, by LFN, from the partition manifest."""
    try:
        manifest = json.loads(job.read(path, "--partitions").read_text())
        return {str(p["file"]): int(p["bytes"]) for p in manifest["parts"]}
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"--partitions: {path} is not a partition manifest") from None


def gather_root(job: Job, args: argparse.Namespace) -> None:
    """The gather tree's root (executables.gather): --residual and --psf-fits from --gather."""
    from htclean.executables import gather

    if (args.psf_fits is not None) != (args.cycle == 0):
        raise InputError("--psf-fits: the PSF is written at cycle 0 (with --gather), and only "
                         "then")
    total = gather.sum_partials(job, args.gather)
    gather.check_config(job, total)
    job.visibilities = total.visibilities
    gather.write_root(job, total, args.residual, args.psf_fits, len(args.gather))


def work(args: argparse.Namespace, job: Job) -> None:
    from htclean.imaging.deconvolution.loop import LoopLimits, decide
    from htclean.workflows import config, names, serialize
    from htclean.workflows.context import RunContext

    if args.gather:
        gather_root(job, args)
    state = loop_state(job, args)
    decision = decide(state, LoopLimits.from_settings(job.settings))
    ctx = RunContext.from_config(config.read_yaml(args.config), job.settings)
    sizes = part_sizes(job, args.partitions)
    sizes[names.residual_fits(ctx.stem, args.cycle)] = Path(args.residual).stat().st_size
    workflow, needed = next_level(replace(ctx, sizes=sizes), args.cycle, decision.go_on)
    job.output(write_bytes_atomic(args.workflow, serialize.to_yaml(workflow).encode()))
    record = {**decision.to_dict(), "peak": state.peak, "iterations": state.iterations,
              "next": ctx.job_prefix + (names.cycle_job(args.cycle + 1) if decision.go_on
                                        else "final"),
              "workflow": Path(args.workflow).name, "inputs": needed}
    job.write_json(args.decision, record)


def main(argv: list[str] | None = None) -> int:
    return run_job(PROG, build_parser(), work, argv)


if __name__ == "__main__":
    sys.exit(main())

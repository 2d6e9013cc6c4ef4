"""htclean-next: after a major cycle, decide whether to go on, and write the next level.

    htclean-next --config R-config.yml --record R-next-cKK.record.json --cycle K
                 --residual (R-dirty.fits | R-residual-cKK.fits) [--state R-deconvolve-cKK.json]
                 --workflow cycle-(K+1).yml --decision R-next-cKK.json [--wait-timeout S]

It runs on the submit host. The decision is imaging.loop.decide on the residual's peak, the
threshold (deconvolution.threshold, auto_threshold x robust sigma) and the minor cycle's state
(niter spent, threshold reached, divergence, max_cycles, no progress). It writes
``cycle-(K+1).yml``: major cycle K+1, or the final workflow (restore) once the loop stops, with
an inline replica catalog naming the output site's copies of the files it needs from earlier
levels. Stage-out jobs are not parents of this job, so it first waits (polling, up to
--wait-timeout seconds) until every one of those files is in the output directory. Same
inputs, same bytes: a retried sub-workflow is not re-planned, so a retried next must write
exactly what the first attempt wrote.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from htclean.executables.record import Job, job_parser, run_job, write_bytes_atomic
from htclean.imaging.errors import InputError

PROG = "htclean-next"
POLL_S = 2.0
DEFAULT_WAIT_S = 1800.0


def build_parser() -> argparse.ArgumentParser:
    parser = job_parser(PROG, __doc__)
    parser.add_argument("--cycle", required=True, type=int, metavar="K",
                        help="the major cycle just finished (0: only the dirty image exists)")
    parser.add_argument("--residual", required=True, metavar="RESIDUAL.fits",
                        help="R-dirty.fits (cycle 0) or R-residual-cKK.fits")
    parser.add_argument("--state", metavar="R-deconvolve-cKK.json",
                        help="the minor-cycle state of cycle K (cycles > 0)")
    parser.add_argument("--workflow", required=True, metavar="cycle-(K+1).yml",
                        help="where to write the next level's workflow")
    parser.add_argument("--decision", required=True, metavar="R-next-cKK.json",
                        help="where to write the decision and why (JSON)")
    parser.add_argument("--wait-timeout", type=float, default=DEFAULT_WAIT_S, metavar="S",
                        help="seconds to wait for earlier levels' files to reach the output "
                        f"directory (default {DEFAULT_WAIT_S:g})")
    return parser


def loop_state(job: Job, args: argparse.Namespace):
    """The imaging.loop.LoopState after cycle K, from the residual and the minor-cycle state."""
    import numpy as np

    from htclean.executables.deconvolve import read_state
    from htclean.imaging.clean import CleanParams
    from htclean.imaging.fits import read_fits
    from htclean.imaging.loop import LoopState

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


def wait_for(directory: Path, lfns: list[str], timeout: float) -> None:
    """Return once every one of ``lfns`` exists in ``directory``; RuntimeError after
    ``timeout`` seconds naming what is still missing."""
    deadline = time.monotonic() + timeout
    missing = list(lfns)
    while True:
        missing = [lfn for lfn in missing if not (directory / lfn).exists()]
        if not missing:
            return
        if time.monotonic() >= deadline:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise RuntimeError(f"after {timeout:g} s, {missing[0]}{more} has not reached "
                               f"{directory}")
        time.sleep(POLL_S)


def work(args: argparse.Namespace, job: Job) -> None:
    from htclean.imaging.loop import LoopLimits, decide
    from htclean.workflows import config, names, serialize
    from htclean.workflows.context import RunContext, measured_sizes

    state = loop_state(job, args)
    decision = decide(state, LoopLimits.from_settings(job.settings))
    ctx = RunContext.from_config(config.read_yaml(args.config), job.settings)
    # Which files the next level names does not depend on their sizes; its disk requests do,
    # so it is built again once the files are there and measured.
    _, needed = next_level(ctx, args.cycle, decision.go_on)
    waited = [lfn for lfn in needed if lfn != names.config(ctx.run_id)]
    wait_for(ctx.outputs_dir, waited, args.wait_timeout)
    ctx = replace(ctx, sizes=measured_sizes(ctx.outputs_dir, waited))
    workflow, needed = next_level(ctx, args.cycle, decision.go_on)
    job.output(write_bytes_atomic(args.workflow, serialize.to_yaml(workflow).encode()))
    record = {**decision.to_dict(), "peak": state.peak, "iterations": state.iterations,
              "next": names.cycle_job(args.cycle + 1) if decision.go_on else "final",
              "workflow": Path(args.workflow).name, "inputs": needed}
    job.write_json(args.decision, record)


def main(argv: list[str] | None = None) -> int:
    return run_job(PROG, build_parser(), work, argv)


if __name__ == "__main__":
    sys.exit(main())

"""htclean-next: after a major cycle, decide whether to go on, and write the next level.

    htclean-next --config R-config.yml --record R-next-cKK.record.json --cycle K
                 [--gather IN.npz ... [--psf-fits R-psf.fits]]
                 --residual (R-dirty.fits | R-residual-cKK.fits) [--state R-deconvolve-cKK.json]
                 --partitions R-partitions.json
                 --workflow cycle-(K+1).yml --decision R-next-cKK.json
                 [--psf R-psf.fits] [--model R-model-cKK.json]
                 [--output-model R-model-c(K+1).json --output-state R-deconvolve-c(K+1).json]

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

With ``--output-model`` (a pool run whose minor cycle runs on the submit host, graph.py) it
runs the next minor cycle as well, once it has decided to go on: minor cycle K+1
(executables.deconvolve, the same code and bytes) on the residual it has just made, with the
PSF (``--psf``; at cycle 0 the ``--psf-fits`` it wrote) and cycle K's ``--model`` and
``--state``. Its own level then goes on with cycle K+1's residual jobs, which read that model
and the ``--decision`` (they write empty partials at once when it says stop), and the next
level starts with next-c(K+1) summing their partials (workflows/graph.py). The outputs are
declared, so they are written when the loop stops too: cycle K's model and state unchanged
(the final level's restore reads them), or at cycle 0 an empty model and a cycle-0 state
that nothing reads.
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
    parser.add_argument("--psf", metavar="R-psf.fits",
                        help="with --output-model after cycle 0: the PSF of the minor cycle")
    parser.add_argument("--model", metavar="R-model-cKK.json",
                        help="with --output-model after cycle 0: cycle K's model")
    parser.add_argument("--output-model", metavar="R-model-c(K+1).json",
                        help="run minor cycle K+1 here when the loop goes on; its model")
    parser.add_argument("--output-state", metavar="R-deconvolve-c(K+1).json",
                        help="with --output-model: minor cycle K+1's state")
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


def minor_cycle(job: Job, args: argparse.Namespace, state, go_on: bool) -> bool:
    """Minor cycle K+1 into --output-model and --output-state when the loop goes on (True);
    else the same files with what the restore needs (False)."""
    from htclean.executables import deconvolve

    k = args.cycle
    psf = args.psf_fits if k == 0 else args.psf
    if args.output_state is None or psf is None or (k > 0 and args.model is None):
        raise InputError("--output-model: needs --output-state, --psf and, after cycle 0, "
                         "--model")
    if go_on:
        from htclean.imaging.gpu import device

        job.device = device.select(job.settings["gridder"]["device"]).label
        deconvolve.minor_cycle_files(job, k + 1, psf, args.residual, args.model, args.state,
                                     args.output_model, args.output_state)
        return True
    if k > 0:  # the loop stops: cycle K's model and state, as they are
        for src, dst, what in ((args.model, args.output_model, "--model"),
                               (args.state, args.output_state, "--state")):
            job.output(write_bytes_atomic(dst, job.read(src, what).read_bytes()))
        return False
    from htclean.imaging.deconvolution import model as models

    _, geom, ref = deconvolve.read_residual(job, args.residual)
    empty = models.empty(geom.nx, geom.ny, int(job.settings["deconvolution"]["nterms"]))
    job.output(write_bytes_atomic(args.output_model, models.to_json(empty, ref).encode()))
    job.write_json(args.output_state, {
        "format": deconvolve.STATE_FORMAT, "version": deconvolve.STATE_VERSION, "cycle": 0,
        "iterations": 0, "iterations_total": 0, "peak_start": state.peak,
        "peak_end": state.peak, "stop_reason": "none", "threshold": state.threshold,
        "components": 0, "flux": 0.0, "history": []})
    return False


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
    ran = args.output_model is not None and minor_cycle(job, args, state, decision.go_on)
    workflow, needed = next_level(replace(ctx, sizes=sizes), args.cycle, decision.go_on)
    job.output(write_bytes_atomic(args.workflow, serialize.to_yaml(workflow).encode()))
    record = {**decision.to_dict(), "peak": state.peak, "iterations": state.iterations,
              "next": ctx.job_prefix + (names.cycle_job(args.cycle + 1) if decision.go_on
                                        else "final"),
              "minor_cycle": args.cycle + 1 if ran else None,
              "workflow": Path(args.workflow).name, "inputs": needed}
    job.write_json(args.decision, record)


def main(argv: list[str] | None = None) -> int:
    return run_job(PROG, build_parser(), work, argv)


if __name__ == "__main__":
    sys.exit(main())

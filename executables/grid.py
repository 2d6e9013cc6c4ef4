"""htclean-grid: one part's partial images, from one read of the part.

    htclean-grid --config R-config.yml --record R-JOB.record.json --mode MODE --part P.vis.npz
                 [--weights R-weights.npz] [--model R-model-cKK.json]
                 [--decision R-next-c(K-1).json] --output OUT.npz

Modes:
  weights    the part's weight density (uniform/Briggs), ``density`` float64
  psf-dirty  PSF and dirty image from one read (``psf``, ``dirty`` float32; the PSF is
             image.psf_oversize x the image, same cell and centre)
  residual   the residual of the model component list (``residual`` float32); with
             ``--decision`` (next's R-next-cKK.json, a pool run whose residual jobs are
             planned beside next: workflows/graph.py) an empty partial at once, without
             reading the part, when the loop stopped (imaging.ms.partials.skipped)

Every image is made for ``deconvolution.nterms`` Taylor terms (imaging/ms/parts.py): where
nterms > 1 the psf-dirty mode makes the Taylor-weighted dirty images ``dirty-ttN`` and PSFs
``psf-ttN`` from the same read, and the residual mode predicts the Taylor component list
(``--model``, imaging.deconvolution.model) and grids ``residual-ttN``, about
``image.reference_frequency``. Where nterms > 1 or ``image.primary_beam`` is on, the
psf-dirty partial also carries the imaging weights summed per channel.

The output is a partial (imaging.ms.partials.save_partial): unnormalised images, their weight sum
(float64), the count of visibilities and the geometry (size, cell, centre, band), so the
gather needs no MS. Uniform and Briggs weighting need ``--weights`` (the density of all
parts) in the psf-dirty and residual modes.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from htclean.executables import msparts
from htclean.executables.record import Job, job_parser, run_job
from htclean.imaging.errors import InputError

PROG = "htclean-grid"
MODES = ("weights", "psf-dirty", "residual")


def build_parser() -> argparse.ArgumentParser:
    parser = job_parser(PROG, __doc__)
    parser.add_argument("--mode", required=True, choices=MODES, help="what to grid")
    parser.add_argument("--part", required=True, metavar="P.vis.npz",
                        help="the part file written by htclean-partition (or an MS directory "
                        "or a tar of one)")
    parser.add_argument("--weights", metavar="R-weights.npz",
                        help="the weight density of all parts (uniform/Briggs weighting)")
    parser.add_argument("--model", metavar="R-model-cKK.json",
                        help="the model component list (mode residual)")
    parser.add_argument("--decision", metavar="R-next-cKK.json",
                        help="mode residual: the loop's decision before this cycle; when it "
                        "says stop, write an empty partial at once")
    parser.add_argument("--output", required=True, metavar="OUT.npz",
                        help="where to write the partial (.npz)")
    return parser


def load_density(job: Job, path: str | None):
    """The global density partial of ``--weights``, checked; None for natural weighting."""
    kind = job.settings["weighting"]["type"]
    if kind == "natural":
        return None
    if path is None:
        raise InputError(f"--weights: weighting.type {kind} needs the weight density of all "
                         "parts (R-weights.npz)")
    from htclean.imaging.ms import partials

    density = partials.load_partial(job.read(path, "--weights"))
    if "density" not in density.images:
        raise InputError(f"--weights: {path} holds {sorted(density.images)}, not a density")
    nx, ny = job.settings["image"]["nx"], job.settings["image"]["ny"]
    if density.images["density"].shape != (ny, nx):
        raise InputError(f"--weights: {path} is {density.images['density'].shape}, the image "
                         f"is {(ny, nx)}")
    return density


def stopped(job: Job, path: str) -> str | None:
    """Why the loop stopped, from next's decision file (``--decision``); None if it goes on."""
    import json

    try:
        decision = json.loads(job.read(path, "--decision").read_text())
        go_on, reason = decision["go_on"], str(decision["reason"])
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"--decision: {path} is not a decision of htclean-next") from None
    if not isinstance(go_on, bool):
        raise InputError(f"--decision: {path} has go_on {go_on!r}, not true or false")
    return None if go_on else reason


def work(args: argparse.Namespace, job: Job) -> None:
    from htclean.imaging.ms import partials, parts

    if args.mode == "residual" and args.model is None:
        raise InputError("--model: mode residual needs the model component list")
    if args.mode != "residual" and (args.model, args.decision) != (None, None):
        raise InputError(f"--model, --decision: only for mode residual, not {args.mode}")
    reason = stopped(job, args.decision) if args.decision else None
    if reason is not None:  # planned before the loop stopped: nothing reads this partial
        partials.save_partial(args.output, partials.skipped(reason))
        job.output(args.output)
        return
    part = job.read(args.part, "--part", allow_dir=True)
    settings = job.settings
    density = None if args.mode == "weights" else load_density(job, args.weights)
    nterms = int(settings["deconvolution"]["nterms"])
    ref_freq = settings["image"]["reference_frequency"] or None
    if nterms > 1 and not ref_freq:
        raise InputError("image.reference_frequency: not set (htclean plan sets it for "
                         "nterms > 1)")
    model = None
    if args.mode == "residual":
        from htclean.imaging.deconvolution.model import read_model

        model = read_model(job.read(args.model, "--model"), "--model", settings["image"]["nx"],
                           settings["image"]["ny"], nterms)
    from htclean.imaging.ms import partfile

    with contextlib.ExitStack() as stack:
        # a part file is read as it is; an MS (a directory or a tar of one) is also accepted
        ms = part if partfile.is_part_file(part) else \
            stack.enter_context(msparts.unpacked(part))
        if args.mode == "weights":
            partial = parts.part_density(ms, settings)
            if ms == part:  # a part file: its visibilities were not read
                job.partly_read[part] = partfile.bytes_read(part, vis=False)
        elif args.mode == "psf-dirty":
            partial = parts.part_psf_dirty(ms, settings, density, ref_freq=ref_freq)
        else:
            partial = parts.part_residual(ms, settings, model, density, ref_freq=ref_freq)
    job.visibilities = partial.visibilities
    partial.meta = {**partial.meta, "mode": args.mode}
    partials.save_partial(args.output, partial)
    job.output(args.output)


def main(argv: list[str] | None = None) -> int:
    return run_job(PROG, build_parser(), work, argv, uses_device=True)


if __name__ == "__main__":
    sys.exit(main())

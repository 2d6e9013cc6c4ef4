"""htclean-deconvolve: one minor cycle on the residual of the last major cycle.

    htclean-deconvolve --config R-config.yml --record R-deconvolve-cKK.record.json --cycle K
                       --psf R-psf.fits --residual (R-dirty.fits | R-residual-c(K-1).fits)
                       [--model R-model-c(K-1).json --state R-deconvolve-c(K-1).json]
                       --output-model R-model-cKK.json --output-state R-deconvolve-cKK.json

The PSF is ``image.psf_oversize`` x the image (R-psf.fits as the image tree's root gather
writes it), so the minor cycle subtracts it exactly at every offset in the image. The
threshold is ``max(deconvolution.threshold, auto_threshold x robust sigma)`` of the residual
read (imaging.clean.CleanParams.cycle_threshold), so it equals the one the ``next`` job
decided with. The minor cycle (imaging.clean.minor_cycle) adds its components to the
previous model; the output model is the cumulative component list. The output state is what
the loop decision (imaging.loop.LoopState) needs from the minor cycle, and its history:

    {"format": "htclean-deconvolve-state", "version": 1, "cycle": K,
     "iterations": this cycle's components, "iterations_total": all cycles',
     "peak_start": max |residual| before (Jy/beam), "peak_end": after this minor cycle,
     "stop_reason": no-peak|threshold|niter|mgain, "threshold": Jy, "components": model size,
     "flux": model flux (Jy), "history": [{"cycle", "iterations", "peak_start", "peak_end",
     "stop_reason", "threshold"}, ... one per cycle so far]}
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from htclean.executables.record import Job, job_parser, run_job, write_bytes_atomic
from htclean.imaging.errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from htclean.imaging.geometry import ImageGeometry

PROG = "htclean-deconvolve"
STATE_FORMAT = "htclean-deconvolve-state"
STATE_VERSION = 1


def build_parser() -> argparse.ArgumentParser:
    parser = job_parser(PROG, __doc__)
    parser.add_argument("--cycle", required=True, type=int, metavar="K",
                        help="this major cycle's number (1 for the first)")
    parser.add_argument("--psf", required=True, metavar="R-psf.fits", help="the PSF (FITS)")
    parser.add_argument("--residual", required=True, metavar="RESIDUAL.fits",
                        help="the dirty image (cycle 1) or the last residual (FITS)")
    parser.add_argument("--model", metavar="R-model-c(K-1).json",
                        help="the previous cumulative component list (cycles > 1)")
    parser.add_argument("--state", metavar="R-deconvolve-c(K-1).json",
                        help="the previous cycle's state (cycles > 1)")
    parser.add_argument("--output-model", required=True, metavar="R-model-cKK.json")
    parser.add_argument("--output-state", required=True, metavar="R-deconvolve-cKK.json")
    return parser


def read_state(path: str | Path) -> dict[str, Any]:
    """A state file written by this job; InputError naming the file when it is not one."""
    try:
        state = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable deconvolution state ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise InputError(f"{path}: not an htclean deconvolution state")
    if state.get("version") != STATE_VERSION:
        raise InputError(f"{path}: unsupported state version {state.get('version')!r}")
    for key in ("cycle", "iterations_total"):
        if isinstance(state.get(key), bool) or not isinstance(state.get(key), int) \
                or state[key] < 0:
            raise InputError(f"{path}: {key} must be an integer >= 0")
    if not isinstance(state.get("history"), list):
        raise InputError(f"{path}: history must be a list")
    return state


def _read_image(job: Job, path: str, what: str):
    import numpy as np

    from htclean.imaging.fits import read_fits

    image, geom, _ = read_fits(job.read(path, what), np.float32)  # as stored: half the memory
    nx, ny = job.settings["image"]["nx"], job.settings["image"]["ny"]
    if image.shape != (ny, nx):
        raise InputError(f"{what}: {path} is {image.shape[1]}x{image.shape[0]} pixels, the "
                         f"configured image is {nx}x{ny}")
    return image, geom


def read_psf(job: Job, path: str, geom: ImageGeometry) -> tuple[np.ndarray, ImageGeometry]:
    """The PSF of ``--psf`` (pny, pnx) float32 (as stored: half the memory) and its geometry:
    ``image.psf_oversize`` x the configured image (imaging.geometry.psf_shape), on the grid of
    the image ``geom`` (same cell and centre). InputError naming the file otherwise."""
    import numpy as np

    from htclean.imaging.fits import read_fits
    from htclean.imaging.geometry import psf_shape

    psf, psf_geom, _ = read_fits(job.read(path, "--psf"), np.float32)
    image = job.settings["image"]
    pnx, pny = psf_shape(image["nx"], image["ny"], image["psf_oversize"])
    if psf.shape != (pny, pnx):
        raise InputError(f"--psf: {path} is {psf.shape[1]}x{psf.shape[0]} pixels, "
                         f"image.psf_oversize {image['psf_oversize']:g} needs {pnx}x{pny}")
    if (psf_geom.cell, psf_geom.ra, psf_geom.dec) != (geom.cell, geom.ra, geom.dec):
        raise InputError(f"--psf: {path} differs from the image in cell or centre")
    return psf, psf_geom


def work(args: argparse.Namespace, job: Job) -> None:
    from htclean.imaging.clean import CleanParams, minor_cycle
    from htclean.imaging.components import ComponentList

    if job.settings["deconvolution"]["nterms"] > 1:  # multi-term MFS: its own module
        from htclean.executables import deconvolve_mtmfs

        return deconvolve_mtmfs.work(args, job)
    k = args.cycle
    if k < 1:
        raise InputError(f"--cycle must be >= 1, got {k}")
    if (args.model is None) != (args.state is None):
        raise InputError("--model and --state go together (the previous cycle's outputs)")
    if k > 1 and args.model is None:
        raise InputError(f"--model, --state: cycle {k} needs the outputs of cycle {k - 1}")
    residual, geom = _read_image(job, args.residual, "--residual")
    params = CleanParams.from_settings(job.settings)
    # the noise estimate's copies of the residual come and go before the PSF is read
    threshold = params.cycle_threshold(residual)
    psf, _ = read_psf(job, args.psf, geom)
    centre = psf[psf.shape[0] // 2, psf.shape[1] // 2]
    if centre > 0:  # normalised in place, so the minor cycle needs no copy (else its error)
        psf /= centre
    nx, ny = geom.nx, geom.ny
    history: list[dict[str, Any]] = []
    done = 0
    model = ComponentList.empty(nx, ny)
    if args.state is not None:
        state = read_state(job.read(args.state, "--state"))
        if state["cycle"] != k - 1:
            raise InputError(f"--state: {args.state} is the state of cycle {state['cycle']}, "
                             f"cycle {k} needs cycle {k - 1}'s")
        done, history = state["iterations_total"], list(state["history"])
        model = ComponentList.read(job.read(args.model, "--model"))
        if (model.nx, model.ny) != (nx, ny):
            raise InputError(f"--model: {args.model} is for a {model.nx}x{model.ny} image, "
                             f"the residual is {nx}x{ny}")
    if job.device.startswith("gpu:"):  # run_job chose the GPU (gridder.device): clean on it
        from htclean.imaging import device, gpu_clean

        minor = gpu_clean.minor_cycle(residual, psf, params, iterations_done=done,
                                      threshold=threshold, xp=device.select("gpu").xp)
    else:
        minor = minor_cycle(residual, psf, params, iterations_done=done, threshold=threshold)
    model = model.merge(minor.components)
    job.visibilities = 0
    entry = {"cycle": k, "iterations": minor.iterations, "peak_start": minor.peak_start,
             "peak_end": minor.peak_end, "stop_reason": minor.stop_reason,
             "threshold": float(threshold)}
    state_out = {"format": STATE_FORMAT, "version": STATE_VERSION, **entry,
                 "iterations_total": done + minor.iterations, "components": len(model),
                 "flux": model.total_flux, "history": [*history, entry]}
    job.output(write_bytes_atomic(args.output_model, (model.to_json() + "\n").encode()))
    job.write_json(args.output_state, state_out)


def main(argv: list[str] | None = None) -> int:
    return run_job(PROG, build_parser(), work, argv, uses_device=True)


if __name__ == "__main__":
    sys.exit(main())

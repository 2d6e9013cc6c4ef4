"""htclean-deconvolve: one minor cycle on the residual of the last major cycle.

    htclean-deconvolve --config R-config.yml --record R-deconvolve-cKK.record.json --cycle K
                       --psf R-psf.fits --residual (R-dirty.fits | R-residual-c(K-1).fits)
                       [--model R-model-c(K-1).json --state R-deconvolve-c(K-1).json]
                       --output-model R-model-cKK.json --output-state R-deconvolve-cKK.json

The PSF is ``image.psf_oversize`` x the image (R-psf.fits as the image tree's root gather
writes it), so the minor cycle subtracts it exactly at every offset in the image. Every
file holds ``deconvolution.nterms`` Taylor terms (imaging.fits.read_terms; one term is a plain
image): ``--psf`` the 2 nterms - 1 Taylor PSFs, ``--residual`` the nterms residuals, and the
models are component lists of nterms coefficients (imaging.deconvolution.model; where
nterms > 1 with the reference frequency, which every file must agree on). The threshold is
``max(deconvolution.threshold, auto_threshold x robust sigma)`` of the residual read
(imaging.deconvolution.clean.CleanParams.cycle_threshold), so it equals the one the ``next``
job decided with; it, the stop rules and the state's peaks are on the tt0 residual, max |R0|.
The minor cycle (imaging.deconvolution.clean.minor_cycle; on the GPU where run_job chose it)
adds its components to the previous model; the output model is the cumulative component
list. The output state is what the loop decision (imaging.deconvolution.loop.LoopState) needs
from the minor cycle, and its history (with "nterms" and "ref_freq" where nterms > 1):

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
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from htclean.executables.atomic import write_bytes_atomic
from htclean.executables.record import Job, job_parser, run_job
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


def read_terms_checked(job: Job, path: str, what: str, nterms: int, shape: tuple[int, int]):
    """(terms (nterms, ny, nx), geometry, reference frequency or None) of a FITS file of
    Taylor terms of the expected shape; float32 as stored where nterms is 1 (half the
    memory), float64 otherwise. InputError naming the file when it is not."""
    import numpy as np

    from htclean.imaging.fits import read_terms, reference_frequency

    terms, geom, header = read_terms(job.read(path, what), nterms,
                                     np.float32 if nterms == 1 else np.float64)
    if terms.shape[1:] != shape:
        if what == "--psf":
            image = job.settings["image"]
            raise InputError(f"--psf: {path} is {terms.shape[2]}x{terms.shape[1]} pixels, "
                             f"image.psf_oversize {image['psf_oversize']:g} needs "
                             f"{shape[1]}x{shape[0]}")
        raise InputError(f"{what}: {path} is {terms.shape[2]}x{terms.shape[1]} pixels, the "
                         f"configured image is {shape[1]}x{shape[0]}")
    ref = reference_frequency(header, path) if nterms > 1 else None
    return terms, geom, ref


def read_residual(job: Job, path: str) -> tuple[np.ndarray, ImageGeometry, float | None]:
    """The residual terms of ``--residual`` (nterms, ny, nx), their geometry and reference
    frequency (None for one term)."""
    image, nterms = job.settings["image"], int(job.settings["deconvolution"]["nterms"])
    return read_terms_checked(job, path, "--residual", nterms, (image["ny"], image["nx"]))


def read_psf(job: Job, path: str, geom: ImageGeometry, ref: float | None = None
             ) -> tuple[np.ndarray, ImageGeometry]:
    """The 2 nterms - 1 PSF terms of ``--psf`` (n, pny, pnx) and their geometry:
    ``image.psf_oversize`` x the configured image (imaging.geometry.psf_shape), on the grid of
    the image ``geom`` (same cell and centre) and, where nterms > 1, about its reference
    frequency ``ref``. InputError naming the file otherwise."""
    from htclean.imaging.geometry import psf_shape

    image, nterms = job.settings["image"], int(job.settings["deconvolution"]["nterms"])
    pnx, pny = psf_shape(image["nx"], image["ny"], image["psf_oversize"])
    psf, psf_geom, psf_ref = read_terms_checked(job, path, "--psf", 2 * nterms - 1, (pny, pnx))
    if (psf_geom.cell, psf_geom.ra, psf_geom.dec) != (geom.cell, geom.ra, geom.dec):
        raise InputError(f"--psf: {path} differs from the image in cell or centre")
    if ref is not None and not math.isclose(ref, psf_ref, rel_tol=1e-12):
        raise InputError(f"--psf: reference frequency {psf_ref} Hz, the residual's is {ref} Hz")
    return psf, psf_geom


def minor_cycle_files(job: Job, k: int, psf: str, residual_path: str, model_path: str | None,
                      state_path: str | None, output_model: str, output_state: str) -> None:
    """Minor cycle ``k`` from files: the PSF, the residual of cycle k-1 (the dirty image at
    k = 1) and, after the first, cycle k-1's model and state; writes the cumulative model and
    the state of cycle ``k`` (the module docstring). On a GPU where ``job.device`` says so.
    The ``next`` job runs it too (``next --output-model``), where the minor cycle runs on the
    submit host: the same files in, the same bytes out."""
    from htclean.imaging.deconvolution import model as models
    from htclean.imaging.deconvolution.clean import CleanParams, minor_cycle

    if k < 1:
        raise InputError(f"--cycle must be >= 1, got {k}")
    if (model_path is None) != (state_path is None):
        raise InputError("--model and --state go together (the previous cycle's outputs)")
    if k > 1 and model_path is None:
        raise InputError(f"--model, --state: cycle {k} needs the outputs of cycle {k - 1}")
    residual, geom, ref = read_residual(job, residual_path)
    nterms = residual.shape[0]
    params = CleanParams.from_settings(job.settings)
    # the noise estimate's copies of the residual come and go before the PSF is read
    threshold = params.cycle_threshold(residual[0])
    psf_terms, _ = read_psf(job, psf, geom, ref)
    centre = psf_terms[0, psf_terms.shape[1] // 2, psf_terms.shape[2] // 2]
    if centre > 0:  # normalised in place, so the minor cycle needs no copy (else its error)
        psf_terms /= centre
    history: list[dict[str, Any]] = []
    done = 0
    model = models.empty(geom.nx, geom.ny, nterms)
    if state_path is not None:
        state = read_state(job.read(state_path, "--state"))
        if state["cycle"] != k - 1:
            raise InputError(f"--state: {state_path} is the state of cycle {state['cycle']}, "
                             f"cycle {k} needs cycle {k - 1}'s")
        done, history = state["iterations_total"], list(state["history"])
        model = models.read_model(job.read(model_path, "--model"), "--model", geom.nx,
                                  geom.ny, nterms, ref)
    if job.device.startswith("gpu:"):  # run_job chose the GPU (gridder.device): clean on it
        from htclean.imaging.gpu import device

        xp = device.select("gpu").xp
    else:
        xp = None
    minor = minor_cycle(residual, psf_terms, params, iterations_done=done, threshold=threshold,
                        xp=xp)
    model = model.merge(minor.components)
    entry = {"cycle": k, "iterations": minor.iterations, "peak_start": minor.peak_start,
             "peak_end": minor.peak_end, "stop_reason": minor.stop_reason,
             "threshold": float(threshold)}
    terms = {"nterms": nterms, "ref_freq": ref} if nterms > 1 else {}
    state_out = {"format": STATE_FORMAT, "version": STATE_VERSION, **entry,
                 "iterations_total": done + minor.iterations, "components": len(model),
                 "flux": model.total_flux, **terms, "history": [*history, entry]}
    job.output(write_bytes_atomic(output_model, models.to_json(model, ref).encode()))
    job.write_json(output_state, state_out)


def work(args: argparse.Namespace, job: Job) -> None:
    minor_cycle_files(job, args.cycle, args.psf, args.residual, args.model, args.state,
                      args.output_model, args.output_state)
    job.visibilities = 0


def main(argv: list[str] | None = None) -> int:
    return run_job(PROG, build_parser(), work, argv, uses_device=True)


if __name__ == "__main__":
    sys.exit(main())

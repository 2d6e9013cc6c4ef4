"""The multi-term minor cycle of htclean-deconvolve (deconvolution.nterms > 1).

Same arguments, outputs and state as the nterms-1 job (executables/deconvolve.py, which
dispatches here): ``--psf`` holds the 2 nterms - 1 Taylor PSFs and ``--residual`` the nterms
Taylor residuals (imaging/fits_terms.py), ``--model``/``--output-model`` are Taylor component
lists (imaging.mtmfs.TaylorComponents, with the reference frequency). The minor cycle is
imaging.mtmfs.minor_cycle (Högbom or multiscale); its stop rules, the threshold and the state's
peaks are on the tt0 residual, max |R0|, as the ``next`` job decides with. CPU only.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import numpy as np

from htclean.executables.record import Job, write_bytes_atomic
from htclean.imaging.errors import InputError


def read_terms_checked(job: Job, path: str, what: str, nterms: int, shape: tuple[int, int]):
    """(terms, geometry, reference frequency) of a Taylor FITS file, of the expected shape."""
    from htclean.imaging.fits_terms import read_terms, reference_frequency

    terms, geom, header = read_terms(job.read(path, what), nterms)
    if terms.shape[1:] != shape:
        raise InputError(f"{what}: {path} is {terms.shape[2]}x{terms.shape[1]} pixels, "
                         f"{shape[1]}x{shape[0]} expected")
    return terms, geom, reference_frequency(header, path)


def read_inputs(job: Job, psf_path: str, residual_path: str):
    """(residual terms, PSF terms, image geometry, reference frequency), checked against the
    configuration and each other."""
    from htclean.imaging.geometry import psf_shape

    image, nterms = job.settings["image"], int(job.settings["deconvolution"]["nterms"])
    residual, geom, ref = read_terms_checked(job, residual_path, "--residual", nterms,
                                             (image["ny"], image["nx"]))
    pnx, pny = psf_shape(image["nx"], image["ny"], image["psf_oversize"])
    psf, pgeom, psf_ref = read_terms_checked(job, psf_path, "--psf", 2 * nterms - 1,
                                             (pny, pnx))
    if (pgeom.cell, pgeom.ra, pgeom.dec) != (geom.cell, geom.ra, geom.dec):
        raise InputError(f"--psf: {psf_path} differs from the image in cell or centre")
    if not math.isclose(ref, psf_ref, rel_tol=1e-12):
        raise InputError(f"--psf: reference frequency {psf_ref} Hz, the residual's is {ref} Hz")
    return residual, psf, geom, ref


def work(args: argparse.Namespace, job: Job) -> None:
    from htclean.executables.deconvolve import STATE_FORMAT, STATE_VERSION, read_state
    from htclean.imaging.clean import CleanParams
    from htclean.imaging.mtmfs import TaylorComponents, minor_cycle

    k = args.cycle
    if k < 1:
        raise InputError(f"--cycle must be >= 1, got {k}")
    if (args.model is None) != (args.state is None):
        raise InputError("--model and --state go together (the previous cycle's outputs)")
    if k > 1 and args.model is None:
        raise InputError(f"--model, --state: cycle {k} needs the outputs of cycle {k - 1}")
    residual, psf, geom, ref = read_inputs(job, args.psf, args.residual)
    nterms = residual.shape[0]
    history: list[dict[str, Any]] = []
    done = 0
    model = TaylorComponents.from_arrays([], [], np.zeros((0, nterms)), geom.nx, geom.ny)
    if args.state is not None:
        state = read_state(job.read(args.state, "--state"))
        if state["cycle"] != k - 1:
            raise InputError(f"--state: {args.state} is the state of cycle {state['cycle']}, "
                             f"cycle {k} needs cycle {k - 1}'s")
        done, history = state["iterations_total"], list(state["history"])
        model, model_ref = TaylorComponents.read(job.read(args.model, "--model"))
        if (model.nx, model.ny, model.nterms) != (geom.nx, geom.ny, nterms):
            raise InputError(f"--model: {args.model} is for a {model.nx}x{model.ny} image of "
                             f"{model.nterms} terms, the residual is {geom.nx}x{geom.ny}, "
                             f"{nterms} terms")
        if not math.isclose(model_ref, ref, rel_tol=1e-12):
            raise InputError(f"--model: reference frequency {model_ref} Hz, the residual's "
                             f"is {ref} Hz")
    params = CleanParams.from_settings(job.settings)
    threshold = params.cycle_threshold(residual[0])
    minor = minor_cycle(residual, psf, params, iterations_done=done, threshold=threshold)
    model = model.merge(minor.components)
    job.visibilities = 0
    entry = {"cycle": k, "iterations": minor.iterations, "peak_start": minor.peak_start,
             "peak_end": minor.peak_end, "stop_reason": minor.stop_reason,
             "threshold": float(threshold)}
    state_out = {"format": STATE_FORMAT, "version": STATE_VERSION, **entry,
                 "iterations_total": done + minor.iterations, "components": len(model),
                 "flux": float(model.flux[:, 0].sum()), "nterms": nterms,
                 "ref_freq": ref, "history": [*history, entry]}
    text = json.dumps(model.to_dict(ref), separators=(",", ":")) + "\n"
    job.output(write_bytes_atomic(args.output_model, text.encode()))
    job.write_json(args.output_state, state_out)

"""htclean-restore for multi-term MFS (deconvolution.nterms > 1) and the primary beam.

Called by executables/restore.py. Where nterms > 1 (``work``), with WSClean's and CASA's
names: NAME-image-ttN.fits (restored Taylor coefficients, ``model_t * beam + (H^-1 R)_t``),
NAME-residual-ttN.fits (the Taylor-weighted residuals R_t), NAME-model-ttN.fits (Jy/pixel),
NAME-alpha.fits (tt1 / tt0 where tt0 is above ``ALPHA_CUT`` x its residual noise, NaN
elsewhere) and NAME-alpha-error.fits, NAME-psf.fits (PSF tt0 cropped to the image) and
NAME-dirty.fits (dirty tt0); the FREQ axis of every file is the Taylor reference frequency
(CRVAL3, as CASA's tt images), the band its width. Previews NAME-image-tt0.png,
NAME-residual-tt0.png, NAME-psf.png and NAME-alpha.png; NAME-summary.json.

With ``image.primary_beam`` (``pb_products``, any nterms): NAME-pb.fits (the VLA beam of
imaging/primary_beam.py averaged over the channels with the imaging weights of R-psf.fits'
CHANWGT table), and the corrected NAME-image-pb.fits (nterms 1) or NAME-image-tt0-pb.fits
and NAME-alpha-pb.fits (``alpha - pb_tt1 / pb_tt0``), blanked (NaN) where the beam is below
``image.pb_limit``. The beam points at the image centre (one pointing).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from htclean.executables.record import Job
from htclean.imaging.cpus import planned_threads
from htclean.imaging.errors import InputError

ASEC = math.pi / 180.0 / 3600.0
ALPHA_CUT = 5.0  # alpha where restored tt0 > ALPHA_CUT x the robust sigma of (H^-1 R)_0
ALPHA_RANGE = (-2.5, 1.5)  # the alpha preview's colour range (steep to inverted spectra)


def pb_products(job: Job, name: str, psf_path: str, geom: Any, beam: Any,
                images: dict[str, np.ndarray], ref_freq: float | None = None) -> list[str]:
    """Write NAME-pb.fits and the corrected ``images`` (NAME-image-pb.fits for ``image``;
    NAME-image-tt0-pb.fits, NAME-alpha-pb.fits for ``image-tt0``, ``alpha``); their names."""
    from htclean.imaging import primary_beam
    from htclean.imaging.fits import write_fits
    from htclean.imaging.fits_terms import read_channel_weights

    freqs, weights = read_channel_weights(job.read(psf_path, "--psf"))
    limit = float(job.settings["image"]["pb_limit"])
    nterms = 2 if "alpha" in images else 1
    pb = primary_beam.taylor_beam(geom.shape, geom.cell, freqs, weights, ref_freq=ref_freq,
                                  nterms=nterms)
    band = f"VLA primary beam (EVLA Memo 195), {len(freqs)} channels weighted as the data"
    written = [(f"{name}-pb.fits", pb[0], "", [band])]
    for kind, data in images.items():
        if kind == "alpha":
            corrected = primary_beam.pb_correct_alpha(data, pb, limit)
            unit = ""
        else:
            corrected = primary_beam.pb_correct(data, pb[0], limit)
            unit = "Jy/beam"
        written.append((f"{name}-{kind}-pb.fits", corrected, unit,
                        [f"corrected for the primary beam; blanked below {limit:g}"]))
    for path, data, unit, history in written:
        write_fits(path, data, geom, beam=beam, bunit=unit, history=history)
        job.output(path)
    return [p for p, *_ in written]


def _stats(image: np.ndarray) -> dict[str, float]:
    from htclean.imaging.noise import robust_sigma

    return {"peak": float(image.max()), "min": float(image.min()),
            "robust_sigma": float(robust_sigma(image))}


def alpha_line(alpha: np.ndarray, cut: float) -> str:
    """The alpha preview's numbers: the median and quartiles where alpha is defined."""
    from htclean.imaging.preview import format_value

    finite = alpha[np.isfinite(alpha)]
    if finite.size == 0:
        return f"no pixel above the cut (tt0 > {format_value(cut, 'Jy/beam')})"
    q1, med, q3 = (float(v) for v in np.percentile(finite, [25, 50, 75]))
    return (f"median {med:.2f} (quartiles {q1:.2f}, {q3:.2f}) over {finite.size} pixels "
            f"with tt0 > {format_value(cut, 'Jy/beam')}")


def work(args: argparse.Namespace, job: Job) -> None:
    """The multi-term restore (module docstring)."""
    from htclean.executables.deconvolve import read_state
    from htclean.executables.deconvolve_mtmfs import read_inputs, read_terms_checked
    from htclean.executables.restore import loop_decision
    from htclean.imaging import mtmfs
    from htclean.imaging.beam import fit_clean_beam
    from htclean.imaging.fits import write_fits
    from htclean.imaging.geometry import crop_centre
    from htclean.imaging.preview import write_preview
    from htclean.workflows.names import taylor_products

    name, settings = args.name, job.settings
    residual, psf, geom, ref = read_inputs(job, args.psf, args.residual)
    nterms = residual.shape[0]
    dirty, _, _ = read_terms_checked(job, args.dirty, "--dirty", nterms, geom.shape)
    if (args.model is None) != (args.state is None):
        raise InputError("--model and --state go together (the last cycle's outputs)")
    if args.model is not None:
        comps, model_ref = mtmfs.TaylorComponents.read(job.read(args.model, "--model"))
        if (comps.nx, comps.ny, comps.nterms) != (geom.nx, geom.ny, nterms) \
                or not math.isclose(model_ref, ref, rel_tol=1e-12):
            raise InputError(f"--model: {args.model} does not match the residual's image, "
                             "terms or reference frequency")
    else:
        comps = mtmfs.TaylorComponents.from_arrays([], [], np.zeros((0, nterms)), geom.nx,
                                                   geom.ny)
    state = read_state(job.read(args.state, "--state")) if args.state else None
    decision = loop_decision(job, args.residual, args.state)

    beam = fit_clean_beam(psf[0], geom.cell)
    restored = mtmfs.restore_terms(comps, residual, psf, beam, geom.cell,
                                   threads=planned_threads(settings))
    sigma = mtmfs.residual_sigma(residual, psf)
    cut = ALPHA_CUT * float(sigma[0]) if sigma[0] > 0 else 1e-3 * float(restored[0].max())
    alpha, alpha_err = mtmfs.spectral_index(restored, cut=cut, sigma=sigma)
    tgeom = replace(geom, freq=ref)  # CRVAL3: the Taylor reference frequency
    pgeom = replace(tgeom, nx=geom.nx, ny=geom.ny)
    history = [f"htclean-restore: {len(comps)} Taylor components, nterms {nterms}",
               f"Taylor reference frequency {ref!r} Hz (CRVAL3)"]
    products: list[tuple[str, np.ndarray, str, Any]] = []
    for t in range(nterms):
        products += [(f"image-tt{t}", restored[t], "Jy/beam", beam),
                     (f"residual-tt{t}", residual[t], "Jy/beam", beam),
                     (f"model-tt{t}", comps.term(t).to_image(), "Jy/pixel", beam)]
    products += [("alpha", alpha, "", beam), ("alpha-error", alpha_err, "", beam),
                 ("psf", crop_centre(psf[0], geom.shape), "Jy/beam", beam),
                 ("dirty", dirty[0], "Jy/beam", beam)]
    for kind, data, unit, b in products:
        path = Path(f"{name}-{kind}.fits")
        write_fits(path, data, pgeom if kind == "psf" else tgeom, beam=b, bunit=unit,
                   history=history)
        job.output(path)
    previews = (("image-tt0", restored[0], "restored tt0", "Jy/beam", {}),
                ("residual-tt0", residual[0], "residual tt0", "Jy/beam", {}),
                ("psf", crop_centre(psf[0], geom.shape), "PSF tt0", "",
                 {"label": "PSF (peak 1)", "noise": False}),
                ("alpha", alpha, "spectral index", "",
                 {"label": "alpha", "noise": False, "stretch": "linear", "cmap": "coolwarm",
                  "vmin": ALPHA_RANGE[0], "vmax": ALPHA_RANGE[1],
                  "statistics": alpha_line(alpha, cut)}))
    for kind, data, title, unit, extra in previews:
        path = Path(f"{name}-{kind}.png")
        write_preview(path, data, tgeom, title=f"{name}: {title}", bunit=unit, beam=beam,
                      **extra)
        job.output(path)
    pb = []
    if settings["image"]["primary_beam"]:
        pb = pb_products(job, name, args.psf, tgeom, beam,
                         {"image-tt0": restored[0], "alpha": alpha}, ref_freq=ref)
    finite = alpha[np.isfinite(alpha)]
    summary = {
        "name": name, "nterms": nterms, "reference_frequency_hz": ref,
        "beam": {"bmaj_asec": beam.bmaj / ASEC, "bmin_asec": beam.bmin / ASEC,
                 "bpa_deg": float(beam.bpa)},
        "image_tt0": _stats(restored[0]), "residual_tt0": _stats(residual[0]),
        "alpha": {"pixels": int(finite.size), "cut_jy": cut,
                  "median": float(np.median(finite)) if finite.size else None},
        "components": len(comps), "flux_tt0": float(comps.flux[:, 0].sum()),
        "cycles": int(state["cycle"]) if state else 0,
        "iterations": int(state["iterations_total"]) if state else 0,
        "stop_reason": decision.reason, "threshold": decision.threshold,
        "minor_stop_reason": state["stop_reason"] if state else None,
        "geometry": {"nx": geom.nx, "ny": geom.ny, "cell_asec": geom.cell / ASEC,
                     "ra_deg": math.degrees(geom.ra), "dec_deg": math.degrees(geom.dec),
                     "freq_hz": ref, "bandwidth_hz": geom.bandwidth},
        "products": taylor_products(name, nterms, bool(pb)),
    }
    job.write_json(Path(f"{name}-summary.json"), summary)

"""htclean-restore: the clean beam, the restored image, every product and its preview.

    htclean-restore --config R-config.yml --record R-restore.record.json
                    --psf R-psf.fits --dirty R-dirty.fits
                    --residual (R-dirty.fits | R-residual-cKK.fits)
                    [--model R-model-cKK.json --state R-deconvolve-cKK.json] --name NAME

Fits the clean beam to the PSF (imaging.beams.beam.fit_clean_beam; R-psf.fits is
``image.psf_oversize`` x the image, its main lobe is the same), restores the model of every
Taylor term (imaging.beams.restore: model convolved with the beam + residual; where nterms > 1 the
residual in coefficient units, ``(H^-1 R)_t``, as CASA's mtmfs) and writes, with WSClean's
names and BMAJ/BMIN/BPA in every header: NAME-image.fits (Jy/beam), NAME-model.fits
(Jy/pixel), NAME-residual.fits (where nterms > 1 one of each per term, NAME-image-ttN.fits
..., the Taylor-weighted residuals R_t), NAME-psf.fits (PSF tt0 cropped to the image size
about its centre, as WSClean and CASA write it), NAME-dirty.fits (tt0); where nterms > 1
NAME-alpha.fits (tt1 / tt0 where tt0 is above ``ALPHA_CUT`` x its residual noise, NaN
elsewhere) and NAME-alpha-error.fits, with the Taylor reference frequency as every file's
FREQ (CRVAL3, as CASA's tt images). Previews NAME-image.png, NAME-residual.png, NAME-psf.png
(tt0: NAME-image-tt0.png ..., and NAME-alpha.png; none with ``output.previews`` false, as
in a cube's channels); and NAME-summary.json (beam, peak, rms,
components, cycles, iterations, stop reason; nterms, reference frequency and alpha where
nterms > 1). Without --model there was no deconvolution: the image is the residual (the dirty
image). --state (the last cycle's; required with --model) gives the summary the cycles and
iterations; the loop's stop reason is imaging.deconvolution.loop.decide on the residual and
that state, the same decision the last ``next`` job made.

With ``image.primary_beam`` (``pb_products``): NAME-pb.fits (the VLA beam of
imaging/beams/primary_beam.py averaged over the channels with the imaging weights of R-psf.fits'
CHANWGT table), and the corrected NAME-image-pb.fits (nterms 1) or NAME-image-tt0-pb.fits
and NAME-alpha-pb.fits (``alpha - pb_tt1 / pb_tt0``), blanked (NaN) where the beam is below
``image.pb_limit``. The beam points at the image centre (one pointing).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from htclean.executables.deconvolve import (
    read_psf,
    read_residual,
    read_state,
    read_terms_checked,
)
from htclean.executables.record import Job, job_parser, run_job
from htclean.imaging.errors import InputError

PROG = "htclean-restore"
ASEC = math.pi / 180.0 / 3600.0
ALPHA_CUT = 5.0  # alpha where restored tt0 > ALPHA_CUT x the robust sigma of (H^-1 R)_0
ALPHA_RANGE = (-2.5, 1.5)  # the alpha preview's colour range (steep to inverted spectra)


def build_parser() -> argparse.ArgumentParser:
    parser = job_parser(PROG, __doc__)
    parser.add_argument("--psf", required=True, metavar="R-psf.fits")
    parser.add_argument("--dirty", required=True, metavar="R-dirty.fits")
    parser.add_argument("--residual", required=True, metavar="RESIDUAL.fits",
                        help="the last residual (the dirty image when nothing was cleaned)")
    parser.add_argument("--model", metavar="R-model-cKK.json",
                        help="the cumulative component list of the last cycle")
    parser.add_argument("--state", metavar="R-deconvolve-cKK.json",
                        help="the last cycle's deconvolution state (with --model)")
    parser.add_argument("--name", required=True, help="product prefix: NAME-image.fits, ...")
    return parser


def loop_decision(job: Job, residual: str, state: str | None):
    """The loop's last decision (imaging.deconvolution.loop.Decision), as ``htclean-next``
    made it from the residual and the state of the last cycle (cycle 0 without a state)."""
    from htclean.executables.next import loop_state
    from htclean.imaging.deconvolution.loop import LoopLimits, decide

    cycle = read_state(job.read(state, "--state"))["cycle"] if state else 0
    args = argparse.Namespace(cycle=cycle, residual=residual, state=state)
    return decide(loop_state(job, args), LoopLimits.from_settings(job.settings))


def _stats(image: np.ndarray) -> dict[str, float]:
    from htclean.imaging.noise import robust_sigma

    return {"peak": float(image.max()), "min": float(image.min()),
            "rms": float(np.sqrt(np.mean(np.square(image), dtype=np.float64))),
            "robust_sigma": float(robust_sigma(image))}


def pb_products(job: Job, name: str, psf_path: str, geom: Any, beam: Any,
                images: dict[str, np.ndarray], ref_freq: float | None = None) -> list[str]:
    """Write NAME-pb.fits and the corrected ``images`` (NAME-image-pb.fits for ``image``;
    NAME-image-tt0-pb.fits, NAME-alpha-pb.fits for ``image-tt0``, ``alpha``); their names."""
    from htclean.imaging.beams import primary_beam
    from htclean.imaging.fits import read_channel_weights, write_fits

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


def alpha_line(alpha: np.ndarray, cut: float) -> str:
    """The alpha preview's numbers: the median and quartiles where alpha is defined."""
    from htclean.imaging.preview import format_value

    finite = alpha[np.isfinite(alpha)]
    if finite.size == 0:
        return f"no pixel above the cut (tt0 > {format_value(cut, 'Jy/beam')})"
    q1, med, q3 = (float(v) for v in np.percentile(finite, [25, 50, 75]))
    return (f"median {med:.2f} (quartiles {q1:.2f}, {q3:.2f}) over {finite.size} pixels "
            f"with tt0 > {format_value(cut, 'Jy/beam')}")


def spectral_products(model: Any, residual: np.ndarray, psf: np.ndarray, beam: Any,
                      cell: float, threads: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The restored Taylor images (nterms, ny, nx) and, where nterms > 1, the spectral
    index's: ``{"alpha", "alpha-error", "cut", "statistics"}`` (empty for one term)."""
    from htclean.imaging.beams import restore

    if residual.shape[0] == 1:  # the residual is its own coefficient (H = 1), as stored
        return restore.restore(model, residual[0], beam, cell, dtype=np.float32,
                               threads=threads)[None], {}
    restored = restore.restore_terms(model, residual, psf, beam, cell, threads=threads)
    sigma = restore.residual_sigma(residual, psf)
    cut = ALPHA_CUT * float(sigma[0]) if sigma[0] > 0 else 1e-3 * float(restored[0].max())
    alpha, alpha_err = restore.spectral_index(restored, cut=cut, sigma=sigma)
    return restored, {"alpha": alpha, "alpha-error": alpha_err, "cut": cut,
                      "statistics": alpha_line(alpha, cut)}


def work(args: argparse.Namespace, job: Job) -> None:
    from htclean.imaging.beams.beam import fit_clean_beam
    from htclean.imaging.cpus import planned_threads
    from htclean.imaging.deconvolution import model as models
    from htclean.imaging.geometry import crop_centre

    name, settings = args.name, job.settings
    if not name or "/" in name:
        raise InputError(f"--name: {name!r} must be a plain file-name prefix")
    residual, geom, ref = read_residual(job, args.residual)
    nterms = residual.shape[0]
    dirty, dirty_geom, _ = read_terms_checked(job, args.dirty, "--dirty", nterms, geom.shape)
    g = dirty_geom
    if (g.nx, g.ny, g.cell, g.ra, g.dec) != (geom.nx, geom.ny, geom.cell, geom.ra, geom.dec):
        raise InputError("--dirty: its pixel grid differs from the residual's")
    psf, psf_geom = read_psf(job, args.psf, geom, ref)
    if (args.model is None) != (args.state is None):
        raise InputError("--model and --state go together (the last cycle's outputs)")
    model = models.empty(geom.nx, geom.ny, nterms) if args.model is None else \
        models.read_model(job.read(args.model, "--model"), "--model", geom.nx, geom.ny, nterms,
                          ref)
    state = read_state(job.read(args.state, "--state")) if args.state else None
    decision = loop_decision(job, args.residual, args.state)

    beam = fit_clean_beam(psf[0], geom.cell)
    restored, spectral = spectral_products(model, residual, psf, beam, geom.cell,
                                           planned_threads(settings))
    psf = crop_centre(psf[0], geom.shape)  # the full PSF (4x the image) is not kept
    if ref is not None:  # CRVAL3: the Taylor reference frequency
        geom, dirty_geom, psf_geom = (replace(g, freq=ref) for g in (geom, dirty_geom, psf_geom))
    psf_geom = replace(psf_geom, nx=geom.nx, ny=geom.ny)
    history = [f"htclean-restore: {len(model)} components, {model.total_flux:.6g} Jy"] \
        if nterms == 1 else [f"htclean-restore: {len(model)} Taylor components, nterms {nterms}",
                             f"Taylor reference frequency {ref!r} Hz (CRVAL3)"]
    images = [(k, spectral[k], geom, "") for k in ("alpha", "alpha-error") if k in spectral]
    images += [("psf", psf, psf_geom, "Jy/beam"), ("dirty", dirty[0], dirty_geom, "Jy/beam")]
    write_images(job, name, model, restored, residual, images, geom, beam, history)
    stats = {"image": _stats(restored[0]), "residual": _stats(residual[0])}  # sigma once
    if settings["output"]["previews"]:
        write_previews(job, name, restored[0], residual[0], psf, spectral, geom, beam, stats)
    if settings["image"]["primary_beam"]:
        pb = {"image": restored[0]} if nterms == 1 else \
            {"image-tt0": restored[0], "alpha": spectral["alpha"]}
        pb_products(job, name, args.psf, geom, beam, pb, ref_freq=ref)
    job.write_json(Path(f"{name}-summary.json"),
                   summary(job, name, model, nterms, ref, beam, stats, spectral, state,
                           decision, geom))


def _tt(nterms: int) -> list[str]:
    """The products' term suffixes: none for one term, ``-tt0`` .. otherwise."""
    return [""] if nterms == 1 else [f"-tt{t}" for t in range(nterms)]


def write_images(job: Job, name: str, model: Any, restored: np.ndarray, residual: np.ndarray,
                 others: list[tuple[str, np.ndarray, Any, str]], geom: Any, beam: Any,
                 history: list[str]) -> None:
    """NAME-image, -model and -residual FITS of every term, then ``others`` (kind, data,
    geometry, unit), each with the clean beam."""
    from htclean.imaging.deconvolution import model as models
    from htclean.imaging.fits import write_fits

    images: list[tuple[str, np.ndarray, Any, str]] = []
    for t, sfx in enumerate(_tt(len(residual))):
        images += [(f"image{sfx}", restored[t], geom, "Jy/beam"),
                   (f"model{sfx}", models.term(model, t).to_image(np.float32), geom,
                    "Jy/pixel"),
                   (f"residual{sfx}", residual[t], geom, "Jy/beam")]
    for kind, data, g, bunit in images + others:
        path = Path(f"{name}-{kind}.fits")
        write_fits(path, data, g, beam=beam, bunit=bunit, history=history)
        job.output(path)


def write_previews(job: Job, name: str, image: np.ndarray, residual: np.ndarray,
                   psf: np.ndarray, spectral: dict[str, Any], geom: Any, beam: Any,
                   stats: dict[str, dict[str, float]]) -> None:
    """The PNG previews of tt0's restored image, residual and PSF, and of alpha, drawn at
    once (executables/forked.py)."""
    from htclean.executables.forked import run_forked
    from htclean.imaging.preview import write_preview

    sfx, tt0 = ("", "") if not spectral else ("-tt0", " tt0")
    previews = [(f"image{sfx}", image, f"restored {'tt0' if tt0 else 'image'}", "Jy/beam",
                 {"sigma": stats["image"]["robust_sigma"]}),
                (f"residual{sfx}", residual, f"residual{tt0}", "Jy/beam",
                 {"sigma": stats["residual"]["robust_sigma"]}),
                ("psf", psf, f"PSF{tt0}", "", {"label": "PSF (peak 1)", "noise": False})]
    if spectral:
        previews.append(("alpha", spectral["alpha"], "spectral index", "",
                         {"label": "alpha", "noise": False, "stretch": "linear",
                          "cmap": "coolwarm", "vmin": ALPHA_RANGE[0], "vmax": ALPHA_RANGE[1],
                          "statistics": spectral["statistics"]}))
    def piece(path: Path, data: np.ndarray, title: str, unit: str, extra: dict) -> Callable:
        return lambda: write_preview(path, data, geom, title=f"{name}: {title}", bunit=unit,
                                     beam=beam, **extra)

    paths = [Path(f"{name}-{kind}.png") for kind, *_ in previews]
    # side by side (forked.py): each is a quarter of a second of matplotlib on one core
    run_forked([piece(path, *rest) for path, (_, *rest) in zip(paths, previews, strict=True)])
    for path in paths:
        job.output(path)


def summary(job: Job, name: str, model: Any, nterms: int, ref: float | None, beam: Any,
            stats: dict[str, dict[str, float]], spectral: dict[str, Any],
            state: dict[str, Any] | None, decision: Any, geom: Any) -> dict[str, Any]:
    """NAME-summary.json: beam, tt0's statistics, components, cycles, iterations, the stop
    reasons, the geometry and the products; nterms, reference frequency and alpha where
    nterms > 1 (their keys ``image_tt0``, ``residual_tt0``, ``flux_tt0``)."""
    from htclean.workflows.names import products

    out: dict[str, Any] = {"name": name}
    if nterms > 1:
        out.update(nterms=nterms, reference_frequency_hz=ref)
    out["beam"] = {"bmaj_asec": beam.bmaj / ASEC, "bmin_asec": beam.bmin / ASEC,
                   "bpa_deg": float(beam.bpa)}
    sfx = _tt(nterms)[0].replace("-", "_")
    out.update({f"image{sfx}": stats["image"], f"residual{sfx}": stats["residual"]})
    if spectral:
        finite = spectral["alpha"][np.isfinite(spectral["alpha"])]
        out["alpha"] = {"pixels": int(finite.size), "cut_jy": spectral["cut"],
                        "median": float(np.median(finite)) if finite.size else None}
    pb = bool(job.settings["image"]["primary_beam"])
    out.update({
        "components": len(model), f"flux{sfx}": model.total_flux,
        "cycles": int(state["cycle"]) if state else 0,
        "iterations": int(state["iterations_total"]) if state else 0,
        "stop_reason": decision.reason, "threshold": decision.threshold,
        "minor_stop_reason": state["stop_reason"] if state else None,
        "geometry": {"nx": geom.nx, "ny": geom.ny, "cell_asec": geom.cell / ASEC,
                     "ra_deg": math.degrees(geom.ra), "dec_deg": math.degrees(geom.dec),
                     "freq_hz": geom.freq, "bandwidth_hz": geom.bandwidth},
        "products": [p for p in products(name, nterms, pb, job.settings["output"]["previews"])
                     if p != f"{name}-summary.json"]})
    return out


def main(argv: list[str] | None = None) -> int:
    return run_job(PROG, build_parser(), work, argv)


if __name__ == "__main__":
    sys.exit(main())

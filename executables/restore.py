"""htclean-restore: the clean beam, the restored image, every product and its preview.

    htclean-restore --config R-config.yml --record R-restore.record.json
                    --psf R-psf.fits --dirty R-dirty.fits
                    --residual (R-dirty.fits | R-residual-cKK.fits)
                    [--model R-model-cKK.json --state R-deconvolve-cKK.json] --name NAME

Fits the clean beam to the PSF (imaging.beam.fit_clean_beam; R-psf.fits is
``image.psf_oversize`` x the image, its main lobe is the same), restores the model
(imaging.restore.restore: model convolved with the beam + residual) and writes, with WSClean's
names and BMAJ/BMIN/BPA in every header: NAME-image.fits (Jy/beam), NAME-model.fits
(Jy/pixel), NAME-residual.fits, NAME-psf.fits (the PSF cropped to the image size about its
centre, as WSClean and CASA write it), NAME-dirty.fits; previews NAME-image.png,
NAME-residual.png, NAME-psf.png; and NAME-summary.json (beam, peak, rms, components, cycles,
iterations, stop reason). Without --model there was no deconvolution: the image is the
residual (the dirty image). --state (the last cycle's; required with --model) gives the
summary the cycles and iterations; the loop's stop reason is imaging.loop.decide on the
residual and that state, the same decision the last ``next`` job made.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from htclean.executables.deconvolve import read_psf, read_state
from htclean.executables.record import Job, job_parser, run_job
from htclean.imaging.errors import InputError

PROG = "htclean-restore"
ASEC = math.pi / 180.0 / 3600.0


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


def _read(job: Job, path: str, what: str):
    from htclean.imaging.fits import read_fits

    image, geom, _ = read_fits(job.read(path, what), np.float32)  # as stored: half the memory
    return image, geom


def loop_decision(job: Job, residual: str, state: str | None):
    """The loop's last decision (imaging.loop.Decision), as ``htclean-next`` made it from the
    residual and the state of the last cycle (cycle 0 without a state)."""
    from htclean.executables.next import loop_state
    from htclean.imaging.loop import LoopLimits, decide

    cycle = read_state(job.read(state, "--state"))["cycle"] if state else 0
    args = argparse.Namespace(cycle=cycle, residual=residual, state=state)
    return decide(loop_state(job, args), LoopLimits.from_settings(job.settings))


def _stats(image: np.ndarray) -> dict[str, float]:
    from htclean.imaging.noise import robust_sigma

    return {"peak": float(image.max()), "min": float(image.min()),
            "rms": float(np.sqrt(np.mean(np.square(image), dtype=np.float64))),
            "robust_sigma": float(robust_sigma(image))}


def work(args: argparse.Namespace, job: Job) -> None:
    from htclean.imaging.beam import fit_clean_beam
    from htclean.imaging.components import ComponentList
    from htclean.imaging.cpus import planned_threads
    from htclean.imaging.fits import write_fits
    from htclean.imaging.geometry import crop_centre
    from htclean.imaging.preview import write_preview
    from htclean.imaging.restore import restore

    name = args.name
    if not name or "/" in name:
        raise InputError(f"--name: {name!r} must be a plain file-name prefix")
    if job.settings["deconvolution"]["nterms"] > 1:  # multi-term MFS: its own module
        from htclean.executables import restore_mtmfs

        return restore_mtmfs.work(args, job)
    residual, geom = _read(job, args.residual, "--residual")
    dirty, dirty_geom = _read(job, args.dirty, "--dirty")
    g = dirty_geom
    if (g.nx, g.ny, g.cell, g.ra, g.dec) != (geom.nx, geom.ny, geom.cell, geom.ra, geom.dec):
        raise InputError("--dirty: its pixel grid differs from the residual's")
    psf_full, psf_geom = read_psf(job, args.psf, geom)
    if args.model is not None:
        components = ComponentList.read(job.read(args.model, "--model"))
        if (components.nx, components.ny) != (geom.nx, geom.ny):
            raise InputError(f"--model: {args.model} is for a {components.nx}x{components.ny} "
                             f"image, the residual is {geom.nx}x{geom.ny}")
    else:
        components = ComponentList.empty(geom.nx, geom.ny)
    if (args.model is None) != (args.state is None):
        raise InputError("--model and --state go together (the last cycle's outputs)")
    state = read_state(job.read(args.state, "--state")) if args.state else None
    decision = loop_decision(job, args.residual, args.state)

    beam = fit_clean_beam(psf_full, geom.cell)
    psf = crop_centre(psf_full, geom.shape)
    del psf_full  # 4x the image: not kept while the products are made
    psf_geom = replace(psf_geom, nx=geom.nx, ny=geom.ny)
    image = restore(components, residual, beam, geom.cell, dtype=np.float32,
                    threads=planned_threads(job.settings))
    history = [f"htclean-restore: {len(components)} components, "
               f"{components.total_flux:.6g} Jy"]
    out = Path(".")
    fits_products = [("image", image, geom, "Jy/beam"),
                     ("model", components.to_image(np.float32), geom, "Jy/pixel"),
                     ("residual", residual, geom, "Jy/beam"),
                     ("psf", psf, psf_geom, "Jy/beam"),
                     ("dirty", dirty, dirty_geom, "Jy/beam")]
    for kind, data, g, bunit in fits_products:
        path = out / f"{name}-{kind}.fits"
        write_fits(path, data, g, beam=beam, bunit=bunit, history=history)
        job.output(path)
    stats = {"image": _stats(image), "residual": _stats(residual)}  # the robust sigma once
    for kind, data, title, unit in (("image", image, "restored image", "Jy/beam"),
                                    ("residual", residual, "residual", "Jy/beam"),
                                    ("psf", psf, "PSF", "")):  # the PSF has peak 1, no unit
        path = out / f"{name}-{kind}.png"
        write_preview(path, data, geom, title=f"{name}: {title}", bunit=unit, beam=beam,
                      label="PSF (peak 1)" if kind == "psf" else None, noise=kind != "psf",
                      sigma=stats[kind]["robust_sigma"] if kind in stats else None)
        job.output(path)
    summary = {
        "name": name,
        "beam": {"bmaj_asec": beam.bmaj / ASEC, "bmin_asec": beam.bmin / ASEC,
                 "bpa_deg": float(beam.bpa)},
        "image": stats["image"], "residual": stats["residual"],
        "components": len(components), "flux": components.total_flux,
        "cycles": int(state["cycle"]) if state else 0,
        "iterations": int(state["iterations_total"]) if state else 0,
        "stop_reason": decision.reason, "threshold": decision.threshold,
        "minor_stop_reason": state["stop_reason"] if state else None,
        "geometry": {"nx": geom.nx, "ny": geom.ny, "cell_asec": geom.cell / ASEC,
                     "ra_deg": math.degrees(geom.ra), "dec_deg": math.degrees(geom.dec),
                     "freq_hz": geom.freq, "bandwidth_hz": geom.bandwidth},
        "products": [f"{name}-{k}.fits" for k, *_ in fits_products]
        + [f"{name}-{k}.png" for k in ("image", "residual", "psf")],
    }
    if job.settings["image"]["primary_beam"]:  # NAME-pb.fits, NAME-image-pb.fits
        from htclean.executables.restore_mtmfs import pb_products

        summary["products"] += pb_products(job, name, args.psf, geom, beam, {"image": image})
    job.write_json(out / f"{name}-summary.json", summary)


def main(argv: list[str] | None = None) -> int:
    return run_job(PROG, build_parser(), work, argv)


if __name__ == "__main__":
    sys.exit(main())

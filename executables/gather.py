"""htclean-gather: sum partial images; at the root of a tree, normalise and write FITS.

    htclean-gather --config R-config.yml --record R-JOB.record.json --inputs A.npz B.npz ...
                   (--output G.npz | [--psf-fits R-psf.fits] --image-fits F.fits)

The inputs are partials (imaging.ms.partials.save_partial) of one kind: densities (the weights
tree), PSF + dirty (the image tree) or residuals. They are summed in float64 and must agree on
the pixel grid (size, cell, centre; the band is the union of theirs), the kind and the shape
of every image; the PSF is ``image.psf_oversize`` x the image (imaging.geometry.psf_shape).
An inner level writes the sum as a partial (``--output``); empty partials (the residual
jobs of a cycle the loop stopped before: imaging.ms.partials.skipped) sum to one, and a root
refuses them. The root divides by the total
weight sum and writes FITS (imaging.fits.write_fits): ``--image-fits`` gets the dirty or the
residual image, ``--psf-fits`` the PSF at its own size (image tree only; same cell and
centre, CRPIX = psf_n/2 + 1). Partials of Taylor terms (``dirty-ttN``, ``psf-ttN``,
``residual-ttN``: deconvolution.nterms > 1) are written as one file of terms each
(imaging.fits.write_terms), with the channel weights in R-psf.fits where they carry them.
"""

from __future__ import annotations

import argparse
import math
import sys

from htclean.executables.record import Job, job_parser, run_job
from htclean.imaging.errors import InputError

PROG = "htclean-gather"


def build_parser() -> argparse.ArgumentParser:
    parser = job_parser(PROG, __doc__)
    parser.add_argument("--inputs", required=True, nargs="+", metavar="IN.npz",
                        help="partials to sum (.npz from htclean-grid or an inner gather)")
    parser.add_argument("--output", metavar="G.npz", help="inner level: write the sum here")
    parser.add_argument("--image-fits", metavar="F.fits",
                        help="root: the normalised dirty or residual image")
    parser.add_argument("--psf-fits", metavar="R-psf.fits",
                        help="root of the image tree: the normalised PSF")
    return parser


def sum_partials(job: Job, paths: list[str]):
    """The float64 sum of the partials in ``paths``; InputError when one is not a partial or
    they disagree in kind or pixel grid."""
    from htclean.imaging.ms import partials

    total = None
    first = None
    for path in paths:
        p = partials.load_partial(job.read(path, "--inputs"))
        if total is not None and partials.is_skipped(p) != partials.is_skipped(total):
            # the loop stopped before this cycle: every input is empty, or none is
            empty, full = (first, path) if partials.is_skipped(total) else (path, first)
            raise InputError(f"--inputs: {empty} is an empty partial (the loop stopped), "
                             f"{full} is not")
        if total is None:
            if p.geom is None and not partials.is_skipped(p):
                raise InputError(f"--inputs: {path} carries no image geometry")
            total, first = p, path
            continue
        if partials.is_skipped(p):  # all empty (checked above): one passes on
            continue
        if p.geom is None:
            raise InputError(f"--inputs: {path} carries no image geometry")
        if set(p.images) != set(total.images):
            raise InputError(f"--inputs: {path} holds {sorted(p.images)}, {first} holds "
                             f"{sorted(total.images)}")
        for name, image in p.images.items():
            if image.shape != total.images[name].shape:
                raise InputError(f"--inputs: {path} has a {name} image of shape "
                                 f"{image.shape}, {first} of {total.images[name].shape}")
        grid = (p.geom.nx, p.geom.ny, p.geom.cell, p.geom.ra, p.geom.dec)
        grid0 = (total.geom.nx, total.geom.ny, total.geom.cell, total.geom.ra, total.geom.dec)
        if grid != grid0:
            raise InputError(f"--inputs: {path} has geometry (nx, ny, cell, ra, dec) = {grid}, "
                             f"{first} has {grid0}")
        total = total + p
    return total


def check_config(job: Job, total) -> None:
    """InputError unless the summed partials have the configured size, cell and PSF size."""
    from htclean.imaging.ms import partials

    if partials.is_skipped(total):
        raise InputError(f"--inputs: empty partials (the loop stopped: "
                         f"{total.meta['skipped']}), no image to write")
    image = job.settings["image"]
    want = (image["nx"], image["ny"])
    if (total.geom.nx, total.geom.ny) != want:
        raise InputError(f"--inputs: the partials are {total.geom.nx}x{total.geom.ny} pixels, "
                         f"the configuration says {want[0]}x{want[1]}")
    if not math.isclose(total.geom.cell, image["cell"], rel_tol=1e-9):
        raise InputError(f"--inputs: the partials have a cell of {total.geom.cell!r} rad, the "
                         f"configuration says {image['cell']!r}")
    psf_name = next((n for n in ("psf", "psf-tt0") if n in total.images), None)
    if psf_name is not None:
        from htclean.imaging.geometry import psf_shape

        pnx, pny = psf_shape(want[0], want[1], image["psf_oversize"])
        got = total.images[psf_name].shape
        if got != (pny, pnx):
            raise InputError(f"--inputs: the PSF partials are {got[1]}x{got[0]} pixels, "
                             f"image.psf_oversize {image['psf_oversize']:g} needs {pnx}x{pny}")


def work(args: argparse.Namespace, job: Job) -> None:
    if (args.output is None) == (args.image_fits is None):
        raise InputError("give either --output (inner level) or --image-fits (root)")
    if args.output is not None and args.psf_fits is not None:
        raise InputError("--psf-fits: only at the root (with --image-fits), not with --output")
    from htclean.imaging.ms import partials

    total = sum_partials(job, args.inputs)
    if args.output is None or not partials.is_skipped(total):  # empty ones pass on
        check_config(job, total)
    job.visibilities = total.visibilities
    if args.output is not None:
        partials.save_partial(args.output, total)
        job.output(args.output)
        return
    write_root(job, total, args.image_fits, args.psf_fits, len(args.inputs))


def write_root(job: Job, total, image_fits: str, psf_fits: str | None, ninputs: int) -> None:
    """Normalise ``total`` by its weight sum and write the FITS images: every Taylor term of
    each (imaging.fits.write_terms, with the reference frequency where nterms > 1 and the
    channel weights in R-psf.fits where the partials carry them), or, for one term without
    channel weights, the image alone (imaging.fits.write_fits: no NTERMS card)."""
    from htclean.imaging import fits
    from htclean.imaging.geometry import psf_geometry
    from htclean.imaging.ms import partials

    kinds = {n.rsplit("-tt", 1)[0] for n in total.images}
    if kinds == {"psf", "dirty"}:
        if psf_fits is None:
            raise InputError("--psf-fits: the image tree's root writes the PSF too")
        targets = [("psf", psf_fits), ("dirty", image_fits)]
    elif kinds == {"residual"}:
        if psf_fits is not None:
            raise InputError("--psf-fits: the residual tree has no PSF")
        targets = [("residual", image_fits)]
    else:
        raise InputError(f"--image-fits: partials of {sorted(total.images)} are not images "
                         "(a density sum is written with --output)")
    normalised = partials.Partial(partials.normalise(total), total.weight_sum)
    nterms = int(total.meta.get("nterms", 1))
    taylor = nterms > 1 or "channel_weights" in total.meta  # a file of Taylor terms
    history = [f"htclean-gather: {ninputs} inputs, {total.visibilities} visibilities",
               f"sum of weights {total.weight_sum!r}"]
    oversize = job.settings["image"]["psf_oversize"]
    for kind, path in targets:
        geom = psf_geometry(total.geom, oversize) if kind == "psf" else total.geom
        terms = partials.stacked(normalised, kind)
        if taylor:
            channels = total.meta.get("channel_weights") if kind == "psf" else None
            fits.write_terms(path, list(terms), geom,
                             ref_freq=total.meta.get("ref_freq") if nterms > 1 else None,
                             channel_weights=channels,
                             history=[f"{kind} Taylor terms", *history])
        else:
            fits.write_fits(path, terms[0], geom, history=[f"{kind} image", *history])
        job.output(path)


def main(argv: list[str] | None = None) -> int:
    return run_job(PROG, build_parser(), work, argv)


if __name__ == "__main__":
    sys.exit(main())

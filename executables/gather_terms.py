"""The gather root of multi-term (or primary-beam) partials: stacked Taylor terms to FITS.

Called by ``gather.write_root`` when the partials hold ``dirty-ttN``/``psf-ttN`` (the image
tree) or ``residual-ttN`` (a residual tree) images (imaging/parts_taylor.py). Each file holds
its terms as imaging/fits_terms.py describes, with the Taylor reference frequency and, in
R-psf.fits, the imaging weights summed per channel (for the primary beam).
"""

from __future__ import annotations

from htclean.executables.record import Job
from htclean.imaging.errors import InputError


def write_terms_root(job: Job, total, image_fits: str, psf_fits: str | None,
                     ninputs: int) -> None:
    """Normalise ``total`` and write ``image_fits`` (dirty or residual terms) and, for the
    image tree, ``psf_fits`` (the 2 nterms - 1 PSF terms and the channel weights)."""
    from htclean.imaging import parts
    from htclean.imaging.fits_terms import write_terms
    from htclean.imaging.geometry import psf_geometry
    from htclean.imaging.parts_taylor import stacked

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
        raise InputError(f"--image-fits: partials of {sorted(total.images)} are not Taylor "
                         "images")
    normalised = parts.Partial(parts.normalise(total), total.weight_sum)
    nterms = int(total.meta.get("nterms", 1))
    ref = total.meta.get("ref_freq") if nterms > 1 else None
    history = [f"htclean-gather: {ninputs} inputs, {total.visibilities} visibilities",
               f"sum of weights {total.weight_sum!r}"]
    oversize = job.settings["image"]["psf_oversize"]
    for kind, path in targets:
        geom = psf_geometry(total.geom, oversize) if kind == "psf" else total.geom
        terms = stacked(normalised, kind)
        channels = total.meta.get("channel_weights") if kind == "psf" else None
        write_terms(path, list(terms), geom, ref_freq=ref, channel_weights=channels,
                    history=[f"{kind} Taylor terms", *history])
        job.output(path)

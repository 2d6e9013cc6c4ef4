"""Stacks of Taylor-term images in one FITS file, as the jobs of a multi-term run pass them.

Where ``deconvolution.nterms`` > 1 (or the primary beam is on) the gather root writes the PSF,
dirty and residual files of the run (R-psf.fits, R-dirty.fits, R-residual-cKK.fits) with one
image per Taylor term: term 0 in the primary HDU, exactly as ``fits.write_fits`` writes an
nterms-1 image (so ``fits.read_fits`` reads tt0, and the loop's decision on max |R0| needs
nothing else), terms 1 .. in image extensions ``TT1``, ``TT2`` ... with the same header, and,
where the partials carried them, the imaging weights summed per channel in a binary table
``CHANWGT`` (FREQ Hz, WEIGHT): what the band-averaged primary beam is weighted with. NTERMS
and REFFREQ (the Taylor reference frequency, Hz) are in the primary header. These files stay
inside the workflow; the products follow WSClean's names (restore_mtmfs.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from htclean.imaging.errors import InputError
from htclean.imaging.fits import header_for, read_fits
from htclean.imaging.geometry import ImageGeometry

CHANNELS = "CHANWGT"


def write_terms(path: str | os.PathLike, terms: Sequence[np.ndarray], geom: ImageGeometry, *,
                ref_freq: float | None, channel_weights: Iterable[Sequence[float]] | None = None,
                history: Iterable[str] = ()) -> None:
    """Write the images ``terms`` (each (ny, nx)) atomically; ``ref_freq`` None for nterms 1
    images that only carry channel weights."""
    from astropy.io import fits

    header = header_for(geom, history=history)
    header["NTERMS"] = (len(terms), "Taylor terms in this file (TT1.. in extensions)")
    if ref_freq is not None:
        header["REFFREQ"] = (float(ref_freq), "Taylor reference frequency (Hz)")
    hdus: list[Any] = []
    for t, image in enumerate(terms):
        image = np.asarray(image)
        if image.shape != geom.shape:
            raise InputError(f"term {t} has shape {image.shape}, the geometry says "
                             f"{geom.shape}")
        data = image.astype(np.float32)[None, None]
        hdus.append(fits.PrimaryHDU(data, header) if t == 0 else
                    fits.ImageHDU(data, header, name=f"TT{t}"))
    if channel_weights is not None:
        table = np.asarray(list(channel_weights), np.float64).reshape(-1, 2)
        hdus.append(fits.BinTableHDU.from_columns(
            [fits.Column("FREQ", "D", "Hz", array=table[:, 0]),
             fits.Column("WEIGHT", "D", array=table[:, 1])], name=CHANNELS))
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fits.HDUList(hdus).writeto(tmp, overwrite=True, output_verify="exception")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def read_terms(path: str | os.PathLike, nterms: int | None = None
               ) -> tuple[np.ndarray, ImageGeometry, Any]:
    """(terms (n, ny, nx) float64, geometry, primary header) of a file written by
    ``write_terms`` (or by ``fits.write_fits``: one term); InputError unless it holds
    ``nterms`` terms when given."""
    from astropy.io import fits

    first, geom, header = read_fits(path)
    n = int(header.get("NTERMS", 1))
    if nterms is not None and n != nterms:
        raise InputError(f"{path}: holds {n} Taylor terms, {nterms} expected "
                         "(deconvolution.nterms)")
    stack = [first]
    try:
        with fits.open(path, memmap=False) as hdul:
            for t in range(1, n):
                stack.append(np.asarray(hdul[f"TT{t}"].data, np.float64).reshape(first.shape))
    except (KeyError, OSError, ValueError) as exc:
        raise InputError(f"{path}: Taylor term images missing or unreadable: {exc}") from None
    return np.stack(stack), geom, header


def read_channel_weights(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies Hz, weight sums) of the ``CHANWGT`` table; InputError when absent."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdul:
            table = hdul[CHANNELS].data
            return (np.asarray(table["FREQ"], np.float64),
                    np.asarray(table["WEIGHT"], np.float64))
    except (KeyError, OSError, ValueError) as exc:
        raise InputError(f"{path}: no per-channel weights (the {CHANNELS} table): {exc}; "
                         "was it made with image.primary_beam on?") from None


def reference_frequency(header: Any, path: str) -> float:
    """REFFREQ of a Taylor file's header; InputError naming ``path`` when it has none."""
    if "REFFREQ" not in header:
        raise InputError(f"{path}: no REFFREQ (Taylor reference frequency) in its header")
    return float(header["REFFREQ"])

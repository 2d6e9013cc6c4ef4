"""FITS images as CASA and WSClean write them, so CARTA/DS9 and pixel comparisons just work.

Data shape (1, 1, ny, nx) float32; axes RA---SIN (CDELT1 = -cell deg), DEC--SIN (CDELT2 =
+cell deg), FREQ (Hz), STOKES (I = 1); CRPIX1/2 = N/2 + 1 (the image centre at 0-based pixel
N/2), CRVAL1/2 the image centre in degrees. BMAJ/BMIN/BPA in degrees when a beam is given.
No RESTFRQ: a continuum image has no rest frequency (viewers do not need one).

One file holds the Taylor terms of an image (``write_terms``; an nterms-1 image is one term):
term 0 in the primary HDU, exactly as ``write_fits`` writes an image (so ``read_fits`` reads
tt0, and the loop's decision on max |R0| needs nothing else), terms 1 .. in image extensions
``TT1``, ``TT2`` ... with the same header, and, where the partials carried them, the imaging
weights summed per channel in a binary table ``CHANWGT`` (FREQ Hz, WEIGHT): what the
band-averaged primary beam is weighted with. NTERMS and REFFREQ (the Taylor reference
frequency, Hz) are in its primary header; ``write_fits`` writes one image without them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from htclean.imaging.errors import InputError
from htclean.imaging.geometry import ImageGeometry

ORIGIN = "htclean"
CHANNELS = "CHANWGT"


def _beam_deg(beam: Any) -> tuple[float, float, float]:
    """(bmaj, bmin, bpa) in degrees from a Beam (bmaj, bmin radians; bpa degrees) or a tuple."""
    bmaj, bmin, bpa = (beam.bmaj, beam.bmin, beam.bpa) if hasattr(beam, "bmaj") else beam
    return math.degrees(bmaj), math.degrees(bmin), float(bpa)


def header_for(geom: ImageGeometry, *, beam: Any = None, bunit: str = "Jy/beam",
               history: Iterable[str] = ()):
    """The astropy Header of an image with this geometry."""
    from astropy.io import fits

    h = fits.Header()
    h["BUNIT"] = (bunit, "brightness unit")
    if beam is not None:
        bmaj, bmin, bpa = _beam_deg(beam)
        h["BMAJ"] = (bmaj, "clean beam major axis FWHM (deg)")
        h["BMIN"] = (bmin, "clean beam minor axis FWHM (deg)")
        h["BPA"] = (bpa, "clean beam position angle (deg, N through E)")
    cell = math.degrees(geom.cell)
    axes = (("RA---SIN", geom.nx / 2 + 1, math.degrees(geom.ra) % 360.0, -cell, "deg"),
            ("DEC--SIN", geom.ny / 2 + 1, math.degrees(geom.dec), cell, "deg"),
            ("FREQ", 1.0, geom.freq, geom.bandwidth or 1.0, "Hz"),
            ("STOKES", 1.0, 1.0, 1.0, ""))
    for i, (ctype, crpix, crval, cdelt, cunit) in enumerate(axes, start=1):
        h[f"CTYPE{i}"] = ctype
        h[f"CRPIX{i}"] = crpix
        h[f"CRVAL{i}"] = crval
        h[f"CDELT{i}"] = cdelt
        if cunit:
            h[f"CUNIT{i}"] = cunit
    h["RADESYS"] = geom.frame
    if geom.frame == "FK5":
        h["EQUINOX"] = 2000.0
    h["LONPOLE"] = 180.0
    h["LATPOLE"] = math.degrees(geom.dec)
    h["SPECSYS"] = "TOPOCENT"
    if geom.date_obs:
        from astropy.time import Time

        h["DATE-OBS"] = geom.date_obs
        h["MJD-OBS"] = Time(geom.date_obs, format="isot", scale="utc").mjd
    if geom.telescope:
        h["TELESCOP"] = geom.telescope
    h["ORIGIN"] = ORIGIN
    for line in history:
        h.add_history(str(line))
    return h


def write_fits(path: str | os.PathLike, image: np.ndarray, geom: ImageGeometry, *,
               beam: Any = None, bunit: str = "Jy/beam", history: Iterable[str] = ()) -> None:
    """Write ``image`` (ny, nx), FITS orientation, atomically as a (1, 1, ny, nx) float32 FITS
    file. beam: a Beam (bmaj, bmin in radians, bpa in degrees) or None."""
    _write(path, [image], geom, header_for(geom, beam=beam, bunit=bunit, history=history))


def write_terms(path: str | os.PathLike, terms: Sequence[np.ndarray], geom: ImageGeometry, *,
                ref_freq: float | None, channel_weights: Iterable[Sequence[float]] | None = None,
                history: Iterable[str] = ()) -> None:
    """Write the Taylor images ``terms`` (each (ny, nx)) atomically with NTERMS (module
    docstring); ``ref_freq`` None for images of one term that only carry channel weights."""
    header = header_for(geom, history=history)
    header["NTERMS"] = (len(terms), "Taylor terms in this file (TT1.. in extensions)")
    if ref_freq is not None:
        header["REFFREQ"] = (float(ref_freq), "Taylor reference frequency (Hz)")
    _write(path, terms, geom, header, channel_weights)


def _write(path: str | os.PathLike, terms: Sequence[np.ndarray], geom: ImageGeometry,
           header: Any, channel_weights: Iterable[Sequence[float]] | None = None) -> None:
    """The images ``terms`` (primary HDU, then TT1 ..) and the CHANWGT table, atomically."""
    from astropy.io import fits

    hdus: list[Any] = []
    for t, image in enumerate(terms):
        image = np.asarray(image)
        if image.shape != geom.shape:
            what = "image" if len(terms) == 1 else f"term {t}"
            raise InputError(f"{what} has shape {image.shape}, the geometry says {geom.shape}")
        data = image.astype(np.float32)[None, None]
        hdus.append(fits.PrimaryHDU(data, header) if t == 0 else
                    fits.ImageHDU(data, header, name=f"TT{t}"))
    if channel_weights is not None:
        table = np.asarray(list(channel_weights), np.float64).reshape(-1, 2)
        hdus.append(fits.BinTableHDU.from_columns(
            [fits.Column("FREQ", "D", "Hz", array=table[:, 0]),
             fits.Column("WEIGHT", "D", array=table[:, 1])], name=CHANNELS))
    write_hdus_atomic(hdus, path)


def write_hdus_atomic(hdus: list, path: str | os.PathLike) -> None:
    """Write ``hdus`` to ``path`` through a temporary name and a rename (never half a file)."""
    from astropy.io import fits

    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fits.HDUList(hdus).writeto(tmp, overwrite=True, output_verify="exception")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _native(data: Any, dtype: Any) -> np.ndarray:
    """``data`` as a native-endian ``dtype`` array; FITS's big-endian floats of that size are
    byte-swapped in place (no second copy of a large image)."""
    if isinstance(data, np.ndarray) and data.dtype.kind == "f" and not data.dtype.isnative \
            and data.dtype.itemsize == np.dtype(dtype).itemsize and data.flags.writeable:
        data = data.byteswap(inplace=True).view(data.dtype.newbyteorder("="))
    return np.asarray(data, dtype)


def read_fits(path: str | os.PathLike, dtype: Any = np.float64,
              ) -> tuple[np.ndarray, ImageGeometry, Any]:
    """(image (ny, nx) of ``dtype``, geometry, astropy Header) of a FITS image written by
    ``write_fits`` (or any RA---SIN/DEC--SIN image with square pixels, CDELT1 < 0).
    ``write_fits`` stores float32: ``dtype=np.float32`` reads it exactly in half the memory."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdul:
            h = hdul[0].header.copy()
            data = _native(hdul[0].data, dtype)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not a readable FITS file: {exc}") from None
    if h.get("CTYPE1") != "RA---SIN" or h.get("CTYPE2") != "DEC--SIN":
        raise InputError(f"{path}: expected RA---SIN / DEC--SIN axes, got "
                         f"{h.get('CTYPE1')!r} / {h.get('CTYPE2')!r}")
    nx, ny = int(h["NAXIS1"]), int(h["NAXIS2"])
    if data.size != nx * ny:
        raise InputError(f"{path}: expected one {nx}x{ny} plane, got data of shape {data.shape}")
    cdelt1, cdelt2 = float(h["CDELT1"]), float(h["CDELT2"])
    if not (cdelt1 < 0 < cdelt2 and math.isclose(-cdelt1, cdelt2, rel_tol=1e-9)):
        raise InputError(f"{path}: expected square pixels with CDELT1 < 0 < CDELT2, got "
                         f"{cdelt1}, {cdelt2}")
    if (float(h["CRPIX1"]), float(h["CRPIX2"])) != (nx / 2 + 1, ny / 2 + 1):
        raise InputError(f"{path}: the reference pixel must be the image centre (N/2 + 1)")
    freq, bandwidth = 1.0, 0.0
    for i in range(3, int(h.get("NAXIS", 2)) + 1):
        if h.get(f"CTYPE{i}") == "FREQ":
            freq = float(h[f"CRVAL{i}"])
            bandwidth = abs(float(h.get(f"CDELT{i}", 0.0)))
    geom = ImageGeometry(nx=nx, ny=ny, cell=math.radians(cdelt2),
                         ra=math.radians(float(h["CRVAL1"])),
                         dec=math.radians(float(h["CRVAL2"])), freq=freq, bandwidth=bandwidth,
                         date_obs=h.get("DATE-OBS"), telescope=h.get("TELESCOP"),
                         frame=str(h.get("RADESYS", "FK5")))
    return data.reshape(ny, nx), geom, h


def read_terms(path: str | os.PathLike, nterms: int | None = None, dtype: Any = np.float64
               ) -> tuple[np.ndarray, ImageGeometry, Any]:
    """(terms (n, ny, nx) of ``dtype``, geometry, primary header) of a file written by
    ``write_terms`` (or ``write_fits``: one term); InputError unless it holds ``nterms``
    terms when given. One term is read as ``read_fits`` reads it (a view, no copy)."""
    from astropy.io import fits

    first, geom, header = read_fits(path, dtype)
    n = int(header.get("NTERMS", 1))
    if nterms is not None and n != nterms:
        raise InputError(f"{path}: holds {n} Taylor terms, {nterms} expected "
                         "(deconvolution.nterms)")
    if n == 1:
        return first[None], geom, header
    stack = [first]
    try:
        with fits.open(path, memmap=False) as hdul:
            for t in range(1, n):
                stack.append(np.asarray(hdul[f"TT{t}"].data, dtype).reshape(first.shape))
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

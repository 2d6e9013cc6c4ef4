"""FITS cubes as CASA writes them: RA---SIN, DEC--SIN, FREQ, STOKES, per-plane beams.

Data shape (1, nchan, ny, nx) float32 (numpy order of FITS axes 4..1); the sky axes exactly
as ``fits.header_for`` writes an image. The FREQ axis is linear (CRPIX3 = 1, CRVAL3 = the
first channel's frequency, CDELT3 = the channel spacing, negative for descending channels),
so the channels must be regularly spaced (to 1e-6 of a channel); a one-channel cube's CDELT3
is the given width. SPECSYS is the MS spectral window's frame (MEAS_FREQ_REF, named as
casacore's FITS writer names it: ``frame_to_specsys``), RESTFRQ (Hz) when a rest frequency
is given, so CARTA and DS9 can show velocity.

Beams: one beam for every plane goes in BMAJ/BMIN/BPA (degrees) of the primary header; a
beam per plane goes, as casacore's ImageFITSConverter writes it, in a binary table ``BEAMS``
(EXTVER 1; columns BMAJ, BMIN float32 arcsec, BPA float32 deg, CHAN, POL int32; keywords NCHAN,
NPOL; one row per channel, POL 0) with ``CASAMBM = T`` in the primary header and no BMAJ
there. A channel without a beam (nothing to fit, e.g. fully flagged) is a row of zeros.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from htclean.imaging.beams.beam import Beam
from htclean.imaging.errors import InputError
from htclean.imaging.fits import _native, header_for, write_hdus_atomic
from htclean.imaging.geometry import ImageGeometry

BEAMS = "BEAMS"
# casacore MFrequency::Types (the MS's MEAS_FREQ_REF) -> FITS SPECSYS, as casacore writes it
SPECSYS = {0: "SOURCE", 1: "LSRK", 2: "LSRD", 3: "BARYCENT", 4: "GEOCENTR", 5: "TOPOCENT",
           6: "GALACTOC", 7: "LOCALGRP", 8: "CMBDIPOL"}
ASEC_PER_RAD = 180 / math.pi * 3600


@dataclass(frozen=True)
class Cube:
    """What ``read_cube`` returns: data (nchan, ny, nx), freq (nchan,) Hz, geom (the sky grid;
    freq/bandwidth the cube's centre and span), specsys, rest_freq (Hz or None), beams (one
    per channel, None where the table has zeros; None when the file has no table), beam (the
    primary header's common beam or None), header (astropy)."""
    data: np.ndarray
    freq: np.ndarray
    geom: ImageGeometry
    specsys: str
    rest_freq: float | None
    beams: list[Beam | None] | None
    beam: Beam | None
    header: Any


def frame_to_specsys(meas_freq_ref: int) -> str:
    """FITS SPECSYS of a casacore frequency frame code (MEAS_FREQ_REF): 0 REST -> SOURCE,
    1 LSRK, 2 LSRD, 3 BARY -> BARYCENT, 4 GEO -> GEOCENTR, 5 TOPO -> TOPOCENT, 6 GALACTO ->
    GALACTOC, 7 LGROUP -> LOCALGRP, 8 CMB -> CMBDIPOL. InputError for any other code."""
    try:
        return SPECSYS[int(meas_freq_ref)]
    except (KeyError, TypeError, ValueError):
        raise InputError(f"unknown spectral frame MEAS_FREQ_REF {meas_freq_ref!r} "
                         f"(known: {', '.join(f'{k} {v}' for k, v in SPECSYS.items())})"
                         ) from None


def ms_specsys(ms: str | os.PathLike, ddid: int = 0) -> str:
    """SPECSYS of the spectral window of DATA_DESC_ID ``ddid`` of ``ms``."""
    import casacore.tables as ct

    path = os.fspath(ms)
    try:
        with ct.table(f"{path}/DATA_DESCRIPTION", ack=False) as dd, \
                ct.table(f"{path}/SPECTRAL_WINDOW", ack=False) as sw:
            if not 0 <= ddid < dd.nrows():
                raise InputError(f"{path} has no DATA_DESC_ID {ddid} ({dd.nrows()} rows)")
            return frame_to_specsys(sw.getcell("MEAS_FREQ_REF", int(dd.getcell("SPECTRAL_WINDOW_ID",
                                                                        ddid))))
    except RuntimeError as exc:
        raise InputError(f"cannot read the spectral window of {path}: "
                         f"{str(exc).splitlines()[0]}") from None


def spectral_axis(freq: np.ndarray, width: float | None = None) -> tuple[float, float]:
    """(CRVAL3, CDELT3) Hz of channels ``freq`` (CRPIX3 = 1); InputError unless regular."""
    f = np.asarray(freq, dtype=np.float64)
    if f.ndim != 1 or f.size == 0 or not np.all(np.isfinite(f)) or np.any(f <= 0):
        raise InputError(f"a cube needs positive finite channel frequencies, got {f!r}")
    if f.size == 1:
        if width is None or not (math.isfinite(width) and width != 0):
            raise InputError("a one-channel cube needs its channel width (Hz)")
        return float(f[0]), float(width)
    step = (f[-1] - f[0]) / (f.size - 1)
    if step == 0 or np.max(np.abs(np.diff(f) - step)) > 1e-6 * abs(step):
        raise InputError("the channel frequencies are not regularly spaced: a FITS cube's "
                         "FREQ axis is linear")
    return float(f[0]), float(step)


def _beam_row(beam: Beam | None) -> tuple[float, float, float]:
    if beam is None:
        return 0.0, 0.0, 0.0
    return beam.bmaj * ASEC_PER_RAD, beam.bmin * ASEC_PER_RAD, float(beam.bpa)


def cube_header(geom: ImageGeometry, freq: np.ndarray, *, specsys: str = "TOPOCENT",
                rest_freq: float | None = None, width: float | None = None,
                beam: Beam | None = None, per_plane: bool = False, bunit: str = "Jy/beam",
                history: Iterable[str] = ()) -> Any:
    """The primary header of a cube (module docstring); ``per_plane`` sets CASAMBM."""
    crval, cdelt = spectral_axis(freq, width)
    if specsys not in SPECSYS.values():
        raise InputError(f"unknown SPECSYS {specsys!r}; one of {', '.join(SPECSYS.values())}")
    h = header_for(geom, beam=beam, bunit=bunit, history=history)
    h["CRPIX3"], h["CRVAL3"], h["CDELT3"] = 1.0, crval, cdelt
    h["SPECSYS"] = (specsys, "spectral reference frame")
    if rest_freq is not None:
        if not (math.isfinite(rest_freq) and rest_freq > 0):
            raise InputError(f"image.rest_frequency must be > 0 Hz, got {rest_freq!r}")
        h["RESTFRQ"] = (float(rest_freq), "rest frequency (Hz)")
    if per_plane:
        h["CASAMBM"] = (True, "CASA multiple BEAMS table present")
    return h


def write_cube(path: str | os.PathLike, cube: np.ndarray, geom: ImageGeometry,
               freq: np.ndarray, *, specsys: str = "TOPOCENT", rest_freq: float | None = None,
               beams: Beam | Sequence[Beam | None] | None = None, width: float | None = None,
               bunit: str = "Jy/beam", history: Iterable[str] = ()) -> None:
    """Write ``cube`` (nchan, ny, nx) Jy/beam, FITS orientation per plane, atomically as a
    (1, nchan, ny, nx) float32 cube with channel frequencies ``freq`` (nchan,) Hz (regular;
    ``width`` Hz for one channel). beams: one Beam (header keywords), a sequence of nchan
    Beam/None (the BEAMS table), or None."""
    from astropy.io import fits

    data = np.asarray(cube)
    nchan = np.asarray(freq).size
    if data.ndim != 3 or data.shape != (nchan, *geom.shape):
        raise InputError(f"cube has shape {data.shape}, expected ({nchan}, {geom.ny}, "
                         f"{geom.nx}) for {nchan} channels and the geometry")
    per_plane = beams is not None and not isinstance(beams, Beam)
    if per_plane and len(beams) != nchan:
        raise InputError(f"{len(beams)} beams for {nchan} channels")
    header = cube_header(geom, freq, specsys=specsys, rest_freq=rest_freq, width=width,
                         beam=beams if isinstance(beams, Beam) else None,
                         per_plane=per_plane, bunit=bunit, history=history)
    hdus: list[Any] = [fits.PrimaryHDU(data.astype(np.float32)[None], header)]
    if per_plane:
        rows = np.array([_beam_row(b) for b in beams], dtype=np.float64).reshape(-1, 3)
        table = fits.BinTableHDU.from_columns(
            [fits.Column("BMAJ", "1E", "arcsec", array=rows[:, 0]),
             fits.Column("BMIN", "1E", "arcsec", array=rows[:, 1]),
             fits.Column("BPA", "1E", "deg", array=rows[:, 2]),
             fits.Column("CHAN", "1J", array=np.arange(nchan, dtype=np.int32)),
             fits.Column("POL", "1J", array=np.zeros(nchan, dtype=np.int32))], name=BEAMS)
        table.header["EXTVER"] = 1
        table.header["NCHAN"] = nchan
        table.header["NPOL"] = 1
        hdus.append(table)
    write_hdus_atomic(hdus, path)


def read_beams(hdul: Any, nchan: int, path: str) -> list[Beam | None] | None:
    """The per-channel beams of an open cube's BEAMS table (POL 0), None without one."""
    if BEAMS not in hdul:
        return None
    t = hdul[BEAMS].data
    chan, pol = np.asarray(t["CHAN"]), np.asarray(t["POL"])
    beams: list[Beam | None] = [None] * nchan
    for i in np.flatnonzero(pol == 0):
        c = int(chan[i])
        if not 0 <= c < nchan:
            raise InputError(f"{path}: the {BEAMS} table names channel {c} of {nchan}")
        bmaj, bmin, bpa = float(t["BMAJ"][i]), float(t["BMIN"][i]), float(t["BPA"][i])
        if bmaj > 0 and bmin > 0:
            beams[c] = Beam(bmaj / ASEC_PER_RAD, bmin / ASEC_PER_RAD, bpa)
    return beams


def read_cube(path: str | os.PathLike, dtype: Any = np.float64) -> Cube:
    """Read a cube written by ``write_cube`` (or CASA's exportfits of a one-Stokes cube with
    this axis order and a linear FREQ axis)."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdul:
            h = hdul[0].header.copy()
            data = _native(hdul[0].data, dtype)
            nchan = int(h.get("NAXIS3", 0))
            beams = read_beams(hdul, nchan, str(path))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path} is not a readable FITS cube: {exc}") from None
    if h.get("CTYPE1") != "RA---SIN" or h.get("CTYPE2") != "DEC--SIN" \
            or h.get("CTYPE3") != "FREQ" or h.get("NAXIS") != 4 or h.get("NAXIS4") != 1:
        raise InputError(f"{path}: expected RA---SIN, DEC--SIN, FREQ and one STOKES plane")
    nx, ny = int(h["NAXIS1"]), int(h["NAXIS2"])
    freq = float(h["CRVAL3"]) + float(h["CDELT3"]) * (np.arange(nchan) + 1 - float(h["CRPIX3"]))
    cell = math.radians(float(h["CDELT2"]))
    span = abs(float(h["CDELT3"])) * nchan
    geom = ImageGeometry(nx=nx, ny=ny, cell=cell, ra=math.radians(float(h["CRVAL1"])),
                         dec=math.radians(float(h["CRVAL2"])), freq=float(np.mean(freq)),
                         bandwidth=span, date_obs=h.get("DATE-OBS"),
                         telescope=h.get("TELESCOP"), frame=str(h.get("RADESYS", "FK5")))
    beam = (Beam(math.radians(h["BMAJ"]), math.radians(h["BMIN"]), float(h["BPA"]))
            if "BMAJ" in h else None)
    rest = float(h["RESTFRQ"]) if "RESTFRQ" in h else None
    return Cube(data=data.reshape(nchan, ny, nx), freq=freq, geom=geom,
                specsys=str(h.get("SPECSYS", "TOPOCENT")), rest_freq=rest, beams=beams,
                beam=beam, header=h)

"""Image geometry and sky coordinates: pixels, direction cosines, phase-centre rotation.

Images are ``image[y, x]`` in FITS orientation: x is the RA axis with East on the left
(CDELT1 = -cell), y the Dec axis (CDELT2 = +cell), the image centre at the 0-based pixel
(nx // 2, ny // 2), projection SIN about the image centre. A pixel (x, y) has direction cosines
``l = -(x - nx // 2) * cell``, ``m = (y - ny // 2) * cell`` (radians).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from htclean.imaging.errors import InputError

C = 299792458.0  # speed of light, m/s


@dataclass(frozen=True)
class ImageGeometry:
    """Where an image lies on the sky and what it covers.

    nx, ny: pixels (even); cell: pixel size in radians; ra, dec: the image centre (radians,
    the frame in ``frame``); freq: reference (centre) frequency in Hz and bandwidth the band
    covered (Hz, 0 when unknown); date_obs: ISO start time of the observation, if known;
    telescope: TELESCOP for the FITS header, if known.
    """

    nx: int
    ny: int
    cell: float
    ra: float
    dec: float
    freq: float
    bandwidth: float = 0.0
    date_obs: str | None = None
    telescope: str | None = None
    frame: str = "FK5"

    def __post_init__(self) -> None:
        for name in ("nx", "ny"):
            n = getattr(self, name)
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2 or n % 2:
                raise InputError(f"image {name} must be an even number of pixels >= 2, got {n!r}")
        if not (math.isfinite(self.cell) and self.cell > 0):
            raise InputError(f"image cell must be a positive angle, got {self.cell!r}")
        if self.nx * self.cell / 2 >= 1 or self.ny * self.cell / 2 >= 1:
            raise InputError("the image is larger than the sky hemisphere (size x cell too big)")
        if not (math.isfinite(self.freq) and self.freq > 0):
            raise InputError(f"reference frequency must be positive, got {self.freq!r}")

    @classmethod
    def from_settings(cls, settings: dict[str, Any], ms: str) -> ImageGeometry:
        """Geometry of the configured image of ``ms``: size and cell from ``settings['image']``,
        the centre from ``image.phase_centre`` or else the field's phase centre, the band and
        date from the MS (the selected spectral window, or all of them)."""
        from htclean.imaging.ms import msread

        image, data = settings["image"], settings["data"]
        info = msread.describe(ms, field=data["field"], spw=data["spw"])
        centre = image.get("phase_centre")
        ra, dec = (centre if centre is not None else info.phase_centre)
        return cls(nx=int(image["nx"]), ny=int(image["ny"]), cell=float(image["cell"]),
                   ra=float(ra), dec=float(dec), freq=(info.freq_min + info.freq_max) / 2,
                   bandwidth=info.freq_max - info.freq_min, date_obs=info.date_obs,
                   telescope=info.telescope, frame=info.frame)

    @property
    def shape(self) -> tuple[int, int]:
        """numpy shape (ny, nx)."""
        return (self.ny, self.nx)

    def pixel_to_lm(self, x: np.ndarray | float, y: np.ndarray | float):
        """Direction cosines (l, m) of 0-based pixel positions (x, y)."""
        ell = -(np.asarray(x) - self.nx // 2) * self.cell
        return ell, (np.asarray(y) - self.ny // 2) * self.cell

    def lm_to_pixel(self, ell: np.ndarray | float, m: np.ndarray | float):
        """0-based pixel positions (x, y) of direction cosines (l, m)."""
        return self.nx // 2 - np.asarray(ell) / self.cell, self.ny // 2 + np.asarray(m) / self.cell

    def radec_to_pixel(self, ra: float, dec: float) -> tuple[float, float]:
        """0-based (x, y) of a sky position (radians), SIN projection about the centre."""
        x, y = self.lm_to_pixel(*radec_to_lm(ra, dec, self.ra, self.dec))
        return float(x), float(y)

    def union(self, other: ImageGeometry) -> ImageGeometry:
        """This geometry with the band (and earliest date) of both: what the sum of two parts'
        images covers. The pixel grids must be the same."""
        if (self.nx, self.ny, self.cell, self.ra, self.dec) != \
                (other.nx, other.ny, other.cell, other.ra, other.dec):
            raise InputError("cannot add images of different geometries "
                             f"({self.nx}x{self.ny} at ({self.ra}, {self.dec}) vs "
                             f"{other.nx}x{other.ny} at ({other.ra}, {other.dec}))")
        lo = min(self.freq - self.bandwidth / 2, other.freq - other.bandwidth / 2)
        hi = max(self.freq + self.bandwidth / 2, other.freq + other.bandwidth / 2)
        dates = [d for d in (self.date_obs, other.date_obs) if d]
        return replace(self, freq=(lo + hi) / 2, bandwidth=hi - lo,
                       date_obs=min(dates) if dates else None)


def psf_shape(nx: int, ny: int, oversize: float) -> tuple[int, int]:
    """(psf_nx, psf_ny): the image size times ``oversize``, rounded up to even numbers; the
    configuration sizes the jobs' memory and disk by the same rule."""
    return 2 * math.ceil(nx * oversize / 2), 2 * math.ceil(ny * oversize / 2)


PSF_ONE_CALL_PX = 2048 * 2048  # a PSF up to this many pixels is gridded in one call


def psf_tile(image: tuple[int, int], psf: tuple[int, int]) -> tuple[int, int] | None:
    """The tile (ny, nx) the PSF (ny, nx) of an ``image`` (ny, nx) is gridded in, or None for
    one gridder call: a PSF of at most ``PSF_ONE_CALL_PX`` pixels is gridded whole (ducc0's
    work per sample does not grow with the image, only its FFTs do: a 2048^2 PSF of 3M
    samples in one call takes half the CPU of four 1024^2 tiles, and its grids ~300 MB at
    most), a larger one in tiles of the image's size (their grids take the image's memory)."""
    if psf[0] * psf[1] <= PSF_ONE_CALL_PX:
        return None
    return image


def psf_geometry(geom: ImageGeometry, oversize: float) -> ImageGeometry:
    """The PSF's pixel grid for an image ``geom``: ``psf_shape(nx, ny, oversize)`` pixels with
    the same cell, centre, band and date, so its phase centre is pixel (pny // 2, pnx // 2).

    A PSF of twice the image size holds every offset between two image pixels, which keeps
    the minor cycle's PSF subtraction exact (docs/imaging-api.md). InputError when
    ``oversize`` is below 1 or the PSF would reach beyond the sky hemisphere.
    """
    if isinstance(oversize, bool) or not isinstance(oversize, (int, float, np.floating)) \
            or not (math.isfinite(oversize) and oversize >= 1.0):
        raise InputError(f"image.psf_oversize must be a number >= 1, got {oversize!r}")
    pnx, pny = psf_shape(geom.nx, geom.ny, float(oversize))
    if max(pnx, pny) * geom.cell / 2 >= 1:
        raise InputError(f"image.psf_oversize: a PSF of {oversize:g} x the image ({pnx}x{pny} "
                         "pixels) reaches beyond the sky hemisphere at this cell; lower "
                         "image.psf_oversize or the image size")
    return replace(geom, nx=pnx, ny=pny)


def crop_centre(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The ``shape`` (ny, nx) window of ``image`` (pny, pnx) about its centre: pixel
    (ny // 2, nx // 2) of the window is pixel (pny // 2, pnx // 2) of ``image`` (a PSF cropped
    to the image size, as CASA and WSClean write it). A contiguous copy, same dtype."""
    ny, nx = shape
    pny, pnx = np.shape(image)
    if ny > pny or nx > pnx or min(ny, nx) < 1:
        raise InputError(f"cannot crop a {pnx}x{pny} image to {nx}x{ny} pixels")
    y0, x0 = pny // 2 - ny // 2, pnx // 2 - nx // 2
    return np.ascontiguousarray(image[y0:y0 + ny, x0:x0 + nx])


def radec_to_lm(ra: float, dec: float, ra0: float, dec0: float) -> tuple[float, float]:
    """Direction cosines (l, m) of (ra, dec) about (ra0, dec0); all in radians."""
    da = ra - ra0
    ell = math.cos(dec) * math.sin(da)
    m = math.sin(dec) * math.cos(dec0) - math.cos(dec) * math.sin(dec0) * math.cos(da)
    return ell, m


def lm_to_radec(ell: float, m: float, ra0: float, dec0: float) -> tuple[float, float]:
    """Sky position (ra, dec) in radians of direction cosines (l, m) about (ra0, dec0)."""
    n = math.sqrt(max(0.0, 1.0 - ell * ell - m * m))
    dec = math.asin(m * math.cos(dec0) + n * math.sin(dec0))
    ra = ra0 + math.atan2(ell, n * math.cos(dec0) - m * math.sin(dec0))
    return ra % (2 * math.pi), dec


def uvw_frame(ra: float, dec: float) -> np.ndarray:
    """(3, 3) rows: the u, v, w unit vectors of the phase centre (ra, dec) in equatorial XYZ."""
    sa, ca, sd, cd = math.sin(ra), math.cos(ra), math.sin(dec), math.cos(dec)
    return np.array([[-sa, ca, 0.0],
                     [-sd * ca, -sd * sa, cd],
                     [cd * ca, cd * sa, sd]])


def rephase(uvw: np.ndarray, freq: np.ndarray, vis: np.ndarray, old: tuple[float, float],
            new: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Move the phase centre from ``old`` to ``new`` (ra, dec in radians).

    The uvw (nrow, 3) metres are rotated into the frame of the new centre and the visibilities
    (nrow, nchan) multiplied by ``exp(+2 pi i (w_old - w_new) f / c)`` (the MS sign convention,
    DESIGN.md), so the image is an exact SIN projection about the new centre. Returns new
    (uvw, vis) arrays; the inputs are not changed.
    """
    rot = uvw_frame(*new) @ uvw_frame(*old).T
    uvw_new = uvw @ rot.T
    dw = (uvw[:, 2] - uvw_new[:, 2]) / C
    phase = np.exp(2j * np.pi * np.multiply.outer(dw, freq))
    return uvw_new, vis * phase

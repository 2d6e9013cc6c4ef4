"""The clean beam: an elliptical Gaussian fitted to the main lobe of the PSF.

Sky convention (FITS/CASA): pixel x increases to the West (CDELT1 < 0), y to the North, so a
pixel offset ``(dy, dx)`` from the centre is ``east = -dx * cell``, ``north = dy * cell``. The
position angle ``bpa`` is the major axis's direction in degrees East of North, in (-90, 90].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.ndimage

from htclean.imaging.errors import InputError

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
CUTOFF = 0.35  # CASA's psfcutoff: the main lobe is the connected region above this x peak


@dataclass(frozen=True)
class Beam:
    """An elliptical Gaussian: ``bmaj``/``bmin`` FWHM in radians, ``bpa`` degrees East of North."""

    bmaj: float
    bmin: float
    bpa: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.bmaj) and math.isfinite(self.bmin) and math.isfinite(self.bpa)
                and self.bmaj > 0 and self.bmin > 0):
            raise InputError(f"beam must have finite positive bmaj, bmin and a finite bpa, got "
                             f"{self.bmaj!r}, {self.bmin!r}, {self.bpa!r}")

    def header(self) -> dict[str, float]:
        """FITS keywords ``BMAJ``, ``BMIN``, ``BPA``, all in degrees."""
        return {"BMAJ": math.degrees(self.bmaj), "BMIN": math.degrees(self.bmin),
                "BPA": float(self.bpa)}

    def image(self, shape: tuple[int, int], cell: float,
              centre: tuple[float, float] | None = None) -> np.ndarray:
        """The Gaussian sampled on a ``(ny, nx)`` grid of ``cell`` radians, peak 1 at ``centre``
        (``(y, x)`` pixels, default ``(ny // 2, nx // 2)``); float64."""
        ny, nx = shape
        cy, cx = centre if centre is not None else (ny // 2, nx // 2)
        east = -(np.arange(nx) - cx) * cell
        north = (np.arange(ny) - cy) * cell
        a, b, c = _quadratic(self)
        q = a * east[None, :] ** 2 + 2 * b * east[None, :] * north[:, None] \
            + c * north[:, None] ** 2
        return np.exp(-q)

    def kernel(self, cell: float, limit: tuple[int, int] | None = None) -> np.ndarray:
        """The Gaussian on an odd square grid centred on its peak (value 1), wide enough that
        the truncated wings are below 1e-12; at most ``(2 ly - 1, 2 lx - 1)`` for ``limit``."""
        sigma = self.bmaj / FWHM_PER_SIGMA / cell
        half = math.ceil(math.sqrt(2.0 * math.log(1e12)) * sigma)
        hy = hx = half
        if limit is not None:
            hy, hx = min(half, limit[0] - 1), min(half, limit[1] - 1)
        return self.image((2 * hy + 1, 2 * hx + 1), cell)


def _quadratic(beam: Beam) -> tuple[float, float, float]:
    """(a, b, c) with the Gaussian = exp(-(a e^2 + 2 b e n + c n^2)), e/n East/North radians."""
    pa = math.radians(beam.bpa)
    ka = 4.0 * math.log(2.0) / beam.bmaj ** 2
    kb = 4.0 * math.log(2.0) / beam.bmin ** 2
    s, c = math.sin(pa), math.cos(pa)
    # u (major axis) = e sin(pa) + n cos(pa); v = e cos(pa) - n sin(pa)
    return ka * s * s + kb * c * c, (ka - kb) * s * c, ka * c * c + kb * s * s


def _from_quadratic(a: float, b: float, c: float, cell: float) -> Beam:
    """The Beam of exp(-(a e^2 + 2 b e n + c n^2)) with e, n in pixels of ``cell`` radians."""
    lam, vec = np.linalg.eigh(np.array([[a, b], [b, c]]))
    if lam[0] <= 0:
        raise InputError("the PSF main lobe is not a peak (the fitted Gaussian is not bounded)")
    fwhm = 2.0 * np.sqrt(math.log(2.0) / lam) * cell  # lam[0] <= lam[1]: major first
    e, n = vec[:, 0]
    pa = 0.0 if lam[1] - lam[0] <= 1e-9 * lam[1] else math.degrees(math.atan2(e, n))
    pa = (pa + 90.0) % 180.0 - 90.0
    if pa == -90.0:
        pa = 90.0
    return Beam(float(fwhm[0]), float(fwhm[1]), pa)


def main_lobe(psf: np.ndarray, level: float = CUTOFF) -> tuple[tuple[slice, slice], np.ndarray]:
    """The connected region where ``psf >= level x psf[centre]`` that holds the centre pixel
    ``(ny // 2, nx // 2)``: ``(window slices, bool mask over psf[window])``."""
    ny, nx = psf.shape
    cy, cx = ny // 2, nx // 2
    peak = psf[cy, cx]
    h = 16
    while True:
        win = (slice(max(0, cy - h), min(ny, cy + h + 1)),
               slice(max(0, cx - h), min(nx, cx + h + 1)))
        labels, _ = scipy.ndimage.label(psf[win] >= level * peak)
        mask = labels == labels[cy - win[0].start, cx - win[1].start]
        rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
        touches = (rows[0] and win[0].start > 0) or (rows[-1] and win[0].stop < ny) \
            or (cols[0] and win[1].start > 0) or (cols[-1] and win[1].stop < nx)
        if not touches:
            return win, mask
        h *= 2


def fit_clean_beam(psf: np.ndarray, cell: float, *, level: float = CUTOFF) -> Beam:
    """Least-squares elliptical Gaussian (peak 1, centred) fitted to the PSF's main lobe.

    ``psf`` ``(ny, nx)`` with its peak at ``(ny // 2, nx // 2)``; ``cell`` the pixel size in
    radians (square pixels). Returns bmaj/bmin FWHM in radians and bpa in degrees (module doc).
    """
    p = np.asarray(psf)  # any real dtype; only the main lobe's pixels are read, in float64
    if p.dtype.kind not in "iuf":
        p = p.astype(np.float64)
    if p.ndim != 2 or min(p.shape) < 3:
        raise InputError(f"psf must be a 2-D image of at least 3x3 pixels, got shape {p.shape}")
    if not (math.isfinite(cell) and cell > 0):
        raise InputError(f"cell must be a positive angle in radians, got {cell!r}")
    cy, cx = p.shape[0] // 2, p.shape[1] // 2
    if not np.isfinite(p[cy, cx]) or p[cy, cx] <= 0:
        raise InputError(f"psf must peak at its centre pixel ({cy}, {cx}); found {p[cy, cx]!r}")
    if not 0.0 < level < 1.0:
        raise InputError(f"level must be in (0, 1), got {level!r}")
    win, mask = main_lobe(p, level)
    if not np.isfinite(p[win][mask]).all():
        raise InputError("psf has NaN or infinite pixels in its main lobe")
    yy, xx = np.nonzero(mask)
    e = -(xx + win[1].start - cx).astype(np.float64)
    n = (yy + win[0].start - cy).astype(np.float64)
    val = p[win][mask].astype(np.float64) / float(p[cy, cx])
    if val.size < 3:
        raise InputError("the PSF main lobe is narrower than a pixel: cannot fit a beam "
                         "(the cell is too large for this PSF)")
    design = np.stack([e * e, 2 * e * n, n * n], axis=1)
    start, *_ = np.linalg.lstsq(design, -np.log(np.clip(val, 1e-300, None)), rcond=None)

    def misfit(q: np.ndarray) -> np.ndarray:
        return np.exp(-(design @ q)) - val

    import scipy.optimize  # ~0.1 s of imports, only where a beam is fitted

    fit = scipy.optimize.least_squares(misfit, start, method="lm", xtol=1e-12, ftol=1e-12)
    return _from_quadratic(*fit.x, cell=cell)

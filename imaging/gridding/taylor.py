"""Taylor-weighted images for multi-term MFS (Rau & Cornwell 2011): gridding, prediction and
the Hessian the minor cycle and the restore solve with.

The sky's spectrum at each pixel is a polynomial in ``x = (nu - nu0) / nu0``:
``I(nu) = sum_t I_t x^t`` (t = 0 .. nterms - 1, the Taylor coefficient images "tt0", "tt1",
...). With the Taylor weights ``w_t(nu) = x^t``, what the grid jobs make from one read of the
data is

- the Taylor-weighted dirty images ``D_t = Re sum w V w_t(nu) exp(-2 pi i ...)``, t < nterms;
- the Taylor-weighted PSFs ``B_t = Re sum w w_t(nu) exp(-2 pi i ...)``, t < 2 nterms - 1;

all unnormalised, like ``gridding.dirty``: dividing each by the sum of weights (the same for
every term, ``sum w``) gives PSF 0 a peak of 1 and ``D_t = sum_j B_{t+j} * I_j``. Partial
images of parts therefore add as for nterms 1. The Taylor weights multiply the visibilities,
never the gridder's weights (those stay >= 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from htclean.imaging.errors import InputError
from htclean.imaging.geometry import ImageGeometry
from htclean.imaging.gridding import gridding

MAX_TERMS = 4


def check_nterms(nterms: Any) -> int:
    """``nterms`` as an int in 1 .. MAX_TERMS, else InputError naming deconvolution.nterms."""
    if isinstance(nterms, bool) or not isinstance(nterms, (int, np.integer)) \
            or not 1 <= nterms <= MAX_TERMS:
        raise InputError(f"deconvolution.nterms must be an integer from 1 to {MAX_TERMS}, got "
                         f"{nterms!r}")
    return int(nterms)


def taylor_weights(freq: Any, ref_freq: float, nterms: int) -> np.ndarray:
    """``w_t(nu) = ((nu - ref_freq) / ref_freq)^t``: (nterms, nchan) float64 (row 0 is 1)."""
    if not (math.isfinite(ref_freq) and ref_freq > 0):
        raise InputError(f"Taylor reference frequency must be > 0 Hz, got {ref_freq!r}")
    x = (np.asarray(freq, np.float64).reshape(-1) - ref_freq) / ref_freq
    return x[None, :] ** np.arange(nterms)[:, None]


@dataclass(frozen=True, eq=False)
class TaylorImages:
    """Unnormalised Taylor-weighted images of some data: ``dirty`` (nterms, ny, nx),
    ``psf`` (2 nterms - 1, pny, pnx), ``weight_sum`` (sum of the imaging weights) and the
    Taylor ``ref_freq`` (Hz). ``+`` adds those of two parts (same grids, same ref_freq)."""

    dirty: np.ndarray
    psf: np.ndarray
    weight_sum: float
    ref_freq: float

    @property
    def nterms(self) -> int:
        return self.dirty.shape[0]

    def __add__(self, other: TaylorImages) -> TaylorImages:
        if (self.dirty.shape, self.psf.shape) != (other.dirty.shape, other.psf.shape) \
                or self.ref_freq != other.ref_freq:
            raise InputError("Taylor images of different shapes or reference frequencies "
                             "cannot be added")
        return TaylorImages(self.dirty + other.dirty, self.psf + other.psf,
                            self.weight_sum + other.weight_sum, self.ref_freq)

    def normalised(self) -> tuple[np.ndarray, np.ndarray]:
        """(dirty, psf) divided by the weight sum: PSF 0 peaks at 1, dirty in Jy/beam."""
        if not self.weight_sum > 0:
            raise InputError("the Taylor images have no weight (every sample flagged?)")
        return self.dirty / self.weight_sum, self.psf / self.weight_sum


def grid_terms(uvw: np.ndarray, freq: np.ndarray, vis: np.ndarray, weight: np.ndarray | None,
               geom: ImageGeometry, psf_geom: ImageGeometry, params: gridding.GridParams, *,
               nterms: int, ref_freq: float, psf: bool = True) -> TaylorImages:
    """The Taylor-weighted dirty images and PSFs of one chunk of data (module docstring).

    uvw (nrow, 3) m; freq (nchan,) Hz; vis (nrow, nchan) complex Stokes I; weight (nrow, nchan)
    imaging weights or None (all 1); geom the image's grid, psf_geom the PSF's (often twice
    the size); ``psf=False`` skips the PSFs (a residual grid: ``psf`` is then empty).
    Costs nterms dirty grids plus 2 nterms - 1 PSF grids (nterms 1: one of each).
    """
    nterms = check_nterms(nterms)
    wt = taylor_weights(freq, ref_freq, 2 * nterms - 1)
    w = np.ones(vis.shape) if weight is None else np.asarray(weight, np.float64)
    dirty = np.stack([gridding.dirty(uvw, freq, vis * wt[t][None, :], w, geom, params)
                      for t in range(nterms)])
    if psf:
        ones = np.ones(vis.shape, np.complex128)
        psfs = np.stack([gridding.dirty(uvw, freq, ones * wt[t][None, :], w, psf_geom, params)
                         for t in range(2 * nterms - 1)])
    else:
        psfs = np.zeros((0, *psf_geom.shape))
    return TaylorImages(dirty, psfs, float(w.sum()), float(ref_freq))


def predict_terms(models: Any, uvw: np.ndarray, freq: np.ndarray, geom: ImageGeometry,
                  params: gridding.GridParams, *, ref_freq: float) -> np.ndarray:
    """Model visibilities ``sum_t w_t(nu) predict(models[t])`` (nrow, nchan) complex128 of
    Taylor model images ``models`` (nterms, ny, nx) in Jy/pixel."""
    m = np.asarray(models, np.float64)
    if m.ndim != 3 or m.shape[1:] != geom.shape:
        raise InputError(f"Taylor models must be (nterms, ny, nx) with (ny, nx) = {geom.shape}, "
                         f"got {m.shape}")
    wt = taylor_weights(freq, ref_freq, check_nterms(m.shape[0]))
    vis = np.zeros((uvw.shape[0], len(freq)), np.complex128)
    for t in range(m.shape[0]):
        if np.any(m[t]):
            vis += gridding.predict(m[t], uvw, freq, geom, params) * wt[t][None, :]
    return vis


def hessian(psfs: Any) -> np.ndarray:
    """The (nterms, nterms) matrix ``H_ij = B_{i+j}(0)`` of normalised Taylor PSFs
    (2 nterms - 1, pny, pnx), centres at (pny // 2, pnx // 2)."""
    p = np.asarray(psfs, np.float64)
    if p.ndim != 3 or p.shape[0] % 2 == 0:
        raise InputError(f"Taylor PSFs must be (2 nterms - 1, pny, pnx), got shape {p.shape}")
    nterms = (p.shape[0] + 1) // 2
    centre = p[:, p.shape[1] // 2, p.shape[2] // 2]
    return centre[np.add.outer(np.arange(nterms), np.arange(nterms))]


def prepare(residuals: Any, psfs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 copies: residuals (nterms, ny, nx) and PSFs (2 nterms - 1, pny,
    pnx) normalised so PSF 0 is 1 at its centre (stored pixel by pixel:
    deconvolution's interleaved). InputError says what is wrong."""
    r, p = np.array(residuals, np.float64), np.asarray(psfs, np.float64)
    if r.ndim != 3 or p.ndim != 3:
        raise InputError(f"residuals and psfs must be stacks of images, got shapes {r.shape} "
                         f"and {p.shape}")
    nterms = check_nterms(r.shape[0])
    if p.shape[0] != 2 * nterms - 1:
        raise InputError(f"nterms {nterms} needs {2 * nterms - 1} Taylor PSFs, got {p.shape[0]}")
    if not (np.isfinite(r).all() and np.isfinite(p).all()):
        raise InputError("residuals or psfs have NaN or infinite pixels")
    centre = p[0, p.shape[1] // 2, p.shape[2] // 2]
    if not centre > 0 or np.abs(p[0]).max() > centre * (1 + 1e-6):
        raise InputError("Taylor PSF 0 must peak at its centre pixel")
    from htclean.imaging.deconvolution.mtmfs_list import interleaved

    return r, interleaved(p, centre)


def inverse(h: np.ndarray) -> np.ndarray:
    """H^-1, or InputError when H is not positive definite."""
    if np.linalg.eigvalsh(h).min() <= 1e-12 * abs(h[0, 0]):
        raise InputError("the Taylor Hessian is singular: the band is too narrow (or the "
                         "reference frequency too far from it) for this many terms")
    return np.linalg.inv(h)


def coefficients(residuals: np.ndarray, h_inv: np.ndarray) -> np.ndarray:
    """``H^-1 R`` at every pixel: (nterms, ny, nx)."""
    return np.tensordot(h_inv, residuals, axes=1)

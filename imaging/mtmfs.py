"""Multi-term MFS deconvolution (Rau & Cornwell 2011, A&A 532, A71): minor cycle and products.

Inputs are the normalised Taylor-weighted residuals ``R_t`` (nterms, ny, nx) and PSFs ``B_q``
(2 nterms - 1, pny, pnx) of taylor.py (PSF 0 peaks at 1 at (pny // 2, pnx // 2)). With the
Hessian ``H_ij = B_{i+j}(0)`` (taylor.hessian), each iteration of the Högbom MT-MFS minor cycle

1. solves ``H a(p) = R(p)`` at every pixel p (one inverse, ``a = H^-1 R``) and takes the pixel
   where the chi-square reduction ``a . R`` is largest (for nterms 1: the largest |R_0|, the
   Högbom peak); ties go to the lowest flat index;
2. adds ``gain x a`` to the Taylor coefficients of the component at p;
3. subtracts it from every residual: ``R_i -= gain sum_j a_j B_{i+j}`` shifted to p.

The stop rules are the minor cycle's (clean.StopRule) on the tt0 residual's peak ``max |R_0|``:
no-peak, threshold, niter, mgain. The model is a list of point components, each with its
Taylor coefficients (``TaylorComponents``); restored images are ``tt_t = model_t * beam +
(H^-1 R)_t`` (residuals in coefficient units, as CASA's mtmfs restores); the spectral index is
``alpha = tt1 / tt0`` where tt0 is above a cut, with its error from the residual noise
``d alpha = sqrt(s1^2 + alpha^2 s0^2) / tt0`` (s_t the robust sigma of (H^-1 R)_t).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from htclean.imaging.beam import Beam
from htclean.imaging.clean import CleanParams, StopRule, overlap
from htclean.imaging.components import ComponentList
from htclean.imaging.errors import InputError
from htclean.imaging.noise import robust_sigma
from htclean.imaging.restore import restore
from htclean.imaging.taylor import check_nterms, hessian


@dataclass(frozen=True, eq=False)
class TaylorComponents:
    """Point components with Taylor coefficients: ``x``, ``y`` (int64 pixels) and ``flux``
    (ncomp, nterms) float64 (Jy at the reference frequency, then the tt1, tt2 ... coefficients),
    on an ``(ny, nx)`` image; one entry per pixel, sorted by (y, x)."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    nx: int
    ny: int

    @classmethod
    def from_arrays(cls, x: Any, y: Any, flux: Any, nx: int, ny: int) -> TaylorComponents:
        """Merge components per pixel (coefficients summed), sorted by (y, x)."""
        x, y = np.asarray(x, np.int64).reshape(-1), np.asarray(y, np.int64).reshape(-1)
        f = np.asarray(flux, np.float64).reshape(len(x), -1)
        if ((x < 0) | (x >= nx) | (y < 0) | (y >= ny)).any():
            raise InputError(f"a Taylor component lies outside the {nx}x{ny} image")
        flat, inverse = np.unique(y * nx + x, return_inverse=True)
        total = np.zeros((flat.size, f.shape[1]))
        np.add.at(total, inverse.ravel(), f)
        return cls(flat % nx, flat // nx, total, int(nx), int(ny))

    @property
    def nterms(self) -> int:
        return self.flux.shape[1]

    def __len__(self) -> int:
        return len(self.x)

    def merge(self, other: TaylorComponents) -> TaylorComponents:
        """Both lists as one (coefficients of a shared pixel summed)."""
        return TaylorComponents.from_arrays(np.concatenate([self.x, other.x]),
                                            np.concatenate([self.y, other.y]),
                                            np.concatenate([self.flux, other.flux]),
                                            self.nx, self.ny)

    def term(self, t: int) -> ComponentList:
        """The components of Taylor term ``t`` as a ComponentList (for restore, FITS)."""
        return ComponentList.from_arrays(self.x, self.y, self.flux[:, t], np.zeros(len(self)),
                                         self.nx, self.ny)

    def images(self) -> np.ndarray:
        """(nterms, ny, nx) float64 model images in Jy/pixel."""
        out = np.zeros((self.nterms, self.ny, self.nx))
        out[:, self.y, self.x] = self.flux.T
        return out


@dataclass(frozen=True, eq=False)
class MTResult:
    """A multi-term minor cycle's outcome: this cycle's ``components``, the updated
    ``residuals`` (nterms, ny, nx), ``iterations``, ``peak_start``/``peak_end`` (max |R_0|)
    and ``stop_reason`` (clean.STOP_REASONS)."""

    components: TaylorComponents
    residuals: np.ndarray
    iterations: int
    peak_start: float
    peak_end: float
    stop_reason: str


def prepare(residuals: Any, psfs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 copies: residuals (nterms, ny, nx) and PSFs (2 nterms - 1, pny,
    pnx) normalised so PSF 0 is 1 at its centre. InputError says what is wrong."""
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
    return r, p / centre


def _inverse(h: np.ndarray) -> np.ndarray:
    if np.linalg.eigvalsh(h).min() <= 1e-12 * abs(h[0, 0]):
        raise InputError("the Taylor Hessian is singular: the band is too narrow (or the "
                         "reference frequency too far from it) for this many terms")
    return np.linalg.inv(h)


def coefficients(residuals: np.ndarray, h_inv: np.ndarray) -> np.ndarray:
    """``H^-1 R`` at every pixel: (nterms, ny, nx)."""
    return np.tensordot(h_inv, residuals, axes=1)


def minor_cycle(residuals: Any, psfs: Any, params: CleanParams, *, iterations_done: int,
                threshold: float) -> MTResult:
    """One Högbom MT-MFS minor cycle (module docstring); the inputs are not modified.

    ``params``: gain, niter, mgain (its algorithm must be hogbom); ``iterations_done``:
    components of earlier cycles; ``threshold``: absolute stop level (Jy) on max |R_0|.
    """
    if params.algorithm != "hogbom":
        raise InputError(f"multi-term deconvolution supports the hogbom algorithm, not "
                         f"{params.algorithm!r}")
    if not (math.isfinite(threshold) and threshold >= 0):
        raise InputError(f"threshold must be a finite flux >= 0 Jy, got {threshold!r}")
    res, psf = prepare(residuals, psfs)
    nterms, ny, nx = res.shape
    h_inv = _inverse(hessian(psf))
    pairs = [(i, j) for i in range(nterms) for j in range(nterms)]
    score = np.einsum("ij,iyx,jyx->yx", h_inv, res, res)
    peak_start = float(np.abs(res[0]).max())
    stop = StopRule(params, peak_start, int(iterations_done), float(threshold))
    xs: list[int] = []
    ys: list[int] = []
    amps: list[np.ndarray] = []
    peak = peak_start
    while (reason := stop.reason(peak, len(amps))) is None:
        y, x = divmod(int(score.argmax()), nx)
        a = params.gain * (h_inv @ res[:, y, x])
        (iy, ix), (py, px) = overlap((ny, nx), psf.shape[1:], y, x)
        for i, j in pairs:
            res[i, iy, ix] -= a[j] * psf[i + j, py, px]
        window = res[:, iy, ix]
        score[iy, ix] = np.einsum("ij,iyx,jyx->yx", h_inv, window, window)
        xs.append(x)
        ys.append(y)
        amps.append(a)
        peak = float(np.abs(res[0]).max())
    comps = TaylorComponents.from_arrays(xs, ys, np.array(amps).reshape(-1, nterms), nx, ny)
    return MTResult(comps, res, len(amps), peak_start, peak, reason)


def restore_terms(components: TaylorComponents, residuals: Any, psfs: Any, beam: Beam,
                  cell: float, *, threads: int = 0) -> np.ndarray:
    """Restored Taylor images (nterms, ny, nx) Jy/beam: ``model_t * beam + (H^-1 R)_t``."""
    res, psf = prepare(residuals, psfs)
    if res.shape[0] != components.nterms:
        raise InputError(f"{res.shape[0]} residual terms for {components.nterms}-term components")
    coeff = coefficients(res, _inverse(hessian(psf)))
    return np.stack([restore(components.term(t), coeff[t], beam, cell, threads=threads)
                     for t in range(res.shape[0])])


def residual_sigma(residuals: Any, psfs: Any) -> np.ndarray:
    """Robust noise (nterms,) of the residuals in coefficient units, ``(H^-1 R)_t``."""
    res, psf = prepare(residuals, psfs)
    coeff = coefficients(res, _inverse(hessian(psf)))
    return np.array([robust_sigma(c) for c in coeff])


def spectral_index(restored: Any, *, cut: float,
                   sigma: Any | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(alpha, alpha error) from restored Taylor images (nterms >= 2, ny, nx): ``tt1 / tt0``
    where tt0 > ``cut`` (Jy/beam), NaN elsewhere; the error ``sqrt(s1^2 + alpha^2 s0^2) / tt0``
    when ``sigma`` (s0, s1, ...) is given (``residual_sigma``), else None."""
    r = np.asarray(restored, np.float64)
    if r.ndim != 3 or r.shape[0] < 2:
        raise InputError(f"a spectral index needs nterms >= 2 restored images, got {r.shape}")
    if not (math.isfinite(cut) and cut > 0):
        raise InputError(f"the spectral-index cut must be a flux > 0 Jy/beam, got {cut!r}")
    good = r[0] > cut
    tt0 = np.where(good, r[0], 1.0)
    alpha = np.where(good, r[1] / tt0, np.nan)
    if sigma is None:
        return alpha, None
    s0, s1 = float(sigma[0]), float(sigma[1])
    return alpha, np.where(good, np.sqrt(s1**2 + alpha**2 * s0**2) / tt0, np.nan)

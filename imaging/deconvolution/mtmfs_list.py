"""The multi-term minor cycle on a list of candidate pixels (MT-MFS Högbom, as hogbom.py's).

A component is taken only where the chi-square reduction ``s = R . H^-1 R`` is largest, and
the cycle runs only while ``max |R_0| > floor`` (the threshold and mgain level,
``StopRule.floor``). Since ``H`` is positive definite, ``s >= R_0^2 / H_00`` at every pixel,
so the pixel chosen while the cycle runs has ``s > floor^2 / H_00``: the cycle needs only the
pixels above that level. It runs on their list (``list_clean_terms``: the Taylor solve, the
peak search and the update of every term, exact there, with the whole Taylor PSFs), then
subtracts the list's components from the whole residual images at once
(``TermSubtractor``: shifted PSFs for a few, FFT convolutions for many) and starts again if a
pixel outside the list rose above the floor meanwhile. The components equal those of the
loop over every pixel (hogbom.py's module docstring), in the same order, except when a pixel
outside the list rises above the list's level in the middle of a list (it is then taken in
the next list), as for hogbom.py.
"""

from __future__ import annotations

import numpy as np

from htclean.imaging.deconvolution.clean import PSFSubtractor, overlap
from htclean.imaging.deconvolution.components import add_stamps, scale_kernel
from htclean.imaging.deconvolution.convolver import Convolver


def scores(h_inv: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``R . H^-1 R`` of ``values`` (nterms, ...): the chi-square reduction, >= 0."""
    return np.einsum("ij,i...,j...->...", h_inv, values, values)


def list_clean_terms(values: np.ndarray, flat: np.ndarray, nx: int, psfs: np.ndarray,
                     h_inv: np.ndarray, gain: float, limit: float, budget: int,
                     floor: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MT-MFS Högbom iterations restricted to a list of pixels, exact on those pixels.

    ``values`` (nterms, m) float64: the Taylor residuals at ascending flat indices ``flat`` of
    an image ``nx`` wide (updated in place); ``psfs`` (2 nterms - 1, py, px) float64 Taylor
    PSFs, centre ``(py // 2, px // 2)`` (``interleaved``, or copied so); ``h_inv`` (nterms,
    nterms) their inverse Hessian.
    Each iteration takes the largest ``s = R . H^-1 R`` (lowest index on ties), stops when it
    is <= ``limit``, when ``max |R_0|`` <= ``floor`` (None: no such test) or after ``budget``
    iterations, records ``a = gain H^-1 R`` there and subtracts ``sum_j a_j B_{i+j}`` shifted
    there from every listed ``R_i`` (zero where the PSF does not reach). Returns ``(list
    positions, amplitudes (k, nterms))``.
    """
    nterms, m = values.shape
    nq, py, px = psfs.shape
    cy, cx = py // 2, px // 2
    ly, lx = np.divmod(flat, nx)
    span_y = int(ly.max() - ly.min()) if m else 0
    span_x = int(lx.max() - lx.min()) if m else 0
    covered = min(cy, py - 1 - cy) >= span_y and min(cx, px - 1 - cx) >= span_x
    # the PSFs pixel by pixel (py, px, nq): one gather fetches every term's value at once
    by_pixel = np.moveaxis(psfs, 0, -1)
    if not covered:  # offsets beyond the PSFs: clip them onto a zero border
        bordered = np.zeros((py + 2, px + 2, nq))
        bordered[1:-1, 1:-1] = by_pixel
        by_pixel, py, px, cy, cx = bordered, py + 2, px + 2, cy + 1, cx + 1
    flat_psfs = np.ascontiguousarray(by_pixel).reshape(-1, nq)  # no copy from interleaved()
    base = ly * px + lx  # PSF index of a list pixel, less that of the picked one's centre
    index = np.empty_like(base)
    iy, ix = np.empty_like(ly), np.empty_like(lx)
    shifted = np.empty((m, nq))
    coeff = h_inv @ values
    s = np.einsum("im,im->m", coeff, values)
    picks: list[int] = []
    amps: list[np.ndarray] = []
    while len(picks) < budget:
        k = int(s.argmax())
        if s[k] <= limit or (floor is not None and np.abs(values[0]).max() <= floor):
            break
        a = gain * coeff[:, k]
        if covered:
            np.subtract(base, int(base[k]) - (cy * px + cx), out=index)
        else:
            np.clip(ly - (ly[k] - cy), 0, py - 1, out=iy)
            np.clip(lx - (lx[k] - cx), 0, px - 1, out=ix)
            np.multiply(iy, px, out=index)
            index += ix
        np.take(flat_psfs, index, axis=0, out=shifted)
        for i in range(nterms):
            values[i] -= shifted[:, i:i + nterms] @ a
        np.matmul(h_inv, values, out=coeff)
        np.einsum("im,im->m", coeff, values, out=s)
        picks.append(k)
        amps.append(a)
    return np.array(picks, dtype=np.int64), np.array(amps).reshape(-1, nterms)


def interleaved(psfs: np.ndarray, divisor: float = 1.0) -> np.ndarray:
    """``psfs / divisor`` (nq, py, px) float64 as a view of one (py, px, nq) array: the
    layout ``list_clean_terms`` gathers from without copying."""
    nq, py, px = psfs.shape
    out = np.empty((py, px, nq))
    for q in range(nq):  # a term at a time: 4x faster than one transposing copy
        np.divide(psfs[q], divisor, out=out[:, :, q])
    return np.moveaxis(out, -1, 0)


class TermSubtractor:
    """``R_i -= sum_j (sum_p a_j(p) δ_p ⊛ K) ⊛ B_{i+j}`` for a batch of components of one
    scale (kernel ``K``, a point for scale 0), on residuals (nterms, ny, nx) float64.

    A few points are subtracted one by one as shifted PSFs; more, or extended components, are
    put on model images and convolved by FFT (zero-padded: exact up to rounding). Which one
    runs depends only on the count and the planned ``threads``, so runs are reproducible.
    """

    def __init__(self, shape: tuple[int, int], psfs: np.ndarray, *, threads: int = 0):
        self.shape = shape
        self.psfs = psfs
        self.nterms = (psfs.shape[0] + 1) // 2
        self.threads = threads
        per_term = PSFSubtractor(shape, psfs[0], threads=threads).direct_limit
        self.direct_limit = max(1, per_term // self.nterms)
        self._conv: Convolver | None = None

    def __call__(self, res: np.ndarray, ys: np.ndarray, xs: np.ndarray, amps: np.ndarray,
                 scale: float = 0.0) -> None:
        """Subtract components ``amps`` (k, nterms) at pixels ``(ys, xs)`` in place."""
        ny, nx = self.shape
        flat, where = np.unique(np.asarray(ys) * nx + np.asarray(xs), return_inverse=True)
        total = np.zeros((flat.size, self.nterms))
        np.add.at(total, where.ravel(), amps)
        if scale == 0.0 and flat.size <= self.direct_limit:
            for f, a in zip(flat.tolist(), total, strict=True):
                subtract(res, self.psfs, f // nx, f % nx, a)
            return
        if self._conv is None:
            self._conv = Convolver(self.shape, list(self.psfs), threads=self.threads)
        kernel = scale_kernel(scale)
        hats = []
        for j in range(self.nterms):
            model = np.zeros(self.shape)
            add_stamps(model, flat // nx, flat % nx, total[:, j], kernel)
            hats.append(self._conv.forward(model))
        for i in range(self.nterms):
            res[i] -= self._conv.apply_sum(hats, list(range(i, i + self.nterms)))


def subtract(residuals: np.ndarray, psfs: np.ndarray, y: int, x: int, a: np.ndarray) -> None:
    """``R_i -= sum_j a_j B_{i+j}`` shifted to (y, x), in place (the whole overlap)."""
    nterms, ny, nx = residuals.shape
    (iy, ix), (py, px) = overlap((ny, nx), psfs.shape[1:], y, x)
    for i in range(nterms):
        for j in range(nterms):
            residuals[i, iy, ix] -= a[j] * psfs[i + j, py, px]

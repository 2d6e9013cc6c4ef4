"""The gridding kernel of the GPU gridder and the scatter-add that puts visibilities on the grid.

The kernel is ducc0.wgridder's "exponential of semicircle" (ES)::

    phi(s) = exp(beta * (sqrt(1 - (2 s / W)^2) - 1))   for |s| <= W / 2 (grid cells), else 0

with support ``W`` cells, on a grid oversampled by ``SIGMA = 2``. ``KERNELS`` tabulates, for
W = 4 .. 16, the ``beta`` that minimises the worst-case 1-D aliasing error of one visibility,

    error(W, beta) = max over x in [0, 1/(2 SIGMA)], t in [0, 1) of
                     | sum_j phi(j - t) exp(2 pi i x (j - t)) - phihat(x) | / phihat(x)

(x: image frequency in cycles per grid cell; t: the visibility's offset from a grid cell;
``phihat`` the kernel's Fourier transform, which the image is divided by). ``derive_kernel``
recomputes an entry (scan of beta, then a bounded refinement); ``aliasing_error`` is the
criterion. A d-dimensional gridding (2: u, v; 3: with w-stacking) is accurate to
``d * error``; ``choose_kernel`` takes the smallest W that meets the requested epsilon.

``scatter_add`` adds the kernel-weighted visibilities to a complex grid: ``np.add.at`` on numpy;
on CuPy a small RawKernel (one thread per visibility x kernel row, atomicAdd), or
``cupyx.scatter_add``. THE CUDA SOURCE BELOW HAS NOT BEEN RUN ON A GPU: the development machine
had none; tests/test_gpu.py compares it with the numpy path where a GPU is present.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

from htclean.imaging.errors import InputError

SIGMA = 2.0  # grid oversampling factor the table is derived for (grid size >= 2 x image size)


@dataclass(frozen=True)
class Kernel:
    """An ES kernel: ``support`` W in grid cells, shape ``beta``, and its tabulated worst-case
    1-D relative ``error`` at oversampling ``SIGMA``."""

    support: int
    beta: float
    error: float


# Derived with derive_kernel(W) (beta scanned over [1.8 W, 2.6 W] in steps of 0.002 W on a
# 97 x 96 grid of (x, t), refined, rounded to 3 decimals); error re-evaluated on 1025 x 1024.
KERNELS: tuple[Kernel, ...] = (
    Kernel(4, 8.715, 1.324e-03),
    Kernel(5, 11.292, 1.580e-04),
    Kernel(6, 13.733, 2.018e-05),
    Kernel(7, 16.141, 2.569e-06),
    Kernel(8, 18.556, 3.345e-07),
    Kernel(9, 20.934, 3.885e-08),
    Kernel(10, 22.667, 4.259e-09),
    Kernel(11, 25.122, 5.099e-10),
    Kernel(12, 27.534, 5.766e-11),
    Kernel(13, 29.950, 6.917e-12),
    Kernel(14, 32.359, 7.848e-13),
    Kernel(15, 34.756, 1.022e-13),
    Kernel(16, 37.111, 2.205e-14),
)

# The smallest epsilon each precision can deliver (rounding of the grid sums dominates below).
MIN_EPSILON = {"single": 1e-5, "double": 1e-13}


def choose_kernel(epsilon: float, ndim: int, precision: str = "double") -> Kernel:
    """The smallest tabulated kernel with ``ndim * error <= epsilon``.

    epsilon: requested relative accuracy; ndim: 2 (u, v) or 3 (u, v, w); precision ``single``
    or ``double``. InputError when epsilon is out of reach.
    """
    if precision not in MIN_EPSILON:
        raise InputError(f"gridder.precision must be single or double, got {precision!r}")
    if not (math.isfinite(epsilon) and 0 < epsilon < 1):
        raise InputError(f"gridder.epsilon must be between 0 and 1, got {epsilon!r}")
    if epsilon < MIN_EPSILON[precision]:
        raise InputError(f"gridder.epsilon {epsilon:g} is below what {precision} precision "
                         f"can reach (>= {MIN_EPSILON[precision]:g}); use a larger epsilon"
                         + (" or gridder.precision double" if precision == "single" else ""))
    for kernel in KERNELS:
        if ndim * kernel.error <= epsilon:
            return kernel
    best = KERNELS[-1]
    raise InputError(f"gridder.epsilon {epsilon:g} is below what the GPU gridder can reach "
                     f"({ndim * best.error:.1e} with {ndim} dimensions)")


def evaluate(xp: ModuleType, s: Any, kernel: Kernel, dtype: Any) -> Any:
    """phi(s) for offsets ``s`` in grid cells (any shape, float64); returns ``dtype`` values."""
    z = (2.0 / kernel.support) * s
    arg = xp.maximum(1.0 - z * z, 0.0).astype(dtype, copy=False)
    out = xp.exp(kernel.beta * (xp.sqrt(arg) - 1.0))
    return xp.where(xp.abs(z) <= 1.0, out, 0.0).astype(dtype, copy=False)


@lru_cache(maxsize=8)
def _quadrature(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights over theta in [-pi/2, pi/2] (z = sin theta)."""
    t, w = np.polynomial.legendre.leggauss(nodes)
    return t * (np.pi / 2), w * (np.pi / 2)


def fourier(x: Any, kernel: Kernel, xp: ModuleType = np) -> Any:
    """phihat(x) = integral of phi(s) exp(2 pi i x s) ds for x in cycles per cell (any shape,
    an ``xp`` array); float64.

    Substituting z = 2 s / W = sin(theta) makes the integrand smooth, so Gauss-Legendre
    quadrature with 3 W + 32 nodes reaches float64 rounding (tested against scipy's quad).
    """
    theta, w = _quadrature(3 * kernel.support + 32)
    z = np.sin(theta)
    f = np.exp(kernel.beta * (np.cos(theta) - 1.0)) * np.cos(theta) * w * (kernel.support / 2)
    x = xp.asarray(x, dtype=xp.float64)
    out = xp.zeros(x.shape, dtype=xp.float64)
    for fq, zq in zip(f.tolist(), (np.pi * kernel.support * z).tolist(), strict=True):
        out += fq * xp.cos(zq * x)
    return out


def aliasing_error(support: int, beta: float, sigma: float = SIGMA, nx: int = 97,
                   nt: int = 96) -> float:
    """The worst-case 1-D relative error of one visibility (the criterion of ``KERNELS``)
    on an ``nx`` x ``nt`` grid of image frequencies x and sub-cell offsets t."""
    kernel = Kernel(support, beta, 0.0)
    x = np.linspace(0.0, 0.5 / sigma, nx)
    t = np.arange(nt) / nt
    j = np.arange(-(support // 2) - 1, support // 2 + 2)
    s = j[None, :] - t[:, None]
    phi = evaluate(np, s, kernel, np.float64)
    sums = np.einsum("tj,tjx->tx", phi, np.exp(2j * np.pi * s[:, :, None] * x))
    exact = fourier(x, kernel)
    return float(np.max(np.abs(sums - exact) / exact))


def derive_kernel(support: int, sigma: float = SIGMA, step: float = 0.002, nx: int = 97,
                  nt: int = 96) -> Kernel:
    """The beta minimising ``aliasing_error`` for ``support``: a scan of beta over
    [1.8 W, 2.6 W] in steps of ``step`` W, then a bounded refinement around the best."""
    from scipy.optimize import minimize_scalar

    betas = np.arange(1.8, 2.6, step) * support
    errors = [aliasing_error(support, b, sigma, nx, nt) for b in betas]
    b0 = float(betas[int(np.argmin(errors))])
    res = minimize_scalar(lambda b: math.log(aliasing_error(support, b, sigma, nx, nt)),
                          bounds=(b0 - step * support, b0 + step * support), method="bounded",
                          options={"xatol": 1e-6})
    beta = round(float(res.x), 3)
    return Kernel(support, beta, aliasing_error(support, beta, sigma, nx, nt))


# --- scatter-add onto the grid -------------------------------------------------------------

# One thread per (visibility m, kernel row j): it adds val[m] * k0[m, j] * k1[m, k] to the W
# cells (r0[m] + j, r1[m] + k), k = 0..W-1, wrapping around the grid. r0, r1 are already
# reduced modulo the grid size. The grid is complex, stored as interleaved (re, im) REALs.
# atomicAdd on double needs compute capability >= 6.0 (htclean asks for >= 8.0).
_SCATTER_SOURCE = r"""
extern "C" __global__
void grid_scatter_REAL(const long long nvis, const int support, const int nu0, const int nu1,
                       const int* __restrict__ r0, const int* __restrict__ r1,
                       const REAL* __restrict__ k0, const REAL* __restrict__ k1,
                       const REAL* __restrict__ val, REAL* __restrict__ grid)
{
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (tid >= nvis * support) return;
    const long long m = tid / support;
    const int j = (int)(tid - m * support);
    int row = r0[m] + j;
    if (row >= nu0) row -= nu0;
    const REAL kj = k0[tid];
    const REAL re = val[2 * m] * kj;
    const REAL im = val[2 * m + 1] * kj;
    REAL* cells = grid + 2 * (long long)row * nu1;
    const REAL* k1m = k1 + m * support;
    int col = r1[m];
    for (int k = 0; k < support; ++k) {
        atomicAdd(cells + 2 * col, re * k1m[k]);
        atomicAdd(cells + 2 * col + 1, im * k1m[k]);
        if (++col == nu1) col = 0;
    }
}
"""

_THREADS = 256


@lru_cache(maxsize=4)
def _raw_kernel(real: str) -> Any:
    import cupy

    name = f"grid_scatter_{real}"
    return cupy.RawKernel(_SCATTER_SOURCE.replace("REAL", real), name)


def scatter_add(xp: ModuleType, grid: Any, r0: Any, r1: Any, k0: Any, k1: Any, val: Any,
                method: str = "raw") -> None:
    """grid[(r0 + j) % nu0, (r1 + k) % nu1] += val * k0[:, j] * k1[:, k], in place.

    grid: (nu0, nu1) complex64/complex128, C-contiguous; r0, r1: (M,) int32 in [0, nu0),
    [0, nu1); k0, k1: (M, W) real of the grid's precision; val: (M,) complex of the grid's
    dtype. ``method`` on CuPy: ``raw`` (the RawKernel) or ``cupyx`` (cupyx.scatter_add);
    numpy always uses ``np.add.at``.
    """
    nvis, support = k0.shape
    if not grid.flags.c_contiguous:
        raise ValueError("scatter_add needs a C-contiguous grid (it writes through a flat view)")
    if nvis == 0:
        return
    nu0, nu1 = grid.shape
    if xp is np or method == "cupyx":
        rows = r0[:, None] + xp.arange(support, dtype=r0.dtype)
        rows = xp.where(rows >= nu0, rows - nu0, rows).astype(xp.int64)
        cols = r1[:, None] + xp.arange(support, dtype=r1.dtype)
        cols = xp.where(cols >= nu1, cols - nu1, cols).astype(xp.int64)
        flat = (rows[:, :, None] * nu1 + cols[:, None, :]).ravel()
        values = (val[:, None, None] * (k0[:, :, None] * k1[:, None, :])).ravel()
        if xp is np:
            np.add.at(grid.reshape(-1), flat, values)
            return
        import cupyx

        interleaved = grid.reshape(-1).view(k0.dtype)
        cupyx.scatter_add(interleaved, 2 * flat, values.real)
        cupyx.scatter_add(interleaved, 2 * flat + 1, values.imag)
        return
    if method != "raw":
        raise InputError(f"scatter method must be raw or cupyx, got {method!r}")
    real = "float" if grid.dtype == xp.complex64 else "double"
    rdtype = xp.float32 if real == "float" else xp.float64
    args = (np.int64(nvis), np.int32(support), np.int32(nu0), np.int32(nu1),
            xp.ascontiguousarray(r0, dtype=xp.int32), xp.ascontiguousarray(r1, dtype=xp.int32),
            xp.ascontiguousarray(k0, dtype=rdtype), xp.ascontiguousarray(k1, dtype=rdtype),
            xp.ascontiguousarray(val, dtype=grid.dtype).view(rdtype), grid.reshape(-1).view(rdtype))
    blocks = (nvis * support + _THREADS - 1) // _THREADS
    _raw_kernel(real)((blocks,), (_THREADS,), args)

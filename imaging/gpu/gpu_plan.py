"""The plan of one GPU-path gridding call, ducc0.wgridder's choices: the grid size, the ES
kernel, the w-planes and the image-plane corrections (gpu_gridding.py grids with it)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from htclean.imaging.errors import InputError
from htclean.imaging.gpu import gpu_kernels
from htclean.imaging.gpu.gpu_kernels import Kernel


def good_size(n: int) -> int:
    """The smallest even n' >= n whose prime factors are 2, 3, 5, 7 (fast FFT lengths)."""
    m = max(int(n), 2)
    while True:
        if m % 2 == 0:
            r = m
            for p in (2, 3, 5, 7):
                while r % p == 0:
                    r //= p
            if r == 1:
                return m
        m += 1


@dataclass(frozen=True)
class Plan:
    """How one image is gridded: image ``(n0, n1)`` = (ny, nx) pixels of ``cell`` radians, grid
    ``(nu0, nu1)``, ``kernel``, w-planes ``w_first + p dw`` for p < ``nplanes`` (one plane and
    dw = 0 without w-gridding), ``nshift``, complex ``dtype`` of the grid."""

    n0: int
    n1: int
    cell: float
    nu0: int
    nu1: int
    kernel: Kernel
    wgridding: bool
    w_first: float
    dw: float
    nplanes: int
    nshift: float
    dtype: Any

    @property
    def real_dtype(self) -> Any:
        return np.float32 if self.dtype == np.complex64 else np.float64


def nm1_range(n0: int, n1: int, cell: float) -> tuple[float, float]:
    """(min, max) of n - 1 over the image's pixel centres (the centre pixel has n - 1 = 0)."""
    r2 = (n0 / 2 * cell) ** 2 + (n1 / 2 * cell) ** 2
    if r2 >= 1.0:
        raise InputError("the image is larger than the sky hemisphere (size x cell too big)")
    return -r2 / (math.sqrt(1.0 - r2) + 1.0), 0.0


def make_plan(n0: int, n1: int, cell: float, wmin: float, wmax: float, epsilon: float,
              precision: str, wgridding: bool) -> Plan:
    """The plan for an (n0, n1) image and visibilities with wmin <= w <= wmax (wavelengths,
    after the Hermitian flip, so wmin >= 0)."""
    kernel = gpu_kernels.choose_kernel(epsilon, 3 if wgridding else 2, precision)
    dtype = np.complex64 if precision == "single" else np.complex128
    nu0, nu1 = (max(good_size(math.ceil(gpu_kernels.SIGMA * n)), 2 * kernel.support)
                for n in (n0, n1))
    if not wgridding:
        return Plan(n0, n1, cell, nu0, nu1, kernel, False, 0.0, 0.0, 1, 0.0, dtype)
    lo, hi = nm1_range(n0, n1, cell)
    nshift = -0.5 * (lo + hi)
    dw = 0.5 / gpu_kernels.SIGMA / max(abs(lo + nshift), abs(hi + nshift))
    nplanes = int((wmax - wmin) / dw + kernel.support)
    w_first = 0.5 * (wmin + wmax) - 0.5 * (nplanes - 1) * dw
    return Plan(n0, n1, cell, nu0, nu1, kernel, True, w_first, dw, nplanes, nshift, dtype)


def pixel_nm1(xp: ModuleType, plan: Plan) -> Any:
    """n - 1 of every pixel, (n0, n1) float64 on ``xp``."""
    y = (np.arange(plan.n0) - plan.n0 // 2) * plan.cell
    x = (np.arange(plan.n1) - plan.n1 // 2) * plan.cell
    r2 = xp.asarray(np.add.outer(y * y, x * x))
    return -r2 / (xp.sqrt(1.0 - r2) + 1.0)


def corrections(xp: ModuleType, plan: Plan, divide_by_n: bool) -> Any:
    """What the image is divided by: (n0, n1) float64 on ``xp`` (kernel transforms, n)."""
    k0 = xp.asarray((np.arange(plan.n0) - plan.n0 // 2) / plan.nu0)
    k1 = xp.asarray((np.arange(plan.n1) - plan.n1 // 2) / plan.nu1)
    corr = gpu_kernels.fourier(k0, plan.kernel, xp)[:, None] * \
        gpu_kernels.fourier(k1, plan.kernel, xp)[None, :]
    if plan.wgridding:
        nm1 = pixel_nm1(xp, plan)
        corr = corr * gpu_kernels.fourier((nm1 + plan.nshift) * plan.dw, plan.kernel, xp)
        if divide_by_n:
            corr = corr * (nm1 + 1.0)
    return corr

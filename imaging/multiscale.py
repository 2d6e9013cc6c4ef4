"""Multiscale CLEAN (Cornwell 2008), in WSClean's flavour (Offringa & Smirnov 2017).

Scales are kernel widths in pixels (0 = point); each kernel ``K_s`` is WSClean's tapered
paraboloid (``components.scale_kernel``, sum 1). One iteration of the outer loop:

1. convolve the residual ``R`` with every kernel (FFT): ``R_s = R ⊛ K_s``; per scale, find the
   largest ``|R_s|`` at least the kernel radius from the edges; pick the scale with the largest
   ``|R_s| x bias_s``, where ``bias_s = scale_bias ** -log2(s / s_ref)`` (1 for scale 0) and
   ``s_ref`` = 2 x the fitted beam's major FWHM in pixels (WSClean's first automatic scale), so
   a lower scale_bias favours larger scales, exactly as WSClean's -multiscale-scale-bias;
2. sub-minor loop on that scale (``clark.list_clean`` on the pixels of ``R_s`` above
   ``(1 - multiscale_gain) x`` its peak): amplitude ``gain x R_s(p) / B_ss(0)`` with
   ``B_ss = psf ⊛ K_s ⊛ K_s``, subtracting ``amplitude x B_ss`` from the listed pixels;
3. subtract the new components from ``R`` exactly: ``R -= (sum a δ_p ⊛ K_s) ⊛ psf``.

The stop rules apply to the residual's own peak ``max |R|``, as for the other algorithms.
Scales of half the image or more, and scales the PSF has no positive response to
(``B_ss(0) <= 0``), are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from htclean.imaging.beam import fit_clean_beam
from htclean.imaging.clark import list_clean, select
from htclean.imaging.clean import (
    CleanParams,
    MinorCycleResult,
    PSFSubtractor,
    StopRule,
    fftconvolve,
    find_peak,
    pick_scale,
    result,
)
from htclean.imaging.components import ComponentList, scale_kernel
from htclean.imaging.convolver import Convolver
from htclean.imaging.errors import InputError


@dataclass(frozen=True)
class Scale:
    """One scale: ``scale`` (pixels), its ``kernel`` (n, n), ``radius`` n // 2, ``bias``
    factor and ``psf2``: psf ⊛ K ⊛ K on the PSF's grid and dtype (``clark.list_clean``'s)."""

    scale: float
    kernel: np.ndarray
    radius: int
    bias: float
    psf2: np.ndarray


def beam_pixels(psf: np.ndarray) -> float:
    """Major FWHM of the fitted clean beam in pixels, at least 1 (a main lobe narrower than a
    pixel cannot be fitted and counts as 1)."""
    try:
        return max(1.0, fit_clean_beam(psf, 1.0).bmaj)
    except InputError:
        return 1.0


def prepare_scales(psf: np.ndarray, params: CleanParams, shape: tuple[int, int]) -> list[Scale]:
    """The usable scales of ``params.scales`` for a ``shape`` residual, smallest first."""
    usable = [s for s in params.scales if s < 0.5 * min(shape)]
    sref = 2.0 * beam_pixels(psf) if len(usable) > 1 else 1.0
    out = []
    for s in usable:
        k = scale_kernel(s)
        if s == 0.0:
            psf2 = psf
        else:
            psf2 = fftconvolve(psf.astype(np.float64), fftconvolve(k, k), mode="same")
        if psf2[psf.shape[0] // 2, psf.shape[1] // 2] <= 0.0:
            continue
        bias = 1.0 if s == 0.0 or len(usable) < 2 else params.scale_bias ** -math.log2(s / sref)
        out.append(Scale(s, k, k.shape[0] // 2, bias, psf2.astype(psf.dtype, copy=False)))
    if not out:
        raise InputError(f"none of the multiscale scales {list(params.scales)} fits a "
                         f"{shape[1]}x{shape[0]} image with this PSF")
    return out


def run(residual: np.ndarray, psf: np.ndarray, params: CleanParams, *, iterations_done: int,
        threshold: float) -> MinorCycleResult:
    """Multiscale minor cycle on ``residual`` (modified in place and returned in the result);
    ``psf`` normalised to 1 at its centre (``clean.prepare`` makes both)."""
    ny, nx = residual.shape
    scales = prepare_scales(psf, params, residual.shape)
    extended = [sc for sc in scales if sc.scale > 0]
    conv = Convolver(residual.shape, [sc.kernel for sc in extended], dtype=residual.dtype,
                     threads=params.threads) if extended else None
    subtract = PSFSubtractor(residual.shape, psf, threads=params.threads)
    y, x, v = find_peak(residual)
    peak_start = abs(v)
    stop = StopRule(params, peak_start, iterations_done, threshold)
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]] = []
    done = 0
    while (reason := stop.reason(abs(v), done)) is None:
        smoothed = iter(conv.convolve_all(residual) if conv else [])
        score, sc, image, at, pv = pick_scale(scales, residual, smoothed, find_peak, ny, nx)
        if score == 0.0:
            reason = "no-peak"
            break
        limit = (1.0 - params.multiscale_gain) * abs(pv)
        if sc.scale == 0:
            limit = max(limit, stop.floor())
        flat, limit = select(image, limit, border=sc.radius)
        if flat.size == 0:  # more than MAX_LIST pixels tie with the peak
            flat, limit = np.array([at]), 0.0
        values = image.reshape(-1)[flat].astype(np.float64)
        picks, a = list_clean(values, flat, nx, sc.psf2, params.gain, limit, stop.budget - done)
        cy, cx = np.divmod(flat[picks], nx)
        subtract(residual, cy, cx, a, scale=sc.scale)
        found.append((cx, cy, a, sc.scale))
        done += picks.size
        y, x, v = find_peak(residual)
    comps = ComponentList.from_arrays(
        np.concatenate([f[0] for f in found] or [np.zeros(0, np.int64)]),
        np.concatenate([f[1] for f in found] or [np.zeros(0, np.int64)]),
        np.concatenate([f[2] for f in found] or [np.zeros(0)]),
        np.concatenate([np.full(f[0].size, f[3]) for f in found] or [np.zeros(0)]), nx, ny)
    return result(comps, residual, done, peak_start, abs(v), reason)

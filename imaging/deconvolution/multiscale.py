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

Of Taylor terms (``run_terms``: MS-MFS, Rau & Cornwell 2011, in WSClean's flavour), per scale
the Taylor PSFs are ``B_q ⊛ K_s ⊛ K_s`` and the scale's Hessian ``H^s_ij = (B_{i+j} ⊛ K_s ⊛
K_s)(0)``; step 1 smooths every Taylor residual and takes, per scale, the largest
``bias_s sqrt(H^s_00 a.R)`` with ``a = (H^s)^-1 R_s`` (for nterms 1: ``bias |R_s|``); step 2
is hogbom.py's MT-MFS cycle on the smoothed residuals with the scale's PSFs and Hessian, on
the list of the pixels above ``(1 - multiscale_gain)`` x its starting peak
(mtmfs_list.list_clean_terms); step 3 subtracts with mtmfs_list.TermSubtractor. The stop
rules apply to max |R_0|; scales whose Hessian is not positive definite are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from htclean.imaging.beams.beam import fit_clean_beam
from htclean.imaging.deconvolution.clark import list_clean, select
from htclean.imaging.deconvolution.clean import (
    CleanParams,
    MinorCycleResult,
    PSFSubtractor,
    StopRule,
    fftconvolve,
    find_peak,
    pick_scale,
    result,
)
from htclean.imaging.deconvolution.components import ComponentList, scale_kernel
from htclean.imaging.deconvolution.convolver import Convolver
from htclean.imaging.deconvolution.model import TaylorComponents
from htclean.imaging.deconvolution.mtmfs_list import (
    TermSubtractor,
    interleaved,
    list_clean_terms,
    scores,
)
from htclean.imaging.errors import InputError
from htclean.imaging.gridding.taylor import hessian


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


@dataclass(frozen=True, eq=False)
class TermScale:
    """One scale: ``scale`` (pixels), ``kernel``, ``radius`` (kernel half width), ``bias``,
    ``psfs`` (2 nterms - 1, pny, pnx) = B_q ⊛ K ⊛ K, ``h_inv`` its inverse Hessian, ``h00``
    its Hessian's first element (the scale's PSF 0 peak)."""

    scale: float
    kernel: np.ndarray
    radius: int
    bias: float
    psfs: np.ndarray
    h_inv: np.ndarray
    h00: float


def prepare_term_scales(psf: np.ndarray, params: CleanParams,
                        shape: tuple[int, int]) -> list[TermScale]:
    """The usable scales of ``params.scales`` for ``shape`` residuals, smallest first."""
    usable = [s for s in params.scales if s < 0.5 * min(shape)]
    sref = 2.0 * beam_pixels(psf[0]) if len(usable) > 1 else 1.0
    out = []
    for s in usable:
        k = scale_kernel(s)
        if s == 0.0:
            psfs = psf
        else:
            kk = fftconvolve(k, k)
            psfs = interleaved(np.stack([fftconvolve(p, kk, mode="same") for p in psf]))
        h = hessian(psfs)
        if np.linalg.eigvalsh(h).min() <= 1e-12 * max(abs(h[0, 0]), 1e-300):
            continue
        bias = 1.0 if s == 0.0 or len(usable) < 2 else params.scale_bias ** -math.log2(s / sref)
        out.append(TermScale(s, k, k.shape[0] // 2, bias, psfs, np.linalg.inv(h),
                             float(h[0, 0])))
    if not out:
        raise InputError(f"none of the multiscale scales {list(params.scales)} fits a "
                         f"{shape[1]}x{shape[0]} image with these Taylor PSFs")
    return out


def _term_peak(sc: TermScale, residuals: np.ndarray) -> tuple[float, int]:
    """(bias-free peak value sqrt(H00 a.R), flat index) inside the scale's border."""
    nterms, ny, nx = residuals.shape
    r = sc.radius
    inner = scores(sc.h_inv, residuals[:, r:ny - r, r:nx - r])
    k = int(inner.argmax())
    y, x = divmod(k, nx - 2 * r)
    return math.sqrt(max(0.0, sc.h00 * float(inner.flat[k]))), (y + r) * nx + x + r


def _sub_minor(sc: TermScale, smoothed: np.ndarray, gain: float, limit: float,
               budget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Högbom MT-MFS on one scale's smoothed residuals down to ``limit`` (on sqrt(H00 a.R)),
    on the list of the pixels above it inside the scale's border (mtmfs_list.py): (xs, ys,
    amplitudes (k, nterms)) in the order taken."""
    nterms, ny, nx = smoothed.shape
    flat, level = select(scores(sc.h_inv, smoothed), limit * limit / sc.h00, border=sc.radius)
    values = smoothed.reshape(nterms, -1)[:, flat]
    picks, amps = list_clean_terms(values, flat, nx, sc.psfs, sc.h_inv, gain, level, budget)
    ys, xs = np.divmod(flat[picks], nx)
    return xs, ys, amps


def run_terms(res: np.ndarray, psf: np.ndarray, params: CleanParams,
              stop: StopRule) -> tuple[TaylorComponents, int, str]:
    """The MS-MFS loop on ``res`` (nterms, ny, nx), modified in place, with normalised Taylor
    PSFs ``psf``: (components, count, stop reason)."""
    nterms, ny, nx = res.shape
    scales = prepare_term_scales(psf, params, (ny, nx))
    extended = [sc for sc in scales if sc.scale > 0]
    smooth = Convolver((ny, nx), [sc.kernel for sc in extended],
                       threads=params.threads) if extended else None
    subtract = TermSubtractor((ny, nx), psf, threads=params.threads)
    found: list[TaylorComponents] = []
    done = 0
    while (reason := stop.reason(float(np.abs(res[0]).max()), done)) is None:
        hats = [smooth.forward(r) for r in res] if smooth else []
        best = None
        for sc in scales:
            if sc.scale == 0:
                image = res
            else:
                which = extended.index(sc)
                image = np.stack([smooth.apply(h, which) for h in hats])
            value, at = _term_peak(sc, image)
            if best is None or value * sc.bias > best[0]:
                best = (value * sc.bias, sc, image, value, at)
        score_, sc, image, value, at = best
        if score_ == 0.0:
            reason = "no-peak"
            break
        limit = (1.0 - params.multiscale_gain) * value
        if sc.scale == 0:
            limit = max(limit, stop.floor())
        xs, ys, a = _sub_minor(sc, image, params.gain, limit, stop.budget - done)
        if not len(a):  # the floor is above this scale's peak: take one component anyway
            ys, xs = np.divmod(np.array([at]), nx)
            a = params.gain * (sc.h_inv @ image[:, ys, xs]).T
        subtract(res, ys, xs, a, scale=sc.scale)
        found.append(TaylorComponents.from_arrays(xs, ys, a, nx, ny, np.full(len(xs), sc.scale)))
        done += len(a)
    comps = TaylorComponents.from_arrays([], [], np.zeros((0, nterms)), nx, ny)
    for c in found:
        comps = comps.merge(c)
    return comps, done, reason

"""Multi-scale multi-term MFS (Rau & Cornwell 2011, the MS-MFS algorithm) in WSClean's flavour.

Scales and their bias are multiscale.py's: kernels ``K_s`` (components.scale_kernel), bias
``scale_bias ** -log2(s / s_ref)`` with s_ref twice the fitted beam FWHM in pixels (1 for scale
0). Per scale, the Taylor PSFs seen by a component of that scale in the scale-smoothed residuals
are ``B_q ⊛ K_s ⊛ K_s`` and the scale's Hessian ``H^s_ij = (B_{i+j} ⊛ K_s ⊛ K_s)(0)``. One
iteration of the outer loop:

1. smooth every Taylor residual with every kernel (FFT): ``R_{t,s} = R_t ⊛ K_s``; per scale,
   at least the kernel radius from the edges, the largest ``bias_s sqrt(H^s_00 a.R)`` with
   ``a = (H^s)^-1 R_s`` (for nterms 1: multiscale.py's ``bias |R_s|``); pick that scale;
2. sub-minor loop on it: the MT-MFS Högbom of mtmfs.py on the smoothed residuals with the
   scale's PSFs and Hessian, down to ``(1 - multiscale_gain)`` x its starting peak (for scale
   0, at least the minor cycle's floor), within the niter budget, on the list of the pixels
   above that level (mtmfs_list.list_clean_terms: exact there);
3. subtract the new components from the residuals exactly (mtmfs_list.TermSubtractor,
   zero-padded FFT): ``R_i -= sum_j (sum_p a_j(p) δ_p ⊛ K_s) ⊛ B_{i+j}``.

The stop rules (clean.StopRule) apply to max |R_0| before each outer iteration. Scales of half
the image or more, and scales whose Hessian is not positive definite, are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from htclean.imaging.clark import select
from htclean.imaging.clean import CleanParams, StopRule, fftconvolve
from htclean.imaging.components import scale_kernel
from htclean.imaging.convolver import Convolver
from htclean.imaging.errors import InputError
from htclean.imaging.mtmfs import TaylorComponents
from htclean.imaging.mtmfs_list import TermSubtractor, interleaved, list_clean_terms
from htclean.imaging.mtmfs_list import scores as score
from htclean.imaging.multiscale import beam_pixels
from htclean.imaging.taylor import hessian


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


def prepare_scales(psf: np.ndarray, params: CleanParams, shape: tuple[int, int]) -> list[TermScale]:
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


def _peak(sc: TermScale, residuals: np.ndarray) -> tuple[float, int]:
    """(bias-free peak value sqrt(H00 a.R), flat index) inside the scale's border."""
    nterms, ny, nx = residuals.shape
    r = sc.radius
    inner = score(sc.h_inv, residuals[:, r:ny - r, r:nx - r])
    k = int(inner.argmax())
    y, x = divmod(k, nx - 2 * r)
    return math.sqrt(max(0.0, sc.h00 * float(inner.flat[k]))), (y + r) * nx + x + r


def _sub_minor(sc: TermScale, smoothed: np.ndarray, gain: float, limit: float,
               budget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Högbom MT-MFS on one scale's smoothed residuals down to ``limit`` (on sqrt(H00 a.R)),
    on the list of the pixels above it inside the scale's border (mtmfs_list.py): (xs, ys,
    amplitudes (k, nterms)) in the order taken."""
    nterms, ny, nx = smoothed.shape
    flat, level = select(score(sc.h_inv, smoothed), limit * limit / sc.h00, border=sc.radius)
    values = smoothed.reshape(nterms, -1)[:, flat]
    picks, amps = list_clean_terms(values, flat, nx, sc.psfs, sc.h_inv, gain, level, budget)
    ys, xs = np.divmod(flat[picks], nx)
    return xs, ys, amps


def run(res: np.ndarray, psf: np.ndarray, params: CleanParams,
        stop: StopRule) -> tuple[TaylorComponents, int, str]:
    """The MS-MFS loop on ``res`` (nterms, ny, nx), modified in place, with normalised Taylor
    PSFs ``psf``: (components, count, stop reason)."""
    nterms, ny, nx = res.shape
    scales = prepare_scales(psf, params, (ny, nx))
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
            value, at = _peak(sc, image)
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

"""The restored image: the CLEAN model convolved with the clean beam, plus the residual.

Of nterms > 1 Taylor terms (``restore_terms``): ``tt_t = model_t * beam + (H^-1 R)_t``
(residuals in coefficient units, as CASA's mtmfs restores); the spectral index is
``alpha = tt1 / tt0`` where tt0 is above a cut, with its error from the residual noise
``d alpha = sqrt(s1^2 + alpha^2 s0^2) / tt0`` (s_t the robust sigma of (H^-1 R)_t).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from htclean.imaging.beams.beam import Beam
from htclean.imaging.deconvolution.components import ComponentList, add_stamps
from htclean.imaging.deconvolution.convolver import Convolver
from htclean.imaging.deconvolution.model import TaylorComponents
from htclean.imaging.errors import InputError
from htclean.imaging.gridding.taylor import coefficients, hessian, inverse, prepare
from htclean.imaging.noise import robust_sigma

DIRECT_FACTOR = 20  # direct stamps when model pixels x beam pixels < this x image pixels


def restore(components: ComponentList, residual: Any, beam: Beam, cell: float, *,
            threads: int = 0, dtype: Any = np.float64) -> np.ndarray:
    """``components.to_image() ⊛ beam + residual``: ``(ny, nx)`` ``dtype`` in Jy/beam
    (float32, as FITS stores it, halves the memory of a large image).

    ``residual`` ``(ny, nx)`` Jy/beam matching the component list's image size; ``beam`` the
    clean beam (peak 1, so a model in Jy/pixel becomes Jy/beam); ``cell`` the pixel size in
    radians. A sparse model is stamped pixel by pixel (a point component of flux F restores to
    exactly F at its pixel); a dense one is convolved by zero-padded FFT.
    """
    res = np.asarray(residual)
    if res.ndim != 2 or res.shape != (components.ny, components.nx):
        raise InputError(f"residual shape {res.shape} does not match the components' image "
                         f"({components.ny}, {components.nx})")
    if res.dtype.kind not in "iuf":
        raise InputError(f"residual must be real numbers, got {res.dtype}")
    if not (np.isfinite(cell) and cell > 0):
        raise InputError(f"cell must be a positive angle in radians, got {cell!r}")
    out = res.astype(dtype, copy=True)
    if len(components) == 0:
        return out
    kernel = beam.kernel(cell, limit=res.shape)
    model = components.to_image(dtype)
    ys, xs = np.nonzero(model)
    if ys.size * kernel.size < DIRECT_FACTOR * model.size:
        add_stamps(out, ys, xs, model[ys, xs], kernel)
    else:
        out += Convolver(res.shape, [kernel], dtype=dtype, threads=threads).convolve(model)
    return out


def restore_terms(components: TaylorComponents, residuals: Any, psfs: Any, beam: Beam,
                  cell: float, *, threads: int = 0) -> np.ndarray:
    """Restored Taylor images (nterms, ny, nx) Jy/beam: ``model_t * beam + (H^-1 R)_t``."""
    res, psf = prepare(residuals, psfs)
    if res.shape[0] != components.nterms:
        raise InputError(f"{res.shape[0]} residual terms for {components.nterms}-term components")
    coeff = coefficients(res, inverse(hessian(psf)))
    return np.stack([restore(components.term(t), coeff[t], beam, cell, threads=threads)
                     for t in range(res.shape[0])])


def residual_sigma(residuals: Any, psfs: Any) -> np.ndarray:
    """Robust noise (nterms,) of the residuals in coefficient units, ``(H^-1 R)_t``."""
    res, psf = prepare(residuals, psfs)
    coeff = coefficients(res, inverse(hessian(psf)))
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

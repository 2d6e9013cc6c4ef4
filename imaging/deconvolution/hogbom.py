"""Högbom CLEAN as WSClean runs it: the largest |residual|, gain x it subtracted as the
shifted PSF, repeated, on the pixels that can still be chosen.

A component is only ever taken where |residual| is above the cycle's floor (the threshold and
the mgain level, ``StopRule.floor``), so the cycle runs on the list of those pixels
(``clark.list_clean``: exact there, with the whole PSF), then subtracts its components from
the whole residual at once (shifted PSFs for a few, an FFT convolution for many) and starts
again if a pixel outside the list rose above the floor meanwhile. This is Clark's cycle with
no exterior-sidelobe limit, as WSClean's Högbom with its sub-minor loop: the same components
as the textbook loop over every pixel, in the same order, except when a pixel outside the
list rises above the list's limit in the middle of a list (it is taken in the next list).
Each iteration costs the list's length, not the image's: at 4096² with a 2x PSF, the deep last
cycle of the 50M benchmark (37 000 components, as many as WSClean's) took 1005 CPU s over
every pixel, 21 CPU s on the list.

Of Taylor terms (``run_terms``, multi-term MFS, Rau & Cornwell 2011): with the Hessian
``H_ij = B_{i+j}(0)`` (taylor.hessian) of the Taylor PSFs ``B_q``, each iteration solves
``H a(p) = R(p)`` (``a = H^-1 R``), takes the pixel where the chi-square reduction ``a . R`` is
largest (for nterms 1: the largest |R_0|, the Högbom peak; ties to the lowest flat index), adds
``gain x a`` to its Taylor coefficients and subtracts ``gain sum_j a_j B_{i+j}`` from every
residual ``R_i``; on lists of candidates as above (mtmfs_list.py), exact there.
"""

from __future__ import annotations

import numpy as np

from htclean.imaging.deconvolution.clark import listed_clean, select
from htclean.imaging.deconvolution.clean import CleanParams, MinorCycleResult, StopRule
from htclean.imaging.deconvolution.model import TaylorComponents
from htclean.imaging.deconvolution.mtmfs_list import TermSubtractor, list_clean_terms, scores
from htclean.imaging.gridding.taylor import hessian, inverse


def run(residual: np.ndarray, psf: np.ndarray, params: CleanParams, *, iterations_done: int,
        threshold: float) -> MinorCycleResult:
    """Högbom minor cycle on ``residual`` (modified in place and returned in the result);
    ``psf`` normalised to 1 at its centre (``clean.prepare`` makes both)."""
    return listed_clean(residual, psf, params, iterations_done=iterations_done,
                        threshold=threshold, ext=0.0)


def run_terms(res: np.ndarray, psf: np.ndarray, params: CleanParams,
              stop: StopRule) -> tuple[TaylorComponents, int, str]:
    """The Högbom MT-MFS cycle on ``res`` (nterms, ny, nx) float64, in place, with normalised
    Taylor PSFs ``psf`` (taylor.prepare): (components, count, stop reason)."""
    nterms, ny, nx = res.shape
    xs, ys, amps, done, reason = _terms(res, psf, inverse(hessian(psf)), params, stop)
    return TaylorComponents.from_arrays(xs, ys, amps, nx, ny), done, reason


def _terms(res: np.ndarray, psf: np.ndarray, h_inv: np.ndarray, params: CleanParams,
           stop: StopRule) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, str]:
    """The MT-MFS Högbom cycle on ``res`` (nterms, ny, nx) float64, in place, with Taylor PSFs
    ``psf`` (PSF 0 normalised) and their inverse Hessian: (xs, ys, amplitudes (k, nterms),
    count, stop reason), in the order taken."""
    nterms, ny, nx = res.shape
    floor_score = stop.floor() ** 2 / _h00(psf)  # s >= R_0^2 / H_00 everywhere
    subtract_all = TermSubtractor((ny, nx), psf, threads=params.threads)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    amps: list[np.ndarray] = []
    done = 0
    while (reason := stop.reason(float(np.abs(res[0]).max()), done)) is None:
        flat, limit = select(scores(h_inv, res), floor_score)
        if flat.size == 0:  # more than clark.MAX_LIST pixels tie with the peak
            flat, limit = np.array([int(scores(h_inv, res).argmax())]), 0.0
        values = res.reshape(nterms, -1)[:, flat]
        picks, a = list_clean_terms(values, flat, nx, psf, h_inv, params.gain, limit,
                                    stop.budget - done, stop.floor())
        if picks.size == 0:  # a raised limit left max |R_0| out of the list: its top score
            picks, a = list_clean_terms(values, flat, nx, psf, h_inv, params.gain, 0.0, 1)
        cy, cx = np.divmod(flat[picks], nx)
        subtract_all(res, cy, cx, a)
        xs.append(cx)
        ys.append(cy)
        amps.append(a)
        done += picks.size
    return (np.concatenate(xs or [np.zeros(0, np.int64)]),
            np.concatenate(ys or [np.zeros(0, np.int64)]),
            np.concatenate(amps or [np.zeros((0, nterms))]), done, reason)


def _h00(psf: np.ndarray) -> float:
    """The Hessian's first element: PSF 0 at its centre."""
    return float(psf[0, psf.shape[1] // 2, psf.shape[2] // 2])

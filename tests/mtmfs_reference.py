"""The straightforward multi-term minor cycles, over every pixel at every iteration: the
reference the listed cycles (imaging/deconvolution/mtmfs_list.py) must equal."""

from __future__ import annotations

import math

import numpy as np

from htclean.imaging.deconvolution.clean import CleanParams, StopRule
from htclean.imaging.deconvolution.model import TaylorComponents
from htclean.imaging.deconvolution.mtmfs_list import scores as score
from htclean.imaging.deconvolution.mtmfs_list import subtract
from htclean.imaging.gridding.taylor import hessian, inverse


def hogbom(res: np.ndarray, psf: np.ndarray, params: CleanParams,
           stop: StopRule) -> tuple[TaylorComponents, int, str]:
    """hogbom.run_terms's contract: the whole image solved and searched, every residual updated
    with the shifted PSFs at every iteration."""
    nterms, ny, nx = res.shape
    h_inv = inverse(hessian(psf))
    scores = score(h_inv, res)
    xs: list[int] = []
    ys: list[int] = []
    amps: list[np.ndarray] = []
    while (reason := stop.reason(float(np.abs(res[0]).max()), len(amps))) is None:
        y, x = divmod(int(scores.argmax()), nx)
        a = params.gain * (h_inv @ res[:, y, x])
        subtract(res, psf, y, x, a)
        scores = score(h_inv, res)
        xs.append(x)
        ys.append(y)
        amps.append(a)
    comps = TaylorComponents.from_arrays(xs, ys, np.array(amps).reshape(-1, nterms), nx, ny)
    return comps, len(amps), reason


def sub_minor(sc, smoothed: np.ndarray, gain: float, limit: float,
              budget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """multiscale._sub_minor's contract over every pixel inside the scale's border:
    (xs, ys, amplitudes (k, nterms)); ``smoothed`` is not modified."""
    smoothed = smoothed.copy()
    nterms, ny, nx = smoothed.shape
    r = sc.radius
    scores = np.full((ny, nx), -1.0)
    xs: list[int] = []
    ys: list[int] = []
    amps: list[np.ndarray] = []
    while len(amps) < budget:
        scores[r:ny - r, r:nx - r] = score(sc.h_inv, smoothed[:, r:ny - r, r:nx - r])
        k = int(scores.argmax())
        if math.sqrt(max(0.0, sc.h00 * float(scores.flat[k]))) <= limit:
            break
        y, x = divmod(k, nx)
        a = gain * (sc.h_inv @ smoothed[:, y, x])
        subtract(smoothed, sc.psfs, y, x, a)
        xs.append(x)
        ys.append(y)
        amps.append(a)
    return (np.array(xs, np.int64), np.array(ys, np.int64),
            np.array(amps).reshape(-1, nterms))

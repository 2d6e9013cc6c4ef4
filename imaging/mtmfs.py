"""Multi-term MFS deconvolution (Rau & Cornwell 2011, A&A 532, A71): minor cycle and products.

Inputs are the normalised Taylor-weighted residuals ``R_t`` (nterms, ny, nx) and PSFs ``B_q``
(2 nterms - 1, pny, pnx) of taylor.py (PSF 0 peaks at 1 at (pny // 2, pnx // 2)). With the
Hessian ``H_ij = B_{i+j}(0)`` (taylor.hessian), each iteration of the Högbom MT-MFS minor cycle

1. solves ``H a(p) = R(p)`` at every pixel p (one inverse, ``a = H^-1 R``) and takes the pixel
   where the chi-square reduction ``a . R`` is largest (for nterms 1: the largest |R_0|, the
   Högbom peak); ties go to the lowest flat index;
2. adds ``gain x a`` to the Taylor coefficients of the component at p;
3. subtracts it from every residual: ``R_i -= gain sum_j a_j B_{i+j}`` shifted to p.

It runs as hogbom.py's does (mtmfs_list.py): on the list of the pixels that can still be
chosen, exact there, with the whole images updated once per list by FFT convolutions.

The stop rules are the minor cycle's (clean.StopRule) on the tt0 residual's peak ``max |R_0|``:
no-peak, threshold, niter, mgain. The model is a list of point components, each with its
Taylor coefficients (``TaylorComponents``); restored images are ``tt_t = model_t * beam +
(H^-1 R)_t`` (residuals in coefficient units, as CASA's mtmfs restores); the spectral index is
``alpha = tt1 / tt0`` where tt0 is above a cut, with its error from the residual noise
``d alpha = sqrt(s1^2 + alpha^2 s0^2) / tt0`` (s_t the robust sigma of (H^-1 R)_t).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from htclean.imaging import mtmfs_list
from htclean.imaging.beam import Beam
from htclean.imaging.clean import CleanParams, StopRule
from htclean.imaging.components import ComponentList
from htclean.imaging.errors import InputError
from htclean.imaging.mtmfs_list import scores as score  # noqa: F401 (the API's names)
from htclean.imaging.mtmfs_list import subtract  # noqa: F401
from htclean.imaging.noise import robust_sigma
from htclean.imaging.restore import restore
from htclean.imaging.taylor import check_nterms, hessian

TAYLOR_FORMAT = "htclean-taylor-components"


@dataclass(frozen=True, eq=False)
class TaylorComponents:
    """Components with Taylor coefficients: ``x``, ``y`` (int64 pixels), ``scale`` (float64
    pixels, 0 = point, components.scale_kernel otherwise) and ``flux`` (ncomp, nterms) float64
    (Jy at the reference frequency, then the tt1, tt2 ... coefficients), on an ``(ny, nx)``
    image; one entry per (x, y, scale), sorted by (scale, y, x)."""

    x: np.ndarray
    y: np.ndarray
    scale: np.ndarray
    flux: np.ndarray
    nx: int
    ny: int

    @classmethod
    def from_arrays(cls, x: Any, y: Any, flux: Any, nx: int, ny: int,
                    scale: Any = None) -> TaylorComponents:
        """Merge components per (x, y, scale) (coefficients summed); scale None: points."""
        x, y = np.asarray(x, np.int64).reshape(-1), np.asarray(y, np.int64).reshape(-1)
        f = np.asarray(flux, np.float64)
        f = f.reshape(len(x), -1) if f.size else f.reshape(0, f.shape[-1] if f.ndim > 1 else 1)
        sc = np.zeros(len(x)) if scale is None else np.asarray(scale, np.float64).reshape(-1)
        if ((x < 0) | (x >= nx) | (y < 0) | (y >= ny)).any() or sc.shape != x.shape:
            raise InputError(f"Taylor components must lie inside the {nx}x{ny} image, one "
                             "scale each")
        scales, sidx = np.unique(sc, return_inverse=True)
        key = (sidx.ravel() * ny + y) * nx + x
        flat, where = np.unique(key, return_inverse=True)
        total = np.zeros((flat.size, f.shape[1]))
        np.add.at(total, where.ravel(), f)
        return cls(flat % nx, (flat // nx) % ny, scales[flat // (nx * ny)], total, int(nx),
                   int(ny))

    @property
    def nterms(self) -> int:
        return self.flux.shape[1]

    def __len__(self) -> int:
        return len(self.x)

    def merge(self, other: TaylorComponents) -> TaylorComponents:
        """Both lists as one (coefficients of a shared (x, y, scale) summed)."""
        return TaylorComponents.from_arrays(
            np.concatenate([self.x, other.x]), np.concatenate([self.y, other.y]),
            np.concatenate([self.flux, other.flux]), self.nx, self.ny,
            np.concatenate([self.scale, other.scale]))

    def term(self, t: int) -> ComponentList:
        """The components of Taylor term ``t`` as a ComponentList (for restore, FITS)."""
        return ComponentList.from_arrays(self.x, self.y, self.flux[:, t], self.scale, self.nx,
                                         self.ny)

    def images(self) -> np.ndarray:
        """(nterms, ny, nx) float64 model images in Jy/pixel."""
        return np.stack([self.term(t).to_image() for t in range(self.nterms)])

    def to_dict(self, ref_freq: float) -> dict:
        """JSON-ready form; ``terms[t]`` lists the tt``t`` coefficients, about ``ref_freq`` Hz."""
        return {"format": TAYLOR_FORMAT, "version": 1, "nx": self.nx, "ny": self.ny,
                "nterms": self.nterms, "ref_freq": float(ref_freq), "count": len(self),
                "x": self.x.tolist(), "y": self.y.tolist(), "scale": self.scale.tolist(),
                "terms": self.flux.T.tolist()}

    @classmethod
    def from_dict(cls, data: Any, source: str = "Taylor components"
                  ) -> tuple[TaylorComponents, float]:
        """(components, ref_freq) of a ``to_dict`` document; InputError naming ``source``."""
        if not isinstance(data, dict) or data.get("format") != TAYLOR_FORMAT \
                or data.get("version") != 1:
            raise InputError(f"{source}: not an htclean Taylor component list "
                             f"({TAYLOR_FORMAT!r} version 1)")
        try:
            terms = np.array(data["terms"], dtype=np.float64).reshape(int(data["nterms"]), -1)
            comps = cls.from_arrays(np.array(data["x"], dtype=np.int64),
                                    np.array(data["y"], dtype=np.int64), terms.T,
                                    int(data["nx"]), int(data["ny"]),
                                    np.array(data["scale"], dtype=np.float64))
            ref = float(data["ref_freq"])
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise InputError(f"{source}: malformed Taylor component list ({exc})") from None
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from None
        if data.get("count") != len(comps) or not (math.isfinite(ref) and ref > 0) \
                or not np.isfinite(comps.flux).all():
            raise InputError(f"{source}: count, ref_freq or coefficients are wrong "
                             "(truncated or edited file?)")
        return comps, ref

    def write(self, path: str | os.PathLike, ref_freq: float) -> None:
        """Write the JSON file atomically (temporary name, then rename)."""
        p = Path(path)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(ref_freq), separators=(",", ":")) + "\n")
        os.replace(tmp, p)

    @classmethod
    def read(cls, path: str | os.PathLike) -> tuple[TaylorComponents, float]:
        """(components, ref_freq) of a file written by ``write``; InputError naming it."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: cannot read Taylor components: {exc}") from None
        return cls.from_dict(data, str(path))


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
    pnx) normalised so PSF 0 is 1 at its centre (stored pixel by pixel:
    mtmfs_list.interleaved). InputError says what is wrong."""
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
    return r, mtmfs_list.interleaved(p, centre)


def inverse(h: np.ndarray) -> np.ndarray:
    """H^-1, or InputError when H is not positive definite."""
    if np.linalg.eigvalsh(h).min() <= 1e-12 * abs(h[0, 0]):
        raise InputError("the Taylor Hessian is singular: the band is too narrow (or the "
                         "reference frequency too far from it) for this many terms")
    return np.linalg.inv(h)


def coefficients(residuals: np.ndarray, h_inv: np.ndarray) -> np.ndarray:
    """``H^-1 R`` at every pixel: (nterms, ny, nx)."""
    return np.tensordot(h_inv, residuals, axes=1)


def minor_cycle(residuals: Any, psfs: Any, params: CleanParams, *, iterations_done: int,
                threshold: float) -> MTResult:
    """One MT-MFS minor cycle of ``params.algorithm`` (hogbom: the module docstring;
    multiscale: mtmfs_multiscale.py); the inputs are not modified.

    ``params``: gain, niter, mgain (and the multiscale settings); ``iterations_done``:
    components of earlier cycles; ``threshold``: absolute stop level (Jy) on max |R_0|.
    """
    if params.algorithm not in ("hogbom", "multiscale"):
        raise InputError(f"multi-term deconvolution supports the hogbom and multiscale "
                         f"algorithms, not {params.algorithm!r}")
    if not (math.isfinite(threshold) and threshold >= 0):
        raise InputError(f"threshold must be a finite flux >= 0 Jy, got {threshold!r}")
    res, psf = prepare(residuals, psfs)
    peak_start = float(np.abs(res[0]).max())
    stop = StopRule(params, peak_start, int(iterations_done), float(threshold))
    if params.algorithm == "multiscale":
        from htclean.imaging import mtmfs_multiscale

        comps, done, reason = mtmfs_multiscale.run(res, psf, params, stop)
    else:
        comps, done, reason = _hogbom(res, psf, params, stop)
    return MTResult(comps, res, done, peak_start, float(np.abs(res[0]).max()), reason)


def _hogbom(res: np.ndarray, psf: np.ndarray, params: CleanParams,
            stop: StopRule) -> tuple[TaylorComponents, int, str]:
    """The Högbom MT-MFS cycle on ``res`` (in place), on lists of candidates (mtmfs_list.py):
    (components, count, stop reason)."""
    nterms, ny, nx = res.shape
    xs, ys, amps, done, reason = mtmfs_list.hogbom(res, psf, inverse(hessian(psf)), params, stop)
    return TaylorComponents.from_arrays(xs, ys, amps, nx, ny), done, reason


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

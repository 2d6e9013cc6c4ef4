"""The VLA primary beam: Perley's polynomial model per band, on an image grid, over a band.

The model is EVLA Memo 195 (R. Perley, "Jansky Very Large Array Primary Beam
Characteristics", NRAO 2016): the power pattern at angular distance r from the pointing centre
is ``G = 1 + a2 x^2 + a4 x^4 + a6 x^6 (+ a8 x^8)`` with ``x = r[arcmin] nu[GHz]``, the
coefficients of the nearest tabulated frequency of the receiver band (vla_beam_coefficients.py
holds the tables; CASA's tclean and WSClean/EveryBeam use the same ones). The fit describes
the main lobe only: htclean's beam is the polynomial out to its first null (where it reaches 0
or stops falling) and 0 beyond, circularly symmetric (no squint, no parallactic rotation).

An MFS image sees the beam averaged over its channels with the data's weights
(``weighted_beam``: the sum over channels of w_c G(nu_c) / the sum of w_c, w_c the imaging
weight of channel c summed over rows); an MT-MFS image sees its Taylor coefficients, fitted
with the same weights (``taylor_beam``; term 0 of nterms 1 is the weighted average).
Corrected images are the image divided by the beam where the beam is at least ``pb_limit``
(tclean's ``pblimit``) and NaN elsewhere (``pb_correct``); a spectral index is corrected by
the beam's own spectral index, ``alpha - pb_tt1 / pb_tt0`` (``pb_correct_alpha``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from htclean.imaging.beams.vla_beam_coefficients import BAND_RANGES, COEFFICIENTS
from htclean.imaging.errors import InputError

ARCMIN = math.pi / (180.0 * 60.0)
RADIAL_SAMPLES = 1 << 14  # radial profile samples for images (linear interpolation error < 1e-8)


def band_of(freq: float) -> str:
    """The VLA receiver band (P, L, S, C, X, Ku, K, Ka, Q) of a frequency in Hz."""
    for band, (low, high) in BAND_RANGES.items():
        if low < freq < high:
            return band
    ranges = ", ".join(f"{b} {lo / 1e9:g}-{hi / 1e9:g}" for b, (lo, hi) in BAND_RANGES.items())
    raise InputError(f"no VLA primary-beam model at {freq / 1e9:g} GHz (bands in GHz: {ranges})")


def coefficients(freq: float, band: str | None = None) -> tuple[float, ...]:
    """(a2, a4, a6[, a8]) of the tabulated frequency of ``band`` (default: the band of
    ``freq``) nearest to ``freq`` Hz; a tie goes to the lower frequency."""
    if not (math.isfinite(freq) and freq > 0):
        raise InputError(f"primary beam needs a positive frequency, got {freq!r} Hz")
    band = band_of(freq) if band is None else band
    if band not in COEFFICIENTS:
        raise InputError(f"unknown VLA band {band!r}; expected one of {', '.join(COEFFICIENTS)}")
    rows = COEFFICIENTS[band]
    best = min(range(len(rows)), key=lambda i: (abs(rows[i][0] - freq), rows[i][0]))
    return rows[best][1]


def _polynomial(coeffs: Sequence[float], y: np.ndarray) -> np.ndarray:
    """1 + a2 y + a4 y^2 + ... for y = x^2."""
    out = np.zeros_like(y)
    for a in reversed(coeffs):
        out = (out + a) * y
    return out + 1.0


def null_x(coeffs: Sequence[float]) -> float:
    """The x = r[arcmin] nu[GHz] where the main lobe ends: the first y = x^2 > 0 at which the
    polynomial reaches 0 or its derivative does (a turning point before a zero)."""
    poly = np.polynomial.Polynomial([1.0, *coeffs])
    ends = [r.real for p in (poly, poly.deriv()) for r in p.roots()
            if abs(r.imag) < 1e-12 * max(1.0, abs(r)) and r.real > 0]
    if not ends:
        raise InputError(f"primary-beam polynomial {list(coeffs)} has no null")
    return math.sqrt(min(ends))


def radial(r: Any, freq: float, band: str | None = None) -> np.ndarray:
    """The beam power at angular distances ``r`` (radians, any shape) at ``freq`` Hz: 1 at
    r = 0, the polynomial out to its first null, 0 beyond. float64, the shape of ``r``."""
    coeffs = coefficients(freq, band)
    x = np.abs(np.asarray(r, dtype=np.float64)) / ARCMIN * (freq / 1e9)
    inside = x < null_x(coeffs)
    return np.where(inside, np.clip(_polynomial(coeffs, np.where(inside, x * x, 0.0)), 0, 1),
                    0.0)


def first_null(freq: float, band: str | None = None) -> float:
    """Angular radius (radians) of the first null of the model at ``freq`` Hz."""
    return null_x(coefficients(freq, band)) / (freq / 1e9) * ARCMIN


def half_power_radius(freq: float, band: str | None = None) -> float:
    """Radius (radians) where the model falls to 0.5 (half the FWHM), by bisection."""
    lo, hi = 0.0, first_null(freq, band)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if radial(mid, freq, band) > 0.5 else (lo, mid)
    return 0.5 * (lo + hi)


def distance(shape: tuple[int, int], cell: float,
             pointing: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Angular distance (radians) of every pixel of a ``(ny, nx)`` image of ``cell`` radians
    from the pointing centre, given as direction cosines (l, m) about the image centre
    (default: the image centre). Pixel (x, y) has l = -(x - nx//2) cell, m = (y - ny//2) cell."""
    ny, nx = shape
    if not (math.isfinite(cell) and cell > 0):
        raise InputError(f"cell must be a positive angle in radians, got {cell!r}")
    ell = -(np.arange(nx) - nx // 2) * cell
    m = (np.arange(ny) - ny // 2) * cell
    l0, m0 = pointing
    n0 = math.sqrt(max(0.0, 1.0 - l0 * l0 - m0 * m0))
    ll, mm = ell[None, :], m[:, None]
    nn = np.sqrt(np.clip(1.0 - ll * ll - mm * mm, 0.0, None))
    return np.arccos(np.clip(ll * l0 + mm * m0 + nn * n0, -1.0, 1.0))


def _channels(freqs: Any, weights: Any) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(freqs, dtype=np.float64).reshape(-1)
    w = np.ones_like(f) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    if f.size == 0 or w.shape != f.shape:
        raise InputError(f"need one weight per channel: {f.size} frequencies, {w.size} weights")
    if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
        raise InputError("channel weights must be finite, >= 0 and not all 0")
    keep = w > 0
    return f[keep], w[keep]


def taylor_matrix(freqs: Any, weights: Any, ref_freq: float, nterms: int) -> np.ndarray:
    """The (nterms, nterms) matrix ``H_ij = sum_c w_c x_c^(i+j) / sum_c w_c`` with
    ``x_c = (nu_c - ref_freq) / ref_freq``: the Taylor weights' normal equations (the peak
    values of the MT-MFS PSFs for data weighted w_c per channel)."""
    f, w = _channels(freqs, weights)
    x = (f - ref_freq) / ref_freq
    powers = x[None, :] ** np.arange(2 * nterms - 1)[:, None]
    moments = powers @ w / w.sum()
    idx = np.add.outer(np.arange(nterms), np.arange(nterms))
    return moments[idx]


def taylor_profile(r: np.ndarray, freqs: Any, weights: Any, ref_freq: float, nterms: int,
                   band: str | None = None) -> np.ndarray:
    """(nterms, len(r)) weighted least-squares Taylor coefficients in x = (nu - ref)/ref of
    the beam at radii ``r`` (radians) over the channels ``freqs`` (Hz) weighted ``weights``
    (None: equal); nterms 1 gives the weighted average."""
    f, w = _channels(freqs, weights)
    if not (isinstance(nterms, int) and nterms >= 1):
        raise InputError(f"nterms must be an integer >= 1, got {nterms!r}")
    x = (f - ref_freq) / ref_freq
    rhs = np.zeros((nterms, len(r)))
    for fc, wc, xc in zip(f, w, x, strict=True):
        g = wc * radial(r, fc, band)
        for t in range(nterms):
            rhs[t] += g * xc**t
    rhs /= w.sum()
    return np.linalg.solve(taylor_matrix(f, w, ref_freq, nterms), rhs)


def taylor_beam(shape: tuple[int, int], cell: float, freqs: Any, weights: Any = None, *,
                ref_freq: float | None = None, nterms: int = 1, band: str | None = None,
                pointing: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The beam's Taylor coefficients on a ``(ny, nx)`` image: (nterms, ny, nx) float64.

    freqs (nchan,) Hz and weights (nchan,) (the imaging weights summed per channel; None:
    equal); ref_freq the Taylor reference (default: the weighted mean frequency). Computed on
    a fine radial grid and interpolated (error < 1e-8 of the peak).
    """
    f, w = _channels(freqs, weights)
    ref = float(np.sum(f * w) / w.sum()) if ref_freq is None else float(ref_freq)
    dist = distance(shape, cell, pointing)
    rmax = float(dist.max())
    grid = np.linspace(0.0, rmax if rmax > 0 else cell, RADIAL_SAMPLES)
    profile = taylor_profile(grid, f, w, ref, nterms, band)
    return np.stack([np.interp(dist, grid, p) for p in profile])


def weighted_beam(shape: tuple[int, int], cell: float, freqs: Any, weights: Any = None, *,
                  band: str | None = None,
                  pointing: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The MFS beam ``sum_c w_c G(nu_c) / sum_c w_c`` on a ``(ny, nx)`` image (float64)."""
    return taylor_beam(shape, cell, freqs, weights, nterms=1, band=band, pointing=pointing)[0]


def _check_limit(pb_limit: float) -> None:
    if not (isinstance(pb_limit, (int, float)) and 0.0 < pb_limit <= 1.0):
        raise InputError(f"image.pb_limit must be in (0, 1], got {pb_limit!r}")


def pb_correct(image: Any, pb: Any, pb_limit: float = 0.2) -> np.ndarray:
    """``image / pb`` where ``pb >= pb_limit``, NaN elsewhere (float64, the image's shape)."""
    _check_limit(pb_limit)
    img, p = np.asarray(image, np.float64), np.asarray(pb, np.float64)
    if img.shape != p.shape:
        raise InputError(f"image shape {img.shape} differs from the primary beam's {p.shape}")
    good = p >= pb_limit
    return np.where(good, img / np.where(good, p, 1.0), np.nan)


def pb_correct_alpha(alpha: Any, pb_taylor: Any, pb_limit: float = 0.2) -> np.ndarray:
    """The intrinsic spectral index ``alpha - pb_tt1 / pb_tt0`` where ``pb_tt0 >= pb_limit``
    (NaN elsewhere, and where alpha is NaN); ``pb_taylor`` (>= 2, ny, nx) from taylor_beam."""
    _check_limit(pb_limit)
    a, p = np.asarray(alpha, np.float64), np.asarray(pb_taylor, np.float64)
    if p.ndim != 3 or p.shape[0] < 2 or p.shape[1:] != a.shape:
        raise InputError(f"pb_taylor must be (nterms >= 2, ny, nx) matching alpha {a.shape}, "
                         f"got {p.shape}")
    good = p[0] >= pb_limit
    return np.where(good, a - p[1] / np.where(good, p[0], 1.0), np.nan)

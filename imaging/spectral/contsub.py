"""Continuum subtraction in the uv plane, as CASA's ``uvcontsub`` does it.

Each spectrum (a row of a visibility block: one baseline at one time, and one correlation
where the block has several) gets its own polynomial of order ``fitorder`` in frequency,
fitted to the line-free channels by weighted complex least squares (real and imaginary parts
together; the visibility weights weight it, flagged samples are left out), and the polynomial
is subtracted from every channel. What is left is the line (and the noise).

A spectrum with fewer usable line-free channels than ``fitorder + 1`` cannot be fitted: it
is flagged (its weights set to 0) rather than left with its continuum, and counted. The
weights of fitted spectra are unchanged. Everything is vectorised over rows: the normal
equations of all rows are built by two matrix products and solved as one batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from htclean.imaging.errors import InputError
from htclean.imaging.ms.msread import VisChunk

KEY = "data.continuum.fitorder"


@dataclass(frozen=True)
class Subtracted:
    """The result of ``subtract``: ``vis`` (the input's shape and dtype) minus the continuum;
    ``weight`` (vis's shape) the input weights, 0 for spectra that could not be fitted;
    ``fitted`` bool, vis's shape without the channel axis ((nrow,) or (nrow, ncorr))."""
    vis: np.ndarray
    weight: np.ndarray
    fitted: np.ndarray

    @property
    def unfitted(self) -> int:
        """How many spectra were flagged because they could not be fitted."""
        return int(self.fitted.size - np.count_nonzero(self.fitted))


def check_fitorder(fitorder: object, key: str = KEY) -> int:
    """``fitorder`` as an int >= 0; InputError naming ``key`` otherwise."""
    if isinstance(fitorder, bool) or not isinstance(fitorder, (int, np.integer)) \
            or fitorder < 0:
        raise InputError(f"{key}: expected an integer >= 0, got {fitorder!r}")
    return int(fitorder)


def basis(freq: np.ndarray, fitorder: int) -> np.ndarray:
    """The polynomial basis ``(nchan, fitorder + 1) float64``: powers 0..fitorder of
    x = (freq - centre) / half-span, x in [-1, 1] over the window (any scaling spans the same
    polynomials in frequency; this one keeps the normal equations well conditioned)."""
    f = np.asarray(freq, dtype=np.float64)
    centre = 0.5 * (f.max() + f.min())
    half = 0.5 * (f.max() - f.min()) or 1.0
    return np.vander((f - centre) / half, fitorder + 1, increasing=True)


def fit(freq: np.ndarray, vis: np.ndarray, weight: np.ndarray, linefree: np.ndarray, *,
        fitorder: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fit the continuum of each spectrum: ``(coeffs (nspec, fitorder + 1) complex128,
    fitted (nspec,) bool)`` in the ``basis(freq, fitorder)``.

    freq (nchan,) Hz, distinct; vis (nspec, nchan) complex; weight (nspec, nchan) >= 0, 0 =
    flagged (non-finite vis or weight count as flagged); linefree: channel indices. A row
    whose usable line-free samples number fewer than fitorder + 1 has coefficients 0 and
    ``fitted`` False.
    """
    x = basis(freq, fitorder)
    nchan, npoly = x.shape
    use = np.zeros(nchan, dtype=bool)
    use[linefree] = True
    v = np.asarray(vis)
    w = np.asarray(weight, dtype=np.float64)
    good = use & np.isfinite(v) & np.isfinite(w) & (w > 0)
    w = np.where(good, w, 0.0)
    wv = w * np.where(good, v, 0)
    # normal equations of every row: A[r] = X^T W_r X (real, npoly^2), b[r] = X^T W_r V_r
    outer = (x[:, :, None] * x[:, None, :]).reshape(nchan, npoly * npoly)
    a = (w @ outer).reshape(-1, npoly, npoly)
    b = wv @ x
    fitted = good.sum(axis=1) >= npoly
    a[~fitted] = np.eye(npoly)
    b[~fitted] = 0
    coeffs = np.linalg.solve(a, b[:, :, None].astype(np.complex128))[:, :, 0]
    return coeffs, fitted


def subtract(freq: np.ndarray, vis: np.ndarray, weight: np.ndarray, linefree: np.ndarray, *,
             fitorder: int = 0, flag: np.ndarray | None = None) -> Subtracted:
    """Subtract the continuum fitted over the ``linefree`` channels from every channel.

    freq (nchan,) Hz, distinct (any order); vis (nrow, nchan) or (nrow, nchan, ncorr) complex
    (a part's Stokes I block, or an MS's DATA: every row and correlation is its own spectrum);
    weight: the visibility weights, broadcastable to vis (0 = flagged); flag: optional bool,
    broadcastable to vis, True = flagged; linefree: channel indices 0..nchan-1 (as
    ``channels.parse_channels`` returns them). Returns vis minus the fit (the input's dtype),
    the weights (float, vis's shape) with unfittable spectra set to 0, and their count. The
    inputs are not modified.
    """
    fitorder = check_fitorder(fitorder)
    f = np.asarray(freq, dtype=np.float64)
    v = np.asarray(vis)
    if v.ndim not in (2, 3) or f.ndim != 1 or v.shape[1] != f.size:
        raise InputError(f"vis must be (nrow, nchan[, ncorr]) with nchan = {f.size} "
                         f"frequencies, got shape {v.shape}")
    if not np.iscomplexobj(v):
        raise InputError(f"vis must be complex, got {v.dtype}")
    if f.size > 1 and np.unique(f).size != f.size:
        raise InputError("channel frequencies must be distinct")
    lf = np.asarray(linefree, dtype=np.int64).ravel()
    if lf.size and (lf.min() < 0 or lf.max() >= f.size):
        raise InputError(f"line-free channels must be in 0..{f.size - 1}, "
                         f"got {lf.min()}..{lf.max()}")
    w = np.broadcast_to(np.asarray(weight), v.shape)
    if flag is not None:
        w = np.where(np.broadcast_to(np.asarray(flag, dtype=bool), v.shape), 0, w)
    # spectra along the last axis: (nrow, nchan, ncorr) -> (nrow * ncorr, nchan)
    spectra = np.moveaxis(v, 1, -1).reshape(-1, f.size)
    coeffs, fitted = fit(f, spectra, np.moveaxis(w, 1, -1).reshape(-1, f.size), lf,
                         fitorder=fitorder)
    out = spectra - coeffs @ basis(f, fitorder).T
    shape = np.moveaxis(v, 1, -1).shape
    fitted = fitted.reshape(shape[:-1])
    wdtype = np.result_type(np.asarray(weight).dtype, np.float32)
    wout = np.where(np.expand_dims(fitted, 1), np.broadcast_to(weight, v.shape), 0)
    out = np.moveaxis(out.astype(v.dtype, copy=False).reshape(shape), -1, 1)
    return Subtracted(vis=np.ascontiguousarray(out),
                      weight=wout.astype(wdtype, copy=False), fitted=fitted)


def linefree_in(freq: np.ndarray, spw_freq: np.ndarray, linefree: np.ndarray) -> np.ndarray:
    """The line-free channels as indices into ``freq`` (a chunk's channels: ascending, maybe a
    sub-range of the window), given ``linefree`` as indices in the spectral window's stored
    order ``spw_freq`` (CHAN_FREQ, the order CASA's channel numbers count in). The chunk's
    frequencies are the window's own values, so they are matched exactly."""
    chosen = np.asarray(spw_freq, dtype=np.float64)[np.asarray(linefree, dtype=np.int64)]
    return np.flatnonzero(np.isin(np.asarray(freq, dtype=np.float64), chosen))


def subtract_chunk(chunk: VisChunk, spw_freq: np.ndarray, linefree: np.ndarray, *,
                   fitorder: int = 0) -> tuple[VisChunk, int]:
    """``subtract`` on a part's chunk (Stokes I, flags folded into the weights): the chunk with
    the continuum subtracted and unfittable rows' weights set to 0, and their count.
    ``linefree`` counts channels in the window's stored order ``spw_freq`` (``linefree_in``)."""
    out = subtract(chunk.freq, chunk.vis, chunk.weight,
                   linefree_in(chunk.freq, spw_freq, linefree), fitorder=fitorder)
    return replace(chunk, vis=out.vis, weight=out.weight), out.unfitted

"""Imaging weights: natural, uniform and Briggs, as CASA defines them.

htclean follows CASA (tclean's ``briggs``/``uniform``), not WSClean's half-plane density grid
of the padded image size. The density ``g`` is an ``(ny, nx)`` grid of uv cells of the
image's size: every sample of weight ``w`` at (u, v) wavelengths adds ``w`` to the cell
``(floor(v ny cell + ny/2), floor(u nx cell + nx/2))`` and again to the cell of (-u, -v).
Samples outside the grid add nothing and get imaging weight 0 in uniform/Briggs weighting.

- natural: the data weights unchanged;
- uniform: ``w / g`` (g at the sample's own cell);
- Briggs with robust R in [-2, 2]: ``f^2 = (5 * 10^-R)^2 / (sum g^2 / sum g)`` over the whole
  grid, weight ``w / (1 + f^2 g)``.

The density of a dataset is the sum of the densities of its parts; every part is weighted
with the global sum, which is what makes the distributed image equal the one-process image.

Measured against tclean 6.7 on CASA-simulated VLA MSs (benchmarks/compare_casa.py): the
Briggs 0 PSF and dirty image agree to 1.6-3.1e-4 and 1.1-1.3e-3 of the peak, mostly tclean's
gridding at LSRK frequencies and its spheroidal kernel; WSClean's, with its own density grid,
to 0.5-1e-2. tclean counts unflagged autocorrelations in its density grid (at the uv origin)
although it does not image them; htclean never reads autocorrelations, so on an MS that has
them the two differ (0.2 of the peak on the benchmark's MS c) until they are flagged
(flagdata autocorr=True).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from htclean.imaging.errors import InputError
from htclean.imaging.geometry import C, ImageGeometry
from htclean.imaging.ms.msread import VisChunk

KINDS = ("natural", "uniform", "briggs")


def _cell_axis(coord: np.ndarray, scale: np.ndarray, n: int, cell: float,
               sign: float) -> np.ndarray:
    """``floor(sign * coord * scale * (n cell) + n / 2)`` (nrow, nchan) float64, evaluated
    in that order in one array (the same values as the expression, fewer temporaries)."""
    a = np.multiply.outer(coord, scale)
    if sign != 1.0:
        np.multiply(sign, a, out=a)
    a *= n * cell
    a += n / 2
    return np.floor(a, out=a)


def _cells(uvw: np.ndarray, freq: np.ndarray, geom: ImageGeometry,
           sign: float) -> tuple[np.ndarray, np.ndarray]:
    """Flat density-grid index (nrow, nchan) int64 of sign * (u, v), and whether it is inside.

    The cell indices are compared and combined as the whole numbers in float64 they are
    (exact below 2^53), outside cells set to 0 before the one conversion to int64."""
    scale = freq / C
    fu = _cell_axis(uvw[:, 0], scale, geom.nx, geom.cell, sign)
    fv = _cell_axis(uvw[:, 1], scale, geom.ny, geom.cell, sign)
    inside = (fu >= 0) & (fu < geom.nx) & (fv >= 0) & (fv < geom.ny)
    outside = ~inside
    np.copyto(fu, 0.0, where=outside)
    np.copyto(fv, 0.0, where=outside)
    fv *= geom.nx
    fv += fu
    return fv.astype(np.int64), inside


def add_density(grid: np.ndarray, chunk: VisChunk, geom: ImageGeometry) -> np.ndarray:
    """Add one chunk's data weights to a density grid (ny, nx) float64 in place; returns it."""
    if grid.shape != geom.shape:
        raise InputError(f"density grid has shape {grid.shape}, expected {geom.shape}")
    flat = grid.reshape(-1)
    for sign in (1.0, -1.0):
        idx, inside = _cells(chunk.uvw, chunk.freq, geom, sign)
        keep = inside & (chunk.weight > 0)
        flat += np.bincount(idx[keep], weights=chunk.weight[keep], minlength=flat.size)
    return grid


def density(chunks: Iterable[VisChunk], geom: ImageGeometry) -> np.ndarray:
    """Gridded weight density (ny, nx) float64 of a part: sum over its chunks (and the parts
    of a dataset are summed the same way)."""
    grid = np.zeros(geom.shape, np.float64)
    for chunk in chunks:
        add_density(grid, chunk, geom)
    return grid


def briggs_f2(density: np.ndarray, robust: float) -> float:
    """CASA's Briggs factor ``f^2 = (5 * 10^-R)^2 / (sum g^2 / sum g)`` of a global density."""
    total = float(density.sum())
    if total <= 0:
        raise InputError("the weight density is empty: no unflagged visibilities to weight")
    return (5.0 * 10.0 ** (-robust)) ** 2 / (float(np.square(density).sum()) / total)


def check(kind: str, robust: float | None) -> None:
    """Raise InputError unless ``kind`` is a known weighting and ``robust`` fits it."""
    if kind not in KINDS:
        raise InputError(f"weighting must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "briggs" and (robust is None or not -2.0 <= robust <= 2.0):
        raise InputError(f"Briggs weighting needs robust in [-2, 2], got {robust!r}")


def apply(chunk: VisChunk, kind: str, robust: float | None, density: np.ndarray | None,
          geom: ImageGeometry, *, f2: float | None = None) -> np.ndarray:
    """Imaging weights (nrow, nchan) float64 of a chunk.

    kind natural returns the chunk's weights (density unused); uniform and briggs need the
    global density (ny, nx) of the whole dataset (all parts summed). ``f2``: briggs_f2 of
    that density where the caller weights many chunks with it (computed here otherwise).
    """
    check(kind, robust)
    if kind == "natural":
        return chunk.weight
    if density is None:
        raise InputError(f"{kind} weighting needs the global weight density (the weights file)")
    if density.shape != geom.shape:
        raise InputError(f"weight density has shape {density.shape}, expected {geom.shape}")
    idx, inside = _cells(chunk.uvw, chunk.freq, geom, 1.0)
    # in one float64 array: g, then the denominator, then the weight (the same values as
    # where(usable, w / where(usable, denom, 1), 0))
    out = np.take(density.reshape(-1), idx)
    usable = inside
    usable &= chunk.weight > 0
    usable &= out > 0
    if kind == "briggs":
        out *= briggs_f2(density, float(robust)) if f2 is None else f2
        out += 1.0
    unusable = ~usable
    np.copyto(out, 1.0, where=unusable)
    np.divide(chunk.weight, out, out=out)
    np.copyto(out, 0.0, where=unusable)
    return out

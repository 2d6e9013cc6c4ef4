"""The restored image: the CLEAN model convolved with the clean beam, plus the residual."""

from __future__ import annotations

from typing import Any

import numpy as np

from htclean.imaging.beam import Beam
from htclean.imaging.components import ComponentList, add_stamps
from htclean.imaging.convolver import Convolver
from htclean.imaging.errors import InputError

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

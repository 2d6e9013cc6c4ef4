"""Channel images into a cube: the common restoring beam and a plane restored with it.

Each output channel of a cube is restored with its own clean beam (its PSF's fit). With
``restore.common_beam`` every plane is restored with one beam instead (CASA tclean's
``restoringbeam='common'``): ``common_beam`` takes the largest channel beam (by area) and
scales it just enough that it holds every channel's beam in every direction, so no channel
is restored with a beam smaller than its own; ``restore_plane`` then convolves the channel's
model (Jy/pixel) with it and adds the channel's residual.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from htclean.imaging.beams.beam import Beam
from htclean.imaging.deconvolution.components import add_stamps
from htclean.imaging.deconvolution.convolver import Convolver
from htclean.imaging.errors import InputError

ANGLES = 720  # directions at which the common beam must reach every channel beam's edge
DIRECT_FACTOR = 20  # as beams.restore: stamp a sparse model, convolve a dense one by FFT


def _radius(beam: Beam, theta: np.ndarray) -> np.ndarray:
    """The half-width of ``beam`` in the directions ``theta`` (radians from North)."""
    a, b = beam.bmaj / 2, beam.bmin / 2
    d = theta - math.radians(beam.bpa)
    return a * b / np.sqrt((b * np.cos(d)) ** 2 + (a * np.sin(d)) ** 2)


def common_beam(beams: Sequence[Beam | None]) -> Beam:
    """One beam that holds every beam of ``beams`` (None entries, channels without a beam,
    are left out): the largest by area, scaled up where another reaches beyond it."""
    real = [b for b in beams if b is not None]
    if not real:
        raise InputError("no channel has a restoring beam to take a common beam from")
    big = max(real, key=lambda b: (b.bmaj * b.bmin, b.bmaj))
    theta = np.linspace(0.0, math.pi, ANGLES, endpoint=False)
    scale = max(1.0, max(float(np.max(_radius(b, theta) / _radius(big, theta))) for b in real))
    if scale > 1.0:
        scale *= 1.0 + 1e-6  # the directions are sampled: keep clear of the edge
    return Beam(big.bmaj * scale, big.bmin * scale, big.bpa)


def restore_plane(model: np.ndarray, residual: np.ndarray, beam: Beam, cell: float, *,
                  threads: int = 0) -> np.ndarray:
    """``model ⊛ beam + residual`` (ny, nx) float64, Jy/beam; ``model`` in Jy/pixel."""
    res = np.asarray(residual, dtype=np.float64)
    mod = np.asarray(model, dtype=np.float64)
    if mod.shape != res.shape:
        raise InputError(f"model {mod.shape} and residual {res.shape} differ in shape")
    out = res.copy()
    ys, xs = np.nonzero(mod)
    if ys.size == 0:
        return out
    kernel = beam.kernel(cell, limit=res.shape)
    if ys.size * kernel.size < DIRECT_FACTOR * mod.size:
        add_stamps(out, ys, xs, mod[ys, xs], kernel)
    else:
        out += Convolver(res.shape, [kernel], dtype=np.float64, threads=threads).convolve(mod)
    return out

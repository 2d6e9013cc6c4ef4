"""Högbom CLEAN: subtract gain x peak x the shifted PSF at the absolute peak, repeat.

The image is kept in row blocks of ~256 kB with each block's argmax/argmin cached: a
component's PSF subtraction and the re-scan of the block it touched happen while the block is
in cache, and blocks the PSF does not reach are not scanned again. Same components as the
plain search (``clean.find_peak``): ties go to the lowest flat index.
"""

from __future__ import annotations

import numpy as np

from htclean.imaging.clean import CleanParams, MinorCycleResult, StopRule, overlap, result
from htclean.imaging.components import ComponentList

BLOCK_BYTES = 256 * 1024


class BlockPeaks:
    """A ``(ny, nx)`` image with the extreme values of each row block cached (numpy only)."""

    def __init__(self, image: np.ndarray):
        self.image = image
        ny, nx = image.shape
        self.rows = max(1, BLOCK_BYTES // (nx * image.itemsize))
        nblocks = -(-ny // self.rows)
        self.imax = np.zeros(nblocks, dtype=np.int64)
        self.imin = np.zeros(nblocks, dtype=np.int64)
        self.vmax = np.zeros(nblocks)
        self.vmin = np.zeros(nblocks)
        for b in range(nblocks):
            self._scan(b)

    def _scan(self, b: int) -> None:
        r0 = b * self.rows
        block = self.image[r0:r0 + self.rows]
        i, j = int(block.argmax()), int(block.argmin())
        offset = r0 * self.image.shape[1]
        self.imax[b], self.vmax[b] = offset + i, block.flat[i]
        self.imin[b], self.vmin[b] = offset + j, block.flat[j]

    def peak(self) -> tuple[int, int, float]:
        """``(y, x, value)`` of the largest |pixel|; ties to the lowest flat index."""
        bi, bj = int(self.vmax.argmax()), int(self.vmin.argmin())
        i, j = int(self.imax[bi]), int(self.imin[bj])
        vi, vj = float(self.vmax[bi]), float(self.vmin[bj])
        k, v = (j, vj) if (-vj > vi or (-vj == vi and j < i)) else (i, vi)
        y, x = divmod(k, self.image.shape[1])
        return y, x, v

    def subtract(self, psf: np.ndarray, y: int, x: int, amp: float) -> None:
        """``image -= amp x psf`` centred on ``(y, x)`` (psf centre ``(pny // 2, pnx // 2)``)."""
        (iy, ix), (py, px) = overlap(self.image.shape, psf.shape, y, x)
        a = self.image.dtype.type(amp)
        shift = py.start - iy.start
        for b in range(iy.start // self.rows, -(-iy.stop // self.rows)):
            r0, r1 = max(iy.start, b * self.rows), min(iy.stop, (b + 1) * self.rows)
            self.image[r0:r1, ix] -= a * psf[r0 + shift:r1 + shift, px]
            self._scan(b)


def run(residual: np.ndarray, psf: np.ndarray, params: CleanParams, *, iterations_done: int,
        threshold: float) -> MinorCycleResult:
    """Högbom minor cycle on ``residual`` (modified in place and returned in the result);
    ``psf`` normalised to 1 at its centre (``clean.prepare`` makes both)."""
    ny, nx = residual.shape
    image = BlockPeaks(residual)
    y, x, v = image.peak()
    peak_start = abs(v)
    stop = StopRule(params, peak_start, iterations_done, threshold)
    ys: list[int] = []
    xs: list[int] = []
    amps: list[float] = []
    while (reason := stop.reason(abs(v), len(amps))) is None:
        a = params.gain * v
        image.subtract(psf, y, x, a)
        ys.append(y)
        xs.append(x)
        amps.append(a)
        y, x, v = image.peak()
    comps = ComponentList.from_arrays(xs, ys, amps, np.zeros(len(amps)), nx, ny)
    return result(comps, residual, len(amps), peak_start, abs(v), reason)

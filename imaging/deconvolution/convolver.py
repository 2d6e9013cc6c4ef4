"""Linear convolution of images with fixed kernels by real FFTs: the minor cycles' exact
residual updates, multiscale smoothing and restoring beams all go through ``Convolver``."""

from __future__ import annotations

from typing import Any

import ducc0
import numpy as np
import scipy.fft

from htclean.imaging.cpus import ducc_threads

ROWS = 256  # the Convolver's one-axis transforms go a block of this many rows at a time


class Convolver:
    """Linear (zero-padded, not circular) convolution of ``(ny, nx)`` images with fixed kernels.

    Each kernel is any 2-D array with its centre at ``(ky // 2, kx // 2)``; the output is the
    ``(ny, nx)`` window of the full convolution aligned with the image. Only that window is
    made, so the transforms are ``min(n + k - 1, 2 n - 1)`` long per axis (rounded up to a
    fast length): a PSF twice the image's size needs no more than the 2x padding it already
    has (the kernel is wrapped about its centre, the image zero-padded). ducc0 real FFTs on
    ``threads`` threads (0: one; the count changes results at rounding, so jobs pass the
    planned one, cpus.planned_threads); the kernels' transforms are computed once and
    ``convolve_all`` shares one forward transform. Single precision stays single.
    """

    def __init__(self, shape: tuple[int, int], kernels: list[np.ndarray], *,
                 dtype: Any = np.float64, threads: int = 0):
        ny, nx = shape
        self.shape = (ny, nx)
        self.dtype = np.dtype(dtype)
        self.workers = ducc_threads(threads)
        self.pad = (transform_length(ny, max(k.shape[0] for k in kernels)),
                    transform_length(nx, max(k.shape[1] for k in kernels)))
        self._hats = [self._kernel_hat(np.asarray(k)) for k in kernels]

    def _kernel_hat(self, kernel: np.ndarray) -> np.ndarray:
        """The transform of ``kernel`` wrapped about its centre onto the ``pad`` grid: offset
        ``d`` from the centre lands on index ``d mod pad`` (offsets beyond the image's size,
        which no output pixel reaches, left out)."""
        py, px = self.pad
        cols = _wrap_ranges(kernel.shape[1], self.shape[1], px)
        hat = self._empty_hat()
        for src_y, dst_y in _wrap_ranges(kernel.shape[0], self.shape[0], py):
            for r0 in range(0, dst_y.stop - dst_y.start, ROWS):
                n = min(ROWS, dst_y.stop - dst_y.start - r0)
                rows = np.zeros((n, px), dtype=self.dtype)
                for src_x, dst_x in cols:
                    rows[:, dst_x] = kernel[src_y.start + r0:src_y.start + r0 + n, src_x]
                at = dst_y.start + r0
                ducc0.fft.r2c(rows, axes=(1,), out=hat[at:at + n], nthreads=self.workers)
        ducc0.fft.c2c(hat, axes=(0,), out=hat, nthreads=self.workers)
        hat *= 1.0 / (py * px)  # the normalisation of the inverse, done once
        return hat

    def _empty_hat(self) -> np.ndarray:
        py, px = self.pad
        return np.zeros((py, px // 2 + 1), dtype=np.result_type(self.dtype, np.complex64))

    def forward(self, image: np.ndarray) -> np.ndarray:
        """The transform of ``image`` ``(ny, nx)`` zero-padded to ``pad`` (made a block of
        rows at a time: no padded copy of the image)."""
        ny, nx = self.shape
        hat = self._empty_hat()
        rows = np.zeros((min(ROWS, ny), self.pad[1]), dtype=self.dtype)
        for r0 in range(0, ny, ROWS):
            n = min(ROWS, ny - r0)
            rows[:n, :nx] = image[r0:r0 + n]
            ducc0.fft.r2c(rows[:n], axes=(1,), out=hat[r0:r0 + n], nthreads=self.workers)
        return ducc0.fft.c2c(hat, axes=(0,), out=hat, nthreads=self.workers)

    def apply(self, hat: np.ndarray, which: int = 0, *, overwrite: bool = False) -> np.ndarray:
        """``(ny, nx)`` result of an image transform (``forward``) times kernel ``which``;
        ``overwrite``: ``hat`` may be used as the work space (it is lost)."""
        return self._inverse(np.multiply(hat, self._hats[which], out=hat if overwrite else None))

    def apply_sum(self, hats: list[np.ndarray], which: list[int]) -> np.ndarray:
        """``(ny, nx)`` sum over k of the image transforms ``hats[k]`` (``forward``) times
        kernel ``which[k]``, with one inverse transform; ``hats`` are not modified."""
        prod = hats[0] * self._hats[which[0]]
        work = np.empty_like(prod)
        for hat, w in zip(hats[1:], which[1:], strict=True):
            prod += np.multiply(hat, self._hats[w], out=work)
        return self._inverse(prod)

    def _inverse(self, prod: np.ndarray) -> np.ndarray:
        """The ``(ny, nx)`` window of the inverse transform of ``prod`` (its work space)."""
        ny, nx = self.shape
        ducc0.fft.c2c(prod, axes=(0,), forward=False, out=prod, nthreads=self.workers)
        out = np.empty((ny, nx), dtype=self.dtype)
        for r0 in range(0, ny, ROWS):
            n = min(ROWS, ny - r0)
            rows = ducc0.fft.c2r(prod[r0:r0 + n], axes=(1,), lastsize=self.pad[1],
                                 forward=False, nthreads=self.workers,
                                 allow_overwriting_input=True)
            out[r0:r0 + n] = rows[:, :nx]
        return out

    def convolve(self, image: np.ndarray, which: int = 0) -> np.ndarray:
        """``image`` (``(ny, nx)``) convolved with kernel ``which``."""
        return self.apply(self.forward(image), which, overwrite=True)

    def convolve_all(self, image: np.ndarray) -> list[np.ndarray]:
        """``image`` convolved with every kernel, in order."""
        hat = self.forward(image)
        last = len(self._hats) - 1
        return [self.apply(hat, i, overwrite=i == last) for i in range(last + 1)]


def transform_length(n: int, k: int) -> int:
    """The FFT length on an axis of ``n`` image pixels for a kernel ``k`` long (centre
    ``k // 2``): long enough that no output pixel wraps onto another's offsets."""
    c = k // 2
    span = min(n - 1, c) + min(n - 1, k - 1 - c) + 1  # offsets an output pixel can reach
    return min(scipy.fft.next_fast_len(n + span - 1, True),
               scipy.fft.next_fast_len(2 * n - 1, True))


def _wrap_ranges(k: int, n: int, p: int) -> list[tuple[slice, slice]]:
    """(kernel slice, wrapped slice) pairs: kernel offsets ``d`` in ``[-(n - 1), n - 1]``
    (index ``k // 2 + d``) land on ``d mod p``; the non-negative and the negative ones."""
    c = k // 2
    hi = min(n - 1, k - 1 - c)
    lo = min(n - 1, c)
    out = [(slice(c, c + hi + 1), slice(0, hi + 1))]
    if lo > 0:
        out.append((slice(c - lo, c), slice(p - lo, p)))
    return out

"""The minor cycle on xp arrays (numpy or CuPy): Högbom, Clark and multiscale CLEAN.

The same algorithms as hogbom.py, clark.py and multiscale.py, step for step, with the image
work on the device: the peak search (argmax of |residual|: the largest |value|, ties to the
lowest flat index, as ``clean.find_peak``), the shifted-PSF subtractions, the pixel selection
of Clark cycles and the FFT convolutions (``cupy.fft`` on the GPU; ``scipy.fft`` on numpy, so
the numpy path does exactly the CPU modules' arithmetic). The short sequential parts stay on
the host: Clark's and multiscale's list iterations (``clark.list_clean``) over the selected
pixels (at most clark.MAX_LIST), Clark's exterior sidelobe and the scales' PSFs. With
``xp = numpy`` the components equal the CPU deconvolvers' (tests/test_gpu.py). The CuPy path
has not been run on a GPU.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np
import scipy.fft

from htclean.imaging.deconvolution import clark as cpu_clark
from htclean.imaging.deconvolution import multiscale as cpu_multiscale
from htclean.imaging.deconvolution.clean import (
    CleanParams,
    MinorCycleResult,
    PSFSubtractor,
    StopRule,
    pick_scale,
    prepare,
    result,
    subtract_shifted,
    sum_by_pixel,
)
from htclean.imaging.deconvolution.components import ComponentList, add_stamps, scale_kernel
from htclean.imaging.deconvolution.convolver import Convolver as CpuConvolver
from htclean.imaging.errors import InputError
from htclean.imaging.gpu.device import select as select_device
from htclean.imaging.gpu.device import to_numpy


def find_peak(xp: ModuleType, image: Any) -> tuple[int, int, float]:
    """``(y, x, value)`` of the largest ``|image|`` ((ny, nx) xp array, any strides); ties go to
    the lowest flat index (argmax returns the first maximum). One device-to-host copy."""
    flat = xp.ascontiguousarray(image).reshape(-1)
    k = xp.argmax(xp.abs(flat))
    pair = to_numpy(xp.stack([xp.asarray(k).astype(xp.float64),
                              xp.take(flat, k).astype(xp.float64)]))
    y, x = divmod(int(pair[0]), image.shape[1])
    return y, x, float(pair[1])


def select_pixels(xp: ModuleType, image: Any, limit: float,
                  border: int = 0) -> tuple[np.ndarray, float]:
    """``clark.select`` on the device: flat indices (ascending, host int64) of the pixels with
    |image| > limit at least ``border`` pixels from the edges, at most clark.MAX_LIST, and the
    limit used (raised when more pixels exceed it)."""
    ny, nx = image.shape
    box = xp.abs(image[border:ny - border, border:nx - border])
    sub = xp.flatnonzero(box > limit)
    if sub.size > cpu_clark.MAX_LIST:
        values = box.reshape(-1)[sub]
        kth = sub.size - cpu_clark.MAX_LIST - 1
        limit = float(xp.partition(values, kth)[kth])
        sub = sub[values > limit]
    by, bx = np.divmod(to_numpy(sub).astype(np.int64), box.shape[1])
    return (by + border) * nx + (bx + border), limit


class Convolver:
    """``convolver.Convolver`` on xp: linear (zero-padded) convolution of ``(ny, nx)`` images with
    fixed kernels (centres at ``(ky // 2, kx // 2)``); on numpy it is ``convolver.Convolver``
    itself (same arithmetic), on CuPy real FFTs by cupy.fft (cuFFT). Kernel transforms are
    computed once."""

    def __new__(cls, xp: ModuleType, shape: tuple[int, int], kernels: list[np.ndarray], *,
                dtype: Any = np.float64, threads: int = 0) -> Any:
        if xp is np:
            return CpuConvolver(shape, kernels, dtype=dtype, threads=threads)
        return super().__new__(cls)

    def __init__(self, xp: ModuleType, shape: tuple[int, int], kernels: list[np.ndarray], *,
                 dtype: Any = np.float64, threads: int = 0):
        self.xp = xp
        ny, nx = shape
        ky = max(k.shape[0] for k in kernels)
        kx = max(k.shape[1] for k in kernels)
        self.shape = (ny, nx)
        self.dtype = np.dtype(dtype)
        self.pad = (scipy.fft.next_fast_len(ny + ky - 1, True),
                    scipy.fft.next_fast_len(nx + kx - 1, True))
        self._kw = {"workers": max(1, threads)} if xp is np else {}
        self._fft = scipy.fft if xp is np else xp.fft
        self._hats = [self.forward(xp.asarray(k)) for k in kernels]
        self._centres = [(k.shape[0] // 2, k.shape[1] // 2) for k in kernels]

    def forward(self, image: Any) -> Any:
        """The zero-padded real FFT of an image or kernel (an xp array)."""
        return self._fft.rfft2(image.astype(self.dtype, copy=False), s=self.pad, **self._kw)

    def apply(self, hat: Any, which: int = 0) -> Any:
        """``(ny, nx)`` result of an image transform times kernel ``which``."""
        full = self._fft.irfft2(hat * self._hats[which], s=self.pad, **self._kw)
        cy, cx = self._centres[which]
        return full[cy:cy + self.shape[0], cx:cx + self.shape[1]]

    def convolve(self, image: Any, which: int = 0) -> Any:
        return self.apply(self.forward(image), which)

    def convolve_all(self, image: Any) -> list[Any]:
        hat = self.forward(image)
        return [self.apply(hat, i) for i in range(len(self._hats))]


# Assumed GPU costs for choosing shifted subtractions or an FFT convolution (not measured:
# no GPU on the development machine): a launch-bound shifted subtraction per component, and
# two real FFTs of the padded size at ~1e12 useful flop/s.
GPU_LAUNCH_S = 20e-6
GPU_FLOPS = 1e12


class Subtractor:
    """``clean.PSFSubtractor`` on xp: ``residual -= (components ⊛ scale kernel) ⊛ psf``.

    Few components are subtracted one by one as shifted (scale-convolved) PSFs, many by one
    FFT convolution; the count that decides is the CPU class's on numpy (same arithmetic, same
    results) and a cost estimate on the GPU."""

    def __init__(self, xp: ModuleType, shape: tuple[int, int], psf: np.ndarray, *,
                 threads: int = 0):
        self.xp = xp
        self.shape = shape
        self.cpu = PSFSubtractor(shape, psf, threads=threads)
        self.threads = threads
        self.psf = xp.asarray(psf)
        self._scaled: dict[float, Any] = {}
        self._conv: Convolver | None = None
        if xp is np:
            self.direct_limit = self.cpu.direct_limit
        else:
            pad = math.prod(scipy.fft.next_fast_len(n + k - 1, True)
                            for n, k in zip(shape, psf.shape, strict=True))
            fft = 2 * 2.5 * pad * math.log2(pad) / GPU_FLOPS + 2 * GPU_LAUNCH_S
            self.direct_limit = max(1, int(fft / GPU_LAUNCH_S))

    def kernel_psf(self, scale: float) -> Any:
        """psf ⊛ scale_kernel(scale) on the device (computed on the host once per scale)."""
        if scale == 0.0:
            return self.psf
        if scale not in self._scaled:
            self._scaled[scale] = self.xp.asarray(self.cpu.kernel_psf(scale))
        return self._scaled[scale]

    def __call__(self, residual: Any, ys: np.ndarray, xs: np.ndarray, amps: np.ndarray,
                 scale: float = 0.0) -> None:
        """Subtract components ``amps`` (Jy) at host pixels ``(ys, xs)`` of ``scale``."""
        ny, nx = self.shape
        flat, total = sum_by_pixel(ys, xs, amps, nx)
        if flat.size <= self.direct_limit:
            kp = self.kernel_psf(scale)
            k = scale_kernel(scale)
            centre = (self.cpu.psf.shape[0] // 2 + k.shape[0] // 2,
                      self.cpu.psf.shape[1] // 2 + k.shape[1] // 2)
            for f, a in zip(flat.tolist(), total.tolist(), strict=True):
                subtract_shifted(residual, kp, f // nx, f % nx, a, centre)
            return
        if self._conv is None:
            self._conv = Convolver(self.xp, self.shape, [self.cpu.psf], dtype=residual.dtype,
                                   threads=self.threads)
        model = np.zeros(self.shape)
        add_stamps(model, flat // nx, flat % nx, total, scale_kernel(scale))
        residual -= self._conv.convolve(self.xp.asarray(model)).astype(residual.dtype,
                                                                       copy=False)


def _components(found: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]], nx: int,
                ny: int) -> ComponentList:
    """A ComponentList from (xs, ys, amps, scale) batches."""
    def cat(i: int, dtype: Any) -> np.ndarray:
        return np.concatenate([np.asarray(f[i], dtype=dtype) for f in found]
                              or [np.zeros(0, dtype)])

    scales = np.concatenate([np.full(np.size(f[0]), f[3]) for f in found] or [np.zeros(0)])
    return ComponentList.from_arrays(cat(0, np.int64), cat(1, np.int64), cat(2, np.float64),
                                     scales, nx, ny)


def hogbom(xp: ModuleType, residual: Any, psf: np.ndarray, params: CleanParams, *,
           iterations_done: int, threshold: float) -> MinorCycleResult:
    """hogbom.run on xp: ``residual`` (ny, nx) device array (modified in place), ``psf``
    normalised host array (``clean.prepare``). The result's residual is a numpy array."""
    return clark(xp, residual, psf, params, iterations_done=iterations_done,
                 threshold=threshold, ext=0.0)


def clark(xp: ModuleType, residual: Any, psf: np.ndarray, params: CleanParams, *,
          iterations_done: int, threshold: float, ext: float | None = None) -> MinorCycleResult:
    """clark.run on xp (arguments as ``hogbom``; ``ext`` 0 is hogbom.run)."""
    ny, nx = residual.shape
    ext = cpu_clark.exterior_sidelobe(psf) if ext is None else ext
    subtract = Subtractor(xp, residual.shape, psf, threads=params.threads)
    y, x, v = find_peak(xp, residual)
    peak_start = abs(v)
    stop = StopRule(params, peak_start, iterations_done, threshold)
    found = []
    done = 0
    while (reason := stop.reason(abs(v), done)) is None:
        limit = max(stop.floor(), min(ext, 1.0 - params.gain) * abs(v))
        flat, limit = select_pixels(xp, residual, limit)
        if flat.size == 0:  # more than MAX_LIST pixels tie with the peak
            flat, limit = np.array([y * nx + x]), stop.floor()
        values = to_numpy(residual.reshape(-1)[xp.asarray(flat)]).astype(np.float64)
        picks, a = cpu_clark.list_clean(values, flat, nx, psf, params.gain, limit,
                                        stop.budget - done)
        cy, cx = np.divmod(flat[picks], nx)
        subtract(residual, cy, cx, a)
        found.append((cx, cy, a, 0.0))
        done += picks.size
        y, x, v = find_peak(xp, residual)
    return result(_components(found, nx, ny), to_numpy(residual), done, peak_start, abs(v),
                  reason)


def multiscale(xp: ModuleType, residual: Any, psf: np.ndarray, params: CleanParams, *,
               iterations_done: int, threshold: float) -> MinorCycleResult:
    """multiscale.run on xp (arguments as ``hogbom``): the scale convolutions by xp FFTs."""
    ny, nx = residual.shape
    scales = cpu_multiscale.prepare_scales(psf, params, residual.shape)
    extended = [sc for sc in scales if sc.scale > 0]
    conv = Convolver(xp, residual.shape, [sc.kernel for sc in extended], dtype=residual.dtype,
                     threads=params.threads) if extended else None
    subtract = Subtractor(xp, residual.shape, psf, threads=params.threads)
    y, x, v = find_peak(xp, residual)
    peak_start = abs(v)
    stop = StopRule(params, peak_start, iterations_done, threshold)
    found = []
    done = 0
    while (reason := stop.reason(abs(v), done)) is None:
        smoothed = iter(conv.convolve_all(residual) if conv else [])
        score, sc, image, at, pv = pick_scale(scales, residual, smoothed,
                                              lambda im: find_peak(xp, im), ny, nx)
        if score == 0.0:
            reason = "no-peak"
            break
        limit = (1.0 - params.multiscale_gain) * abs(pv)
        if sc.scale == 0:
            limit = max(limit, stop.floor())
        flat, limit = select_pixels(xp, image, limit, border=sc.radius)
        if flat.size == 0:  # more than MAX_LIST pixels tie with the peak
            flat, limit = np.array([at]), 0.0
        values = to_numpy(xp.ascontiguousarray(image).reshape(-1)[xp.asarray(flat)])
        picks, a = cpu_clark.list_clean(values.astype(np.float64), flat, nx, sc.psf2,
                                        params.gain, limit, stop.budget - done)
        cy, cx = np.divmod(flat[picks], nx)
        subtract(residual, cy, cx, a, scale=sc.scale)
        found.append((cx, cy, a, sc.scale))
        done += picks.size
        y, x, v = find_peak(xp, residual)
    return result(_components(found, nx, ny), to_numpy(residual), done, peak_start, abs(v),
                  reason)


ALGORITHMS = {"hogbom": hogbom, "clark": clark, "multiscale": multiscale}


def minor_cycle(residual: Any, psf: Any, params: CleanParams, *, iterations_done: int,
                threshold: float, xp: ModuleType | None = None) -> MinorCycleResult:
    """``clean.minor_cycle`` on a device: the same arguments and result (numpy arrays).

    ``xp``: numpy or cupy; None picks the GPU when one is usable (``device.select("auto")``).
    """
    if isinstance(iterations_done, bool) or not isinstance(iterations_done, (int, np.integer)) \
            or iterations_done < 0:
        raise InputError(f"iterations_done must be an integer >= 0, got {iterations_done!r}")
    if not (math.isfinite(threshold) and threshold >= 0.0):
        raise InputError(f"threshold must be a finite flux >= 0 Jy, got {threshold!r}")
    xp = select_device("auto").xp if xp is None else xp
    res, p = prepare(to_numpy(residual), to_numpy(psf))
    return ALGORITHMS[params.algorithm](xp, xp.asarray(res), p, params,
                                        iterations_done=int(iterations_done),
                                        threshold=float(threshold))

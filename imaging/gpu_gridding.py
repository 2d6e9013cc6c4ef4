"""Gridding and degridding with ducc0.wgridder's algorithm, written once for numpy and CuPy.

The same code runs with ``xp = numpy`` (the reference, tested against ducc0 and a direct DFT)
and ``xp = cupy`` (cuFFT through ``cupy.fft``, the scatter-add in a RawKernel). The algorithm
is ducc0's (Arras et al. 2021, "Efficient high-dynamic-range wide-field imaging"):

- the ES kernel of support W on a grid >= 2x the image (``gpu_kernels``), W from epsilon;
- w-stacking: visibilities are also gridded along w onto planes ``w_p = w_first + p dw`` with
  the same kernel, each plane is Fourier transformed and multiplied by the phase screen
  ``exp(-2 pi i w_p (n - 1 + nshift))``; ``dw = 1 / (2 SIGMA max|n - 1 + nshift|)`` and
  ``nshift`` centres n - 1 on zero (ducc0's allow_nshift), visibilities with w < 0 are
  replaced by their Hermitian conjugates (-u, -v, -w, conj V) so that every w >= 0;
- the image is divided by the kernel's Fourier transform along u, v (and w) and by n.

Visibilities are sorted by their first w-plane on the host; each plane reads only its own
range of them, streamed to the device in chunks of ``chunk`` visibilities (kept resident on
the device when they fit in a quarter of its free memory), so device memory stays bounded.

Conventions (DESIGN.md): images are ``image[y, x]``, ``l = -(x - nx/2) cell``,
``m = (y - ny/2) cell``; ``dirty`` is ``Re sum w V exp(-2 pi i (u l + v m + w (n - 1)))``
and ``predict`` its adjoint, ``sum I exp(+2 pi i (u l + v m + w (n - 1)))`` -- exactly
gridding.py's ducc0 calls (vis2dirty/dirty2vis with flip_v=True, divide_by_n=False, and the
transpose). ``divide_by_n=True`` divides by n as ducc0's default does. Without w-gridding w is
ignored and nothing is divided by n (as ducc0).

The CuPy path has not been run on a GPU (none on the development machine).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from htclean.imaging import gpu_kernels
from htclean.imaging.device import select, to_numpy
from htclean.imaging.errors import InputError
from htclean.imaging.gpu_kernels import Kernel

C = 299792458.0  # speed of light, m/s
NUMPY_CHUNK = 1 << 15   # visibilities per chunk on numpy (np.add.at temporaries: M W^2)
CUPY_CHUNK = 1 << 20    # visibilities per chunk on the GPU


class Geometry(Protocol):
    nx: int
    ny: int
    cell: float


class Params(Protocol):
    wgridding: bool
    epsilon: float
    precision: str
    device: str


def good_size(n: int) -> int:
    """The smallest even n' >= n whose prime factors are 2, 3, 5, 7 (fast FFT lengths)."""
    m = max(int(n), 2)
    while True:
        if m % 2 == 0:
            r = m
            for p in (2, 3, 5, 7):
                while r % p == 0:
                    r //= p
            if r == 1:
                return m
        m += 1


@dataclass(frozen=True)
class Plan:
    """How one image is gridded: image ``(n0, n1)`` = (ny, nx) pixels of ``cell`` radians, grid
    ``(nu0, nu1)``, ``kernel``, w-planes ``w_first + p dw`` for p < ``nplanes`` (one plane and
    dw = 0 without w-gridding), ``nshift``, complex ``dtype`` of the grid."""

    n0: int
    n1: int
    cell: float
    nu0: int
    nu1: int
    kernel: Kernel
    wgridding: bool
    w_first: float
    dw: float
    nplanes: int
    nshift: float
    dtype: Any

    @property
    def real_dtype(self) -> Any:
        return np.float32 if self.dtype == np.complex64 else np.float64


def nm1_range(n0: int, n1: int, cell: float) -> tuple[float, float]:
    """(min, max) of n - 1 over the image's pixel centres (the centre pixel has n - 1 = 0)."""
    r2 = (n0 / 2 * cell) ** 2 + (n1 / 2 * cell) ** 2
    if r2 >= 1.0:
        raise InputError("the image is larger than the sky hemisphere (size x cell too big)")
    return -r2 / (math.sqrt(1.0 - r2) + 1.0), 0.0


def make_plan(n0: int, n1: int, cell: float, wmin: float, wmax: float, epsilon: float,
              precision: str, wgridding: bool) -> Plan:
    """The plan for an (n0, n1) image and visibilities with wmin <= w <= wmax (wavelengths,
    after the Hermitian flip, so wmin >= 0)."""
    kernel = gpu_kernels.choose_kernel(epsilon, 3 if wgridding else 2, precision)
    dtype = np.complex64 if precision == "single" else np.complex128
    nu0, nu1 = (max(good_size(math.ceil(gpu_kernels.SIGMA * n)), 2 * kernel.support)
                for n in (n0, n1))
    if not wgridding:
        return Plan(n0, n1, cell, nu0, nu1, kernel, False, 0.0, 0.0, 1, 0.0, dtype)
    lo, hi = nm1_range(n0, n1, cell)
    nshift = -0.5 * (lo + hi)
    dw = 0.5 / gpu_kernels.SIGMA / max(abs(lo + nshift), abs(hi + nshift))
    nplanes = int((wmax - wmin) / dw + kernel.support)
    w_first = 0.5 * (wmin + wmax) - 0.5 * (nplanes - 1) * dw
    return Plan(n0, n1, cell, nu0, nu1, kernel, True, w_first, dw, nplanes, nshift, dtype)


def _pixel_nm1(xp: ModuleType, plan: Plan) -> Any:
    """n - 1 of every pixel, (n0, n1) float64 on ``xp``."""
    y = (np.arange(plan.n0) - plan.n0 // 2) * plan.cell
    x = (np.arange(plan.n1) - plan.n1 // 2) * plan.cell
    r2 = xp.asarray(np.add.outer(y * y, x * x))
    return -r2 / (xp.sqrt(1.0 - r2) + 1.0)


def _corrections(xp: ModuleType, plan: Plan, divide_by_n: bool) -> Any:
    """What the image is divided by: (n0, n1) float64 on ``xp`` (kernel transforms, n)."""
    k0 = xp.asarray((np.arange(plan.n0) - plan.n0 // 2) / plan.nu0)
    k1 = xp.asarray((np.arange(plan.n1) - plan.n1 // 2) / plan.nu1)
    corr = gpu_kernels.fourier(k0, plan.kernel, xp)[:, None] * \
        gpu_kernels.fourier(k1, plan.kernel, xp)[None, :]
    if plan.wgridding:
        nm1 = _pixel_nm1(xp, plan)
        corr = corr * gpu_kernels.fourier((nm1 + plan.nshift) * plan.dw, plan.kernel, xp)
        if divide_by_n:
            corr = corr * (nm1 + 1.0)
    return corr


class Samples:
    """The visibilities one call grids: per sample ``c0, c1, w`` (wavelengths, float64: the
    coordinates paired with the image's axes 0 (y) and 1 (x), after the Hermitian flip),
    ``flip`` (bool: conjugated), ``index`` into the flattened (nrow, nchan) input, ``plane``
    (the first w-plane each touches); all sorted by ``plane``."""

    def __init__(self, uvw: np.ndarray, freq: np.ndarray, select_mask: np.ndarray | None,
                 wgridding: bool):
        scale = freq / C
        nrow, nchan = uvw.shape[0], freq.size
        index = (np.flatnonzero(select_mask) if select_mask is not None
                 else np.arange(nrow * nchan))
        row, chan = np.divmod(index, nchan)
        f = scale[chan]
        # image axis 0 is y (m), axis 1 is x with l = -x: exp(-2 pi i (u l + v m)) pairs
        # c0 = -v with y and c1 = u with x.
        c0, c1 = -uvw[row, 1] * f, uvw[row, 0] * f
        w = uvw[row, 2] * f if wgridding else np.zeros(index.size)
        flip = w < 0
        self.c0 = np.where(flip, -c0, c0)
        self.c1 = np.where(flip, -c1, c1)
        self.w = np.abs(w)
        self.flip = flip
        self.index = index
        self.plane = np.zeros(index.size, dtype=np.int64)

    def sort_by_plane(self, plan: Plan) -> None:
        """Set ``plane`` (first w-plane of each sample) and sort every array by it."""
        if plan.wgridding and self.w.size:
            t = (self.w - plan.w_first) / plan.dw
            first = np.floor(t - plan.kernel.support / 2).astype(np.int64) + 1
            self.plane = np.clip(first, 0, plan.nplanes - plan.kernel.support)
            order = np.argsort(self.plane, kind="stable")
            for name in ("c0", "c1", "w", "flip", "index", "plane"):
                setattr(self, name, getattr(self, name)[order])

    def plane_range(self, plan: Plan, p: int) -> tuple[int, int]:
        """[lo, hi): the sorted samples whose kernel touches w-plane ``p``."""
        if not plan.wgridding:
            return 0, self.index.size
        lo = int(np.searchsorted(self.plane, p - plan.kernel.support + 1, side="left"))
        return lo, int(np.searchsorted(self.plane, p, side="right"))


class _Stream:
    """Sample arrays on the device: resident when they fit ``budget`` bytes, else copied
    chunk by chunk from the host as they are needed."""

    def __init__(self, xp: ModuleType, arrays: dict[str, np.ndarray], budget: float):
        self.xp = xp
        nbytes = sum(a.nbytes for a in arrays.values())
        self.resident = nbytes <= budget
        self.arrays = {k: xp.asarray(a) for k, a in arrays.items()} if self.resident else arrays

    def get(self, lo: int, hi: int) -> dict[str, Any]:
        if self.resident:
            return {k: a[lo:hi] for k, a in self.arrays.items()}
        return {k: self.xp.asarray(a[lo:hi]) for k, a in self.arrays.items()}


def _device_budget(xp: ModuleType) -> float:
    if xp is np:
        return math.inf
    free, _total = xp.cuda.runtime.memGetInfo()
    return 0.25 * free


def _kernel_rows(xp: ModuleType, g: Any, kernel: Kernel, nu: int, dtype: Any) -> tuple[Any, Any]:
    """For grid coordinates ``g`` (M,) float64 in cells: the first cell of each kernel (M,)
    int32 in [0, nu) and the kernel values (M, W) ``dtype`` on cells first .. first + W - 1."""
    start = xp.floor(g - kernel.support / 2) + 1.0
    s = start[:, None] + xp.arange(kernel.support, dtype=xp.float64) - g[:, None]
    first = (start.astype(xp.int64) % nu).astype(xp.int32)
    return first, gpu_kernels.evaluate(xp, s, kernel, dtype)


def _plane_weights(xp: ModuleType, plan: Plan, w: Any, p: int) -> Any:
    """The w-kernel weight of w-plane ``p`` for samples ``w`` (M,) float64."""
    return gpu_kernels.evaluate(xp, p - (w - plan.w_first) / plan.dw, plan.kernel,
                                plan.real_dtype)


def _gather(xp: ModuleType, grid: Any, r0: Any, k0: Any, r1: Any, k1: Any) -> Any:
    """sum_{j,k} grid[(r0 + j) % nu0, (r1 + k) % nu1] k0[:, j] k1[:, k]: (M,) complex."""
    nu0, nu1 = grid.shape
    support = k0.shape[1]
    cols = (r1[:, None].astype(xp.int64) + xp.arange(support)) % nu1
    out = xp.zeros(r0.shape[0], dtype=grid.dtype)
    for j in range(support):
        rows = (r0.astype(xp.int64) + j) % nu0
        out += k0[:, j] * (grid[rows[:, None], cols] * k1).sum(axis=1)
    return out


def _image_index(xp: ModuleType, plan: Plan) -> tuple[Any, Any]:
    """Grid indices of the image pixels: (n0, 1) and (1, n1) int64 for ``grid[i0, i1]``."""
    i0 = (np.arange(plan.n0) - plan.n0 // 2) % plan.nu0
    i1 = (np.arange(plan.n1) - plan.n1 // 2) % plan.nu1
    return xp.asarray(i0)[:, None], xp.asarray(i1)[None, :]


def grid_to_image(xp: ModuleType, plan: Plan, samples: Samples, values: np.ndarray, *,
                  divide_by_n: bool = False, chunk: int | None = None,
                  scatter: str = "raw", budget: float | None = None) -> Any:
    """The adjoint: ``Re sum values exp(2 pi i (c0 y + c1 x - w (n - 1))) [/ n]`` over the
    image's pixel positions; (n0, n1) float64 on ``xp``. ``values`` (M,) complex: the weighted
    visibilities in the samples' order, already conjugated where flipped."""
    chunk = chunk or (NUMPY_CHUNK if xp is np else CUPY_CHUNK)
    stream = _Stream(xp, {"c0": samples.c0, "c1": samples.c1, "w": samples.w,
                          "val": values.astype(plan.dtype, copy=False)},
                     _device_budget(xp) if budget is None else budget)
    image = xp.zeros((plan.n0, plan.n1), dtype=xp.float64)
    grid = xp.zeros((plan.nu0, plan.nu1), dtype=plan.dtype)
    i0, i1 = _image_index(xp, plan)
    nu = _pixel_nm1(xp, plan) + plan.nshift if plan.wgridding else None
    for p in range(plan.nplanes):
        lo, hi = samples.plane_range(plan, p)
        if hi == lo:
            continue
        grid.fill(0)
        for a in range(lo, hi, chunk):
            s = stream.get(a, min(a + chunk, hi))
            r0, k0 = _kernel_rows(xp, s["c0"] * (plan.cell * plan.nu0), plan.kernel, plan.nu0,
                                  plan.real_dtype)
            r1, k1 = _kernel_rows(xp, s["c1"] * (plan.cell * plan.nu1), plan.kernel, plan.nu1,
                                  plan.real_dtype)
            val = s["val"]
            if plan.wgridding:
                val = val * _plane_weights(xp, plan, s["w"], p)
            gpu_kernels.scatter_add(xp, grid, r0, r1, k0, k1, val, scatter)
        plane = xp.fft.ifft2(grid, norm="forward")[i0, i1]
        if plan.wgridding:
            w_p = plan.w_first + p * plan.dw
            plane = plane * xp.exp((-2j * math.pi * w_p) * nu)
        image += plane.real
    return image / _corrections(xp, plan, divide_by_n)


def image_to_grid_vis(xp: ModuleType, plan: Plan, samples: Samples, image: Any, *,
                      divide_by_n: bool = False, chunk: int | None = None,
                      budget: float | None = None) -> np.ndarray:
    """The forward operator: ``sum image [/ n] exp(-2 pi i (c0 y + c1 x - w (n - 1)))`` at
    every sample; (M,) complex128 numpy in the samples' order (not yet conjugated back)."""
    chunk = chunk or (NUMPY_CHUNK if xp is np else CUPY_CHUNK)
    stream = _Stream(xp, {"c0": samples.c0, "c1": samples.c1, "w": samples.w},
                     _device_budget(xp) if budget is None else budget)
    out = np.zeros(samples.index.size, dtype=np.complex128)
    img = (xp.asarray(image, dtype=xp.float64) / _corrections(xp, plan, divide_by_n))
    grid = xp.zeros((plan.nu0, plan.nu1), dtype=plan.dtype)
    i0, i1 = _image_index(xp, plan)
    nu = _pixel_nm1(xp, plan) + plan.nshift if plan.wgridding else None
    for p in range(plan.nplanes):
        lo, hi = samples.plane_range(plan, p)
        if hi == lo:
            continue
        plane = img
        if plan.wgridding:
            plane = img * xp.exp((2j * math.pi * (plan.w_first + p * plan.dw)) * nu)
        grid.fill(0)
        grid[i0, i1] = plane
        fgrid = xp.fft.fft2(grid)
        for a in range(lo, hi, chunk):
            b = min(a + chunk, hi)
            s = stream.get(a, b)
            r0, k0 = _kernel_rows(xp, s["c0"] * (plan.cell * plan.nu0), plan.kernel, plan.nu0,
                                  plan.real_dtype)
            r1, k1 = _kernel_rows(xp, s["c1"] * (plan.cell * plan.nu1), plan.kernel, plan.nu1,
                                  plan.real_dtype)
            vals = _gather(xp, fgrid, r0, k0, r1, k1)
            if plan.wgridding:
                vals = vals * _plane_weights(xp, plan, s["w"], p)
            out[a:b] += to_numpy(vals)
    return out


# --- the public functions: the signatures of gridding.dirty / gridding.predict -------------


def _check(uvw: np.ndarray, freq: np.ndarray, geom: Geometry) -> tuple[np.ndarray, np.ndarray]:
    uvw = np.asarray(uvw, dtype=np.float64)
    freq = np.asarray(freq, dtype=np.float64).reshape(-1)
    if uvw.ndim != 2 or uvw.shape[1] != 3:
        raise InputError(f"uvw must have shape (nrow, 3), got {uvw.shape}")
    if freq.size == 0 or not np.all(np.isfinite(freq) & (freq > 0)):
        raise InputError("freq must be a non-empty array of positive frequencies (Hz)")
    if geom.nx % 2 or geom.ny % 2 or geom.nx < 16 or geom.ny < 16:
        raise InputError(f"image size must be even and >= 16, got {geom.nx} x {geom.ny}")
    return uvw, freq


def _xp(params: Params, xp: ModuleType | None) -> ModuleType:
    return xp if xp is not None else select(params.device).xp


def dirty(uvw: np.ndarray, freq: np.ndarray, vis: np.ndarray, weight: np.ndarray | None,
          geom: Geometry, params: Params, *, xp: ModuleType | None = None,
          divide_by_n: bool = False, chunk: int | None = None,
          scatter: str = "raw") -> np.ndarray:
    """The unnormalised dirty image ``(ny, nx) float64``:
    ``Re sum w V exp(-2 pi i (u l + v m + w (n - 1)))`` (no division by the weight sum).

    uvw (nrow, 3) metres; freq (nchan,) Hz; vis (nrow, nchan) complex; weight (nrow, nchan)
    or None (all 1); samples of weight 0 are skipped, whatever their value; geom: nx, ny, cell
    (radians); params: wgridding, epsilon,
    precision (single/double), device. ``xp`` overrides the device (numpy or cupy);
    ``scatter``: raw or cupyx on CuPy.
    """
    uvw, freq = _check(uvw, freq, geom)
    shape = (uvw.shape[0], freq.size)
    vis = np.asarray(vis)
    weight = np.ones(shape) if weight is None else np.asarray(weight)
    if vis.shape != shape or weight.shape != shape:
        raise InputError(f"vis and weight must have shape (nrow, nchan) = {shape}, got "
                         f"{vis.shape} and {weight.shape}")
    xp = _xp(params, xp)
    mask = weight != 0
    samples = Samples(uvw, freq, mask, params.wgridding)
    if samples.index.size == 0:
        return np.zeros((geom.ny, geom.nx))
    plan = make_plan(geom.ny, geom.nx, geom.cell, float(samples.w.min()),
                     float(samples.w.max()), params.epsilon, params.precision, params.wgridding)
    samples.sort_by_plane(plan)
    values = vis.reshape(-1)[samples.index] * weight.reshape(-1)[samples.index]
    values = np.where(samples.flip, np.conj(values), values)
    if plan.wgridding:
        values = values * np.exp((2j * math.pi * plan.nshift) * samples.w)
    image = grid_to_image(xp, plan, samples, values, divide_by_n=divide_by_n, chunk=chunk,
                          scatter=scatter)
    return to_numpy(image)


def predict(image: np.ndarray, uvw: np.ndarray, freq: np.ndarray, geom: Geometry,
            params: Params, *, xp: ModuleType | None = None, divide_by_n: bool = False,
            chunk: int | None = None) -> np.ndarray:
    """Model visibilities ``(nrow, nchan) complex128`` of a model ``image`` (ny, nx) in
    Jy/pixel: ``sum I exp(+2 pi i (u l + v m + w (n - 1)))``, the adjoint of ``dirty``."""
    uvw, freq = _check(uvw, freq, geom)
    image = np.asarray(image) if not hasattr(image, "__cuda_array_interface__") else image
    if tuple(image.shape) != (geom.ny, geom.nx):
        raise InputError(f"model image must have shape (ny, nx) = {(geom.ny, geom.nx)}, got "
                         f"{tuple(image.shape)}")
    xp = _xp(params, xp)
    samples = Samples(uvw, freq, None, params.wgridding)
    out = np.zeros(uvw.shape[0] * freq.size, dtype=np.complex128)
    if samples.index.size == 0:
        return out.reshape(uvw.shape[0], freq.size)
    plan = make_plan(geom.ny, geom.nx, geom.cell, float(samples.w.min()),
                     float(samples.w.max()), params.epsilon, params.precision, params.wgridding)
    samples.sort_by_plane(plan)
    vals = image_to_grid_vis(xp, plan, samples, image, divide_by_n=divide_by_n, chunk=chunk)
    if plan.wgridding:
        vals = vals * np.exp((-2j * math.pi * plan.nshift) * samples.w)
    out[samples.index] = np.where(samples.flip, np.conj(vals), vals)
    return out.reshape(uvw.shape[0], freq.size)

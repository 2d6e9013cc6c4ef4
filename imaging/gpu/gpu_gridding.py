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

A call's rows go to the device in blocks that fit a quarter of its free memory (each block
gridded on its own, the images summed), so device memory stays bounded; on the device the
samples are selected, flipped and sorted by first w-plane and uv tile, each w-plane reads
only its own range of them, ``chunk`` samples at a time.

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
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from htclean.imaging.errors import InputError
from htclean.imaging.gpu import gpu_kernels
from htclean.imaging.gpu.device import select, to_numpy
from htclean.imaging.gpu.gpu_kernels import Kernel
from htclean.imaging.gpu.gpu_plan import Plan, corrections, make_plan, pixel_nm1

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


class Samples:
    """The visibilities one call grids, on the device (``xp`` arrays), sorted by their first
    w-plane and, within a plane, by 32 x 32-cell tile of the uv grid (so that neighbouring
    threads add to neighbouring cells). Per sample: ``c0, c1, w`` (wavelengths, float64: the
    coordinates paired with the image's axes 0 (y) and 1 (x), after the Hermitian flip),
    ``flip`` (bool: conjugated), ``index`` into the flattened (nrow, nchan) input.

    ``uvw`` (nrow, 3) metres and ``freq`` (nchan,) Hz are numpy; ``mask`` (nrow, nchan) bool
    selects samples (None: all)."""

    TILE = 32

    def __init__(self, xp: ModuleType, uvw: np.ndarray, freq: np.ndarray,
                 mask: np.ndarray | None, wgridding: bool):
        self.xp = xp
        scale = xp.asarray(freq / C)
        u, v, w = ((xp.asarray(uvw[:, k])[:, None] * scale).reshape(-1) for k in range(3))
        self.index = (xp.flatnonzero(xp.asarray(mask).reshape(-1)) if mask is not None
                      else xp.arange(u.size))
        if mask is not None:
            u, v, w = u[self.index], v[self.index], w[self.index]
        if not wgridding:
            w = xp.zeros_like(u)
        self.flip = w < 0
        sign = xp.where(self.flip, -1.0, 1.0)
        # image axis 0 is y (m), axis 1 is x with l = -x: exp(-2 pi i (u l + v m)) pairs
        # c0 = -v with y and c1 = u with x.
        self.c0, self.c1, self.w = -v * sign, u * sign, w * sign
        self.bounds = np.array([0, self.size])

    @property
    def size(self) -> int:
        return int(self.index.size)

    def w_range(self) -> tuple[float, float]:
        """(min, max) of w in wavelengths (>= 0 after the flip)."""
        xp = self.xp
        return tuple(to_numpy(xp.stack([self.w.min(), self.w.max()])).tolist())

    def sort(self, plan: Plan, *others: Any) -> list[Any]:
        """Sort the samples (and ``others``, per-sample xp arrays, returned in the new order)
        by first w-plane, then uv tile; record where each plane's samples start."""
        xp = self.xp
        nt0, nt1 = -(-plan.nu0 // self.TILE), -(-plan.nu1 // self.TILE)
        t0 = (xp.floor(self.c0 * (plan.cell * plan.nu0)).astype(xp.int64) % plan.nu0) // self.TILE
        t1 = (xp.floor(self.c1 * (plan.cell * plan.nu1)).astype(xp.int64) % plan.nu1) // self.TILE
        plane = self.first_plane(plan)
        order = xp.argsort((plane * nt0 + t0) * nt1 + t1)
        for name in ("c0", "c1", "w", "flip", "index"):
            setattr(self, name, getattr(self, name)[order])
        plane = plane[order]
        self.bounds = to_numpy(xp.searchsorted(plane, xp.arange(plan.nplanes + 1)))
        return [a[order] for a in others]

    def first_plane(self, plan: Plan) -> Any:
        """The first w-plane each sample touches: (M,) int64 in [0, nplanes - W]."""
        xp = self.xp
        if not plan.wgridding:
            return xp.zeros(self.size, dtype=xp.int64)
        t = (self.w - plan.w_first) / plan.dw
        first = xp.floor(t - plan.kernel.support / 2).astype(xp.int64) + 1
        return xp.clip(first, 0, plan.nplanes - plan.kernel.support)

    def plane_range(self, plan: Plan, p: int) -> tuple[int, int]:
        """[lo, hi): the sorted samples whose kernel touches w-plane ``p``."""
        if not plan.wgridding:
            return 0, self.size
        return (int(self.bounds[max(0, p - plan.kernel.support + 1)]),
                int(self.bounds[p + 1]))


# Device bytes per visibility while one block is prepared and gridded (inputs, coordinates,
# values, index, sort keys and the sort's scratch), for splitting calls into row blocks.
BYTES_PER_SAMPLE = 160


def device_budget(xp: ModuleType) -> float:
    """Bytes of samples one block may take: a quarter of the free GPU memory; unbounded on
    numpy (the caller's chunk_rows bounds host memory)."""
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


def grid_to_image(xp: ModuleType, plan: Plan, samples: Samples, values: Any, *,
                  divide_by_n: bool = False, chunk: int | None = None,
                  scatter: str = "raw") -> Any:
    """The adjoint: ``Re sum values exp(2 pi i (c0 y + c1 x - w (n - 1))) [/ n]`` over the
    image's pixel positions; (n0, n1) float64 on ``xp``. ``values`` (M,) complex xp array: the
    weighted visibilities in the samples' (sorted) order, conjugated where flipped, with the
    nshift phase applied. ``chunk``: samples gridded at a time (bounds the temporaries)."""
    chunk = chunk or (NUMPY_CHUNK if xp is np else CUPY_CHUNK)
    values = values.astype(plan.dtype, copy=False)
    image = xp.zeros((plan.n0, plan.n1), dtype=xp.float64)
    grid = xp.zeros((plan.nu0, plan.nu1), dtype=plan.dtype)
    i0, i1 = _image_index(xp, plan)
    nu = pixel_nm1(xp, plan) + plan.nshift if plan.wgridding else None
    for p in range(plan.nplanes):
        lo, hi = samples.plane_range(plan, p)
        if hi == lo:
            continue
        grid.fill(0)
        for a in range(lo, hi, chunk):
            b = min(a + chunk, hi)
            r0, k0 = _kernel_rows(xp, samples.c0[a:b] * (plan.cell * plan.nu0), plan.kernel,
                                  plan.nu0, plan.real_dtype)
            r1, k1 = _kernel_rows(xp, samples.c1[a:b] * (plan.cell * plan.nu1), plan.kernel,
                                  plan.nu1, plan.real_dtype)
            val = values[a:b]
            if plan.wgridding:
                val = val * _plane_weights(xp, plan, samples.w[a:b], p)
            gpu_kernels.scatter_add(xp, grid, r0, r1, k0, k1, val, scatter)
        plane = xp.fft.ifft2(grid, norm="forward")[i0, i1]
        if plan.wgridding:
            w_p = plan.w_first + p * plan.dw
            plane = plane * xp.exp((-2j * math.pi * w_p) * nu)
        image += plane.real
    return image / corrections(xp, plan, divide_by_n)


def image_to_grid_vis(xp: ModuleType, plan: Plan, samples: Samples, image: Any, *,
                      divide_by_n: bool = False, chunk: int | None = None) -> Any:
    """The forward operator: ``sum image [/ n] exp(-2 pi i (c0 y + c1 x - w (n - 1)))`` at
    every sample; (M,) complex xp array in the samples' order (not yet conjugated back, no
    nshift phase)."""
    chunk = chunk or (NUMPY_CHUNK if xp is np else CUPY_CHUNK)
    out = xp.zeros(samples.size, dtype=np.complex128)
    img = xp.asarray(image, dtype=xp.float64) / corrections(xp, plan, divide_by_n)
    grid = xp.zeros((plan.nu0, plan.nu1), dtype=plan.dtype)
    i0, i1 = _image_index(xp, plan)
    nu = pixel_nm1(xp, plan) + plan.nshift if plan.wgridding else None
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
            r0, k0 = _kernel_rows(xp, samples.c0[a:b] * (plan.cell * plan.nu0), plan.kernel,
                                  plan.nu0, plan.real_dtype)
            r1, k1 = _kernel_rows(xp, samples.c1[a:b] * (plan.cell * plan.nu1), plan.kernel,
                                  plan.nu1, plan.real_dtype)
            vals = _gather(xp, fgrid, r0, k0, r1, k1)
            if plan.wgridding:
                vals = vals * _plane_weights(xp, plan, samples.w[a:b], p)
            out[a:b] += vals
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


def _blocks(xp: ModuleType, nrow: int, nchan: int, budget: float | None) -> range:
    """Row starts of the blocks one call is split into so that each fits the device budget
    (``range.step`` rows each)."""
    budget = device_budget(xp) if budget is None else budget
    rows = max(1, nrow if math.isinf(budget) else int(budget // (BYTES_PER_SAMPLE * nchan)))
    return range(0, nrow, rows)


def _xp(params: Params, xp: ModuleType | None) -> ModuleType:
    return xp if xp is not None else select(params.device).xp


def _plan(samples: Samples, geom: Geometry, params: Params) -> Plan:
    wmin, wmax = samples.w_range()
    return make_plan(geom.ny, geom.nx, geom.cell, wmin, wmax, params.epsilon, params.precision,
                     params.wgridding)


def _dirty_block(xp: ModuleType, uvw: np.ndarray, freq: np.ndarray, vis: np.ndarray,
                 weight: np.ndarray | None, geom: Geometry, params: Params, divide_by_n: bool,
                 chunk: int | None, scatter: str) -> Any:
    mask = None if weight is None else weight != 0
    samples = Samples(xp, uvw, freq, mask, params.wgridding)
    if samples.size == 0:
        return 0.0
    plan = _plan(samples, geom, params)
    values = xp.asarray(vis).reshape(-1)
    if weight is not None:
        values = values[samples.index] * xp.asarray(weight).reshape(-1)[samples.index]
    values = xp.where(samples.flip, xp.conj(values), values)
    if plan.wgridding:
        values = values * xp.exp((2j * math.pi * plan.nshift) * samples.w)
    (values,) = samples.sort(plan, values)
    return grid_to_image(xp, plan, samples, values, divide_by_n=divide_by_n, chunk=chunk,
                         scatter=scatter)


def dirty(uvw: np.ndarray, freq: np.ndarray, vis: np.ndarray, weight: np.ndarray | None,
          geom: Geometry, params: Params, *, xp: ModuleType | None = None,
          divide_by_n: bool = False, chunk: int | None = None, scatter: str = "raw",
          budget: float | None = None) -> np.ndarray:
    """The unnormalised dirty image ``(ny, nx) float64``:
    ``Re sum w V exp(-2 pi i (u l + v m + w (n - 1)))`` (no division by the weight sum).

    uvw (nrow, 3) metres; freq (nchan,) Hz; vis (nrow, nchan) complex; weight (nrow, nchan)
    or None (all 1); samples of weight 0 are skipped, whatever their value; geom: nx, ny, cell
    (radians); params: wgridding, epsilon, precision (single/double), device. ``xp`` overrides
    the device (numpy or cupy); ``scatter``: raw or cupyx on CuPy; ``chunk``: samples gridded
    at a time; ``budget``: device bytes one block of rows may take (default: a quarter of the
    free GPU memory); larger calls are split into row blocks, gridded one by one and summed.
    """
    uvw, freq = _check(uvw, freq, geom)
    shape = (uvw.shape[0], freq.size)
    vis = np.asarray(vis)
    weight = None if weight is None else np.asarray(weight)
    if vis.shape != shape or (weight is not None and weight.shape != shape):
        raise InputError(f"vis and weight must have shape (nrow, nchan) = {shape}, got "
                         f"{vis.shape} and {shape if weight is None else weight.shape}")
    xp = _xp(params, xp)
    image = xp.zeros((geom.ny, geom.nx))
    blocks = _blocks(xp, shape[0], shape[1], budget)
    for r in blocks:
        rows = slice(r, r + blocks.step)
        image += _dirty_block(xp, uvw[rows], freq, vis[rows],
                              None if weight is None else weight[rows], geom, params,
                              divide_by_n, chunk, scatter)
    return to_numpy(image)


def _predict_block(xp: ModuleType, image: Any, uvw: np.ndarray, freq: np.ndarray,
                   geom: Geometry, params: Params, divide_by_n: bool,
                   chunk: int | None) -> np.ndarray:
    samples = Samples(xp, uvw, freq, None, params.wgridding)
    if samples.size == 0:
        return np.zeros((uvw.shape[0], freq.size), np.complex128)
    plan = _plan(samples, geom, params)
    samples.sort(plan)
    vals = image_to_grid_vis(xp, plan, samples, image, divide_by_n=divide_by_n, chunk=chunk)
    if plan.wgridding:
        vals = vals * xp.exp((-2j * math.pi * plan.nshift) * samples.w)
    out = xp.zeros(samples.size, dtype=xp.complex128)
    out[samples.index] = xp.where(samples.flip, xp.conj(vals), vals)
    return to_numpy(out).reshape(uvw.shape[0], freq.size)


def predict(image: Any, uvw: np.ndarray, freq: np.ndarray, geom: Geometry, params: Params, *,
            xp: ModuleType | None = None, divide_by_n: bool = False, chunk: int | None = None,
            budget: float | None = None) -> np.ndarray:
    """Model visibilities ``(nrow, nchan) complex128`` of a model ``image`` (ny, nx) in
    Jy/pixel (numpy, or an array of ``xp``): ``sum I exp(+2 pi i (u l + v m + w (n - 1)))``,
    the adjoint of ``dirty``. Keywords as ``dirty``'s."""
    uvw, freq = _check(uvw, freq, geom)
    image = image if hasattr(image, "shape") else np.asarray(image)
    if tuple(image.shape) != (geom.ny, geom.nx):
        raise InputError(f"model image must have shape (ny, nx) = {(geom.ny, geom.nx)}, got "
                         f"{tuple(image.shape)}")
    xp = _xp(params, xp)
    image = xp.asarray(image, dtype=xp.float64)
    blocks = _blocks(xp, uvw.shape[0], freq.size, budget)
    out = [_predict_block(xp, image, uvw[r:r + blocks.step], freq, geom, params, divide_by_n,
                          chunk) for r in blocks]
    if not out:
        return np.zeros((uvw.shape[0], freq.size), np.complex128)
    return np.concatenate(out, axis=0)

"""Gridding and degridding on the CPU with ducc0.wgridder, and the CPU/GPU dispatch.

Convention (verified against a direct DFT in tests/test_gridding.py): the MS visibilities are
``V = sum S exp(+2 pi i (u l + v m + w (n - 1)))``, so the dirty image is
``I(l, m) = Re sum_k w_k V_k exp(-2 pi i (u_k l + v_k m + w_k (n - 1)))``. ducc0's
``vis2dirty(..., flip_u=False, flip_v=True, flip_w=False)`` returns it as ``[x, y]``; its
transpose is the FITS ``image[y, x]`` of geometry.py. No 1/n factor is applied
(``divide_by_n=False``): ``predict`` is then the exact adjoint, a model pixel of S Jy predicts
``S exp(+2 pi i ...)``, and the dirty image of a point source of S Jy peaks at S x sum(w).

Reproducible on any machine: ducc0 adds the samples of several threads onto one grid in an
order of their timing, so ``dirty`` never asks it for more than one thread. It splits the
samples into ``params.threads`` streams by |w| (each stream then needs about its share of the
w-planes: the FFT work is not repeated), grids each stream on one ducc0 thread (several at
once, on at most the cores there are) and sums the streams in order. ``params.threads`` is the
plan's (cpus.planned_threads), so the same plan gives the same bits wherever a job runs; the
degridding and FFTs run on exactly that many threads too (cpus.ducc_threads).

``GridParams.device`` picks the implementation: ``"gpu"`` calls htclean.imaging.gpu.gpu_gridding
(same signatures, imported only then), ``"auto"`` uses it only when CuPy finds a CUDA device
(``resolve_device``), ``"cpu"`` never imports CuPy.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from htclean.imaging.cpus import ducc_threads, planned_threads, resolve_threads
from htclean.imaging.errors import InputError
from htclean.imaging.geometry import ImageGeometry

DEVICES = ("auto", "cpu", "gpu")
SINGLE_EPSILON = 1e-5  # the finest epsilon float32 gridding is asked for (as WSClean's)
_FLIPS = {"flip_u": False, "flip_v": True, "flip_w": False, "divide_by_n": False}


@dataclass(frozen=True)
class GridParams:
    """How to grid: w-gridding on/off, accuracy epsilon, precision ``single`` (float32 /
    complex64; epsilon >= 1e-5) or ``double``, CPU threads (>= 1: the planned count, which
    fixes how the samples are split and so the bits of the result), device auto|cpu|gpu.
    ``from_settings`` resolves precision ``auto``: single where epsilon >= 1e-5 (as WSClean
    and ducc0 users grid), double below."""

    wgridding: bool = True
    epsilon: float = 1e-6
    precision: str = "double"
    threads: int = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.precision not in ("single", "double"):
            raise InputError(f"gridder.precision must be single or double, not "
                             f"{self.precision!r}")
        if self.device not in DEVICES:
            raise InputError(f"gridder.device must be one of {', '.join(DEVICES)}, "
                             f"not {self.device!r}")
        single = self.precision == "single"
        low = SINGLE_EPSILON if single else 2e-13
        if not (low <= self.epsilon if single else low < self.epsilon) or self.epsilon >= 0.1:
            raise InputError(f"gridder.epsilon must lie in {'[' if single else '('}{low:g}, 0.1) "
                             f"with gridder.precision {self.precision}, got {self.epsilon:g}")
        if self.threads < 1:
            raise InputError(f"gridder.threads must be >= 1, got {self.threads}")

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> GridParams:
        """From ``settings['gridder']``; threads 0 means execution.request_cpus (the planned
        count, whatever cores the machine has)."""
        g = settings["gridder"]
        threads = planned_threads(settings)
        epsilon = float(g["epsilon"])
        precision = g["precision"]
        if precision == "auto":
            precision = "single" if epsilon >= SINGLE_EPSILON else "double"
        return cls(wgridding=bool(g["wgridding"]), epsilon=epsilon, precision=precision,
                   threads=threads, device=g["device"])

    @property
    def real(self) -> type:
        """numpy float type of the images and weights."""
        return np.float32 if self.precision == "single" else np.float64

    @property
    def complex(self) -> type:
        """numpy complex type of the visibilities."""
        return np.complex64 if self.precision == "single" else np.complex128


def resolve_device(device: str) -> str:
    """``"cpu"`` or ``"gpu"`` for a configured device (device.py's ``select``): ``"auto"`` is
    ``"gpu"`` only when CuPy imports and finds a CUDA device; ``"gpu"`` without one is an
    InputError; ``"cpu"`` never imports CuPy."""
    from htclean.imaging.gpu import device as devices

    return devices.select(device).kind


def _check(uvw: np.ndarray, freq: np.ndarray, shape: tuple[int, int], what: str) -> None:
    if uvw.ndim != 2 or uvw.shape[1] != 3:
        raise InputError(f"uvw must have shape (nrow, 3), got {uvw.shape}")
    if freq.ndim != 1:
        raise InputError(f"freq must have shape (nchan,), got {freq.shape}")
    if shape != (uvw.shape[0], freq.shape[0]):
        raise InputError(f"{what} has shape {shape}, expected (nrow, nchan) = "
                         f"{(uvw.shape[0], freq.shape[0])}")


def dirty(uvw: np.ndarray, freq: np.ndarray, vis: np.ndarray | None,
          weight: np.ndarray | None, geom: ImageGeometry, params: GridParams,
          tile: tuple[int, int] | None = None, add_to: np.ndarray | None = None) -> np.ndarray:
    """Unnormalised dirty image ``Re sum w V exp(-2 pi i (u l + v m + w (n - 1)))``.

    uvw (nrow, 3) float64 metres; freq (nchan,) Hz; vis (nrow, nchan) complex, or None for
    the PSF (V = 1); weight (nrow, nchan) float or None (all 1); ducc0 skips samples of weight
    0. Returns ``image[y, x]`` (ny, nx) in the gridder's float type (float32 single, float64
    double; the CPU's may be a transposed view), not divided by the weight sum. tile (ny, nx):
    on the CPU, grid an image larger than that as tiles of at most that size (ducc0 shifted
    to each tile's centre; the same image, a tile's grid in memory at a time: a 2x PSF costs
    the memory of the image's). add_to: an image of the gridder's float type the result is
    added to, tile by tile, and returned (a tiled image is then never held twice).
    """
    shape = (uvw.shape[0] if uvw.ndim == 2 else -1, freq.shape[0] if freq.ndim == 1 else -1)
    if resolve_device(params.device) == "gpu":
        from htclean.imaging.gpu import gpu_gridding

        if vis is None:
            vis = np.ones(shape, params.complex)
        image = gpu_gridding.dirty(uvw, freq, vis, weight, geom, params)
        if add_to is None:
            return image
        add_to += image
        return add_to
    if vis is not None:
        _check(uvw, freq, vis.shape, "vis")
    if weight is not None:
        _check(uvw, freq, weight.shape, "weight")
    if shape[0] == 0 or shape[1] == 0:
        return np.zeros(geom.shape, params.real)
    args = {"uvw": np.ascontiguousarray(uvw, dtype=np.float64),
            "freq": np.ascontiguousarray(freq, dtype=np.float64),
            # the PSF's unit visibilities: one value broadcast (no nrow x nchan array)
            "vis": np.broadcast_to(params.complex(1), shape) if vis is None else
            np.ascontiguousarray(vis, dtype=params.complex),
            "wgt": None if weight is None else np.ascontiguousarray(weight, dtype=params.real)}
    if add_to is not None and add_to.shape != geom.shape:
        raise InputError(f"add_to has shape {add_to.shape}, expected {geom.shape}")
    if tile is None or (geom.ny <= tile[0] and geom.nx <= tile[1]):
        image = _vis2dirty(args, geom.nx, geom.ny, geom.cell, params).T
        if add_to is None:
            return image
        add_to += image
        return add_to
    out = np.zeros(geom.shape, params.real) if add_to is None else add_to
    for y0, m in _tiles(geom.ny, tile[0]):
        for x0, n in _tiles(geom.nx, tile[1]):
            # ducc0's image centre, relative to the phase centre (pixel (nx // 2, ny // 2))
            shift = ((x0 + n // 2 - geom.nx // 2) * geom.cell,
                     -(y0 + m // 2 - geom.ny // 2) * geom.cell)
            out[y0:y0 + m, x0:x0 + n] += _vis2dirty(args, n, m, geom.cell, params, shift).T
    return out


def _tiles(size: int, most: int) -> list[tuple[int, int]]:
    """(start, length) of about equal even tiles of at most ``most`` covering ``size``."""
    count = -(-size // most)
    cuts = [2 * round(size * k / count / 2) for k in range(count + 1)]
    return [(a, b - a) for a, b in zip(cuts, cuts[1:], strict=False)]


def w_streams(uvw: np.ndarray, count: int) -> list[np.ndarray | None]:
    """Masks ``(nrow, 1)`` uint8 of ``count`` streams of rows split at the quantiles of |w|
    (each stream a contiguous |w| range, so it needs only its share of the w-planes; empty
    ones left out), or ``[None]`` for one stream. Depends only on the data and ``count``."""
    if count <= 1 or len(uvw) < 2 * count:
        return [None]
    w = np.abs(uvw[:, 2])
    cuts = np.partition(w, [len(w) * k // count for k in range(1, count)])
    edges = [cuts[len(w) * k // count] for k in range(1, count)]
    stream = np.searchsorted(np.asarray(edges), w, side="right")
    masks = [(stream == k).astype(np.uint8)[:, None] for k in range(count)]
    return [m for m in masks if m.any()]  # equal |w| (a snapshot) can leave a stream empty


def _vis2dirty(args: dict, nx: int, ny: int, cell: float, params: GridParams,
               shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """ducc0's dirty image of ``args``, summed over the plan's |w| streams in order (each on
    one ducc0 thread, up to the cores available at once): the same bits on any machine."""
    from ducc0.wgridder.experimental import vis2dirty

    shape = args["vis"].shape

    def one(mask: np.ndarray | None) -> np.ndarray:
        return vis2dirty(**args, mask=None if mask is None else np.broadcast_to(mask, shape),
                         npix_x=nx, npix_y=ny, pixsize_x=cell, pixsize_y=cell,
                         epsilon=params.epsilon, do_wgridding=params.wgridding, nthreads=1,
                         center_x=shift[0], center_y=shift[1], **_FLIPS)

    masks = w_streams(args["uvw"], params.threads)
    workers = resolve_threads(len(masks))
    if workers == 1:
        parts = [one(m) for m in masks]
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="htclean-grid") as pool:
            parts = list(pool.map(one, masks))  # ducc0 releases the GIL
    image = parts[0]
    for part in parts[1:]:
        image += part
    return image


def predict(image: np.ndarray, uvw: np.ndarray, freq: np.ndarray, geom: ImageGeometry,
            params: GridParams) -> np.ndarray:
    """Model visibilities ``sum_pixels image exp(+2 pi i (u l + v m + w (n - 1)))``.

    image (ny, nx) in Jy/pixel (FITS orientation); uvw (nrow, 3) metres; freq (nchan,) Hz.
    Returns (nrow, nchan) complex in the gridder's precision (complex64 single, complex128
    double). The adjoint of ``dirty`` with unit weights.
    """
    if resolve_device(params.device) == "gpu":
        from htclean.imaging.gpu import gpu_gridding

        return gpu_gridding.predict(image, uvw, freq, geom, params)
    if image.shape != geom.shape:
        raise InputError(f"model image has shape {image.shape}, expected (ny, nx) = {geom.shape}")
    _check(uvw, freq, (uvw.shape[0] if uvw.ndim == 2 else -1, freq.shape[0]), "uvw")
    if uvw.shape[0] == 0 or freq.shape[0] == 0:
        return np.zeros((uvw.shape[0], freq.shape[0]), params.complex)
    from ducc0.wgridder.experimental import dirty2vis

    vis = dirty2vis(uvw=np.ascontiguousarray(uvw, dtype=np.float64),
                    freq=np.ascontiguousarray(freq, dtype=np.float64),
                    dirty=np.ascontiguousarray(image.T, dtype=params.real),
                    pixsize_x=geom.cell, pixsize_y=geom.cell, epsilon=params.epsilon,
                    do_wgridding=params.wgridding, nthreads=ducc_threads(params.threads),
                    **_FLIPS)
    return vis.astype(params.complex, copy=False)

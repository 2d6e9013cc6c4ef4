"""Gridding and degridding throughput of the GPU gridder against ducc0 on every CPU core.

    python benchmarks/gpu_gridding.py [--size 4096] [--nvis 2e7] [--epsilon 1e-5]
        [--precision single] [--no-wgridding] [--repeat 3] [--ducc-nvis N]
        [--numpy-size 1024] [--numpy-nvis 2e5]

Synthetic data: Gaussian baselines (u, v, w alike, up to the image's uv limit), 16 channels
over +-10 % of 1.4 GHz, unit weights; the cell puts the longest baseline at 80 % of the grid's
reach, so the w term matters over the field. Prints, best of --repeat after one warm-up call:
wall seconds and visibilities/s of ``dirty`` (gridding) and ``predict`` (degridding) with
xp = cupy (RawKernel and cupyx.scatter_add scatter), of gridding.py's ducc0 calls with all
cores (the GPU figures include the transfers to and from the device and the preparation on
it: selection, Hermitian flip, sort by w-plane and uv tile), and the largest difference
between the GPU and ducc0 images relative to the peak (an accuracy check on the hardware).
Without a GPU it says so and times the numpy reference path (a smaller problem: it is a
reference, not a performance path) and ducc0 only.
"""

from __future__ import annotations

import argparse
import os
import time
from types import SimpleNamespace

import numpy as np

from htclean.imaging.geometry import ImageGeometry
from htclean.imaging.gpu import device, gpu_gridding, gpu_plan
from htclean.imaging.gridding import gridding

C = gpu_gridding.C


def problem(nvis: int, size: int, seed: int = 0):
    """(uvw, freq, vis, weight, geometry) of ``nvis`` visibilities for a size^2 image."""
    nchan = 16
    nrow = max(1, nvis // nchan)
    rng = np.random.default_rng(seed)
    freq = np.linspace(1.26e9, 1.54e9, nchan)
    uvw = rng.normal(0.0, 1.0, (nrow, 3)) * 3000.0
    umax = np.abs(uvw[:, :2]).max() * freq.max() / C  # wavelengths
    cell = 0.8 / (2.0 * umax)  # longest baseline at 80 % of the uv plane's edge
    vis = (rng.normal(size=(nrow, nchan)) + 1j * rng.normal(size=(nrow, nchan))).astype(
        np.complex64)
    weight = np.ones((nrow, nchan), np.float32)
    geom = ImageGeometry(nx=size, ny=size, cell=cell, ra=0.0, dec=0.5, freq=1.4e9)
    return uvw, freq, vis, weight, geom


def best(fn, repeat: int, warmup: bool = True) -> tuple[float, object]:
    """Best wall time of ``repeat`` calls (after one untimed call when ``warmup``: kernel
    compilation, FFT plans, memory pools) and the last result."""
    out = fn() if warmup else None
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def line(what: str, seconds: float, nvis: int) -> None:
    print(f"  {what:<44s} {seconds:9.3f} s  {nvis / seconds:10.3e} vis/s", flush=True)


def describe(uvw, freq, weight, geom, params) -> str:
    samples = gpu_gridding.Samples(np, uvw, freq, weight != 0, params.wgridding)
    plan = gpu_plan.make_plan(geom.ny, geom.nx, geom.cell, *samples.w_range(),
                                  params.epsilon, params.precision, params.wgridding)
    return (f"the GPU gridder's plan: grid {plan.nu0}x{plan.nu1}, kernel support "
            f"{plan.kernel.support}, {plan.nplanes} w-plane(s); ducc0 picks its own")


def run_gpu(cupy, uvw, freq, vis, weight, geom, params, repeat: int) -> np.ndarray:
    nvis = vis.size
    for scatter in ("raw", "cupyx"):
        t, image = best(lambda s=scatter: gpu_gridding.dirty(uvw, freq, vis, weight, geom, params,
                                                              xp=cupy, scatter=s), repeat)
        line(f"gridding   GPU ({scatter} scatter)", t, nvis)
        if scatter == "raw":
            gpu_image = image
    model = np.zeros((geom.ny, geom.nx), np.float32)
    model[geom.ny // 3, geom.nx // 4] = 1.0
    t, _ = best(lambda: gpu_gridding.predict(model, uvw, freq, geom, params, xp=cupy), repeat)
    line("degridding GPU", t, nvis)
    return gpu_image


def run_ducc(uvw, freq, vis, weight, geom, params, repeat: int) -> np.ndarray:
    nvis = vis.size
    t, image = best(lambda: gridding.dirty(uvw, freq, vis, weight, geom, params), repeat, False)
    line(f"gridding   ducc0 ({params.threads} threads)", t, nvis)
    model = np.zeros((geom.ny, geom.nx), np.float32)
    model[geom.ny // 3, geom.nx // 4] = 1.0
    t, _ = best(lambda: gridding.predict(model, uvw, freq, geom, params), repeat, False)
    line(f"degridding ducc0 ({params.threads} threads)", t, nvis)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--nvis", type=float, default=2e7)
    parser.add_argument("--epsilon", type=float, default=1e-5)
    parser.add_argument("--precision", choices=("single", "double"), default="single")
    parser.add_argument("--no-wgridding", action="store_true")
    parser.add_argument("--repeat", type=int, default=None,
                        help="timed calls, best taken (default 3 with a GPU, 1 without)")
    parser.add_argument("--ducc-nvis", type=float, default=None,
                        help="visibilities for ducc0 (default: --nvis with a GPU, 2e6 without)")
    parser.add_argument("--numpy-size", type=int, default=1024,
                        help="image size of the numpy reference path (no GPU)")
    parser.add_argument("--numpy-nvis", type=float, default=2e5)
    args = parser.parse_args()
    cupy, name, reason = device.probe()
    if args.repeat is None:
        args.repeat = 3 if cupy is not None else 1
    threads = len(os.sched_getaffinity(0))
    params = SimpleNamespace(wgridding=not args.no_wgridding, epsilon=args.epsilon,
                             precision=args.precision, threads=threads, device="cpu")
    # ducc0 (and so gridding.GridParams) wants epsilon > 1e-5 in single precision
    ducc_eps = max(args.epsilon, 1.0001e-5) if args.precision == "single" else args.epsilon
    ducc_params = gridding.GridParams(wgridding=params.wgridding, epsilon=ducc_eps,
                                      precision=args.precision, threads=threads, device="cpu")
    mode = "w-stacking" if params.wgridding else "no w-term"
    print(f"gpu_gridding: {args.size}x{args.size}, epsilon {args.epsilon:g}, {args.precision}, "
          f"{mode}; ducc0 on {threads} CPU threads at epsilon {ducc_eps:g}", flush=True)
    if cupy is not None:
        import cupy as cp

        print(f"device: {name} (CuPy {cp.__version__}, CUDA runtime "
              f"{cp.cuda.runtime.runtimeGetVersion()}); THE FIRST RUN ON HARDWARE CHECKS THE "
              "RAWKERNEL: see the accuracy line", flush=True)
        nvis = int(args.nvis)
        uvw, freq, vis, weight, geom = problem(nvis, args.size)
        print(f"{vis.size} visibilities ({vis.shape[0]} rows x {vis.shape[1]} channels); "
              f"{describe(uvw, freq, weight, geom, params)}", flush=True)
        gpu_image = run_gpu(cp, uvw, freq, vis, weight, geom, params, args.repeat)
        dnvis = int(args.ducc_nvis or nvis)
        if dnvis != nvis:
            uvw, freq, vis, weight, geom = problem(dnvis, args.size)
        ducc_image = run_ducc(uvw, freq, vis, weight, geom, ducc_params, args.repeat)
        if dnvis == nvis:
            err = np.abs(gpu_image - ducc_image).max() / np.abs(ducc_image).max()
            print(f"  accuracy: max |GPU - ducc0| / peak = {err:.2e} (epsilon {args.epsilon:g})")
        return
    print(f"NO GPU: {reason}. Timing the numpy reference path and ducc0 only.", flush=True)
    nvis = int(args.numpy_nvis)
    uvw, freq, vis, weight, geom = problem(nvis, args.numpy_size)
    print(f"numpy reference path (not a performance path): {args.numpy_size}x{args.numpy_size},"
          f" {vis.size} visibilities; {describe(uvw, freq, weight, geom, params)}", flush=True)
    t, np_image = best(lambda: gpu_gridding.dirty(uvw, freq, vis, weight, geom, params, xp=np),
                       1, False)
    line("gridding   numpy (np.add.at)", t, vis.size)
    ducc_small = gridding.dirty(uvw, freq, vis, weight, geom, ducc_params)
    err = np.abs(np_image - ducc_small).max() / np.abs(ducc_small).max()
    print(f"  accuracy: max |numpy - ducc0| / peak = {err:.2e} (epsilon {args.epsilon:g})")
    dnvis = int(args.ducc_nvis or 2e6)
    uvw, freq, vis, weight, geom = problem(dnvis, args.size)
    print(f"ducc0: {args.size}x{args.size}, {vis.size} visibilities; "
          f"{describe(uvw, freq, weight, geom, params)}", flush=True)
    run_ducc(uvw, freq, vis, weight, geom, ducc_params, args.repeat)


if __name__ == "__main__":
    main()

"""Minor-cycle iterations per second: the GPU (gpu_clean with CuPy) against the CPU deconvolvers.

    python benchmarks/gpu_minor_cycle.py [--size 4096] [--precision single]
        [--algorithms hogbom clark multiscale] [--niter 1000 5000 300] [--cpu-size 1024]

Synthetic problem: a PSF of the image's size (as htclean's grid jobs make it) with a Gaussian
main lobe of 4 pixels FWHM and a ripple of sidelobes, 200 point sources convolved with it and
Gaussian noise; threshold 0 and mgain 1 so every run makes exactly --niter components (or
stops on no peak). Prints, per algorithm, the wall seconds and components per second of
``gpu_clean.minor_cycle`` with CuPy and of ``clean.minor_cycle`` (the CPU modules), and
whether the GPU's components equal the CPU's. Without a GPU it says so and times the numpy
path of gpu_clean and the CPU modules on a --cpu-size image instead.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.signal

from htclean.imaging.deconvolution import clean
from htclean.imaging.deconvolution.clean import CleanParams
from htclean.imaging.gpu import device, gpu_clean


def problem(size: int, precision: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(residual, psf), both (size, size), float32 or float64."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - size // 2
    r2 = (xx**2 + yy**2).astype(np.float64)
    sigma = 4.0 / 2.3548
    psf = np.exp(-r2 / (2 * sigma**2)) + 0.08 * np.cos(xx / 2.7) * np.cos(yy / 3.1) \
        * np.exp(-r2 / (2 * (size / 8) ** 2))
    psf /= psf[size // 2, size // 2]
    model = np.zeros((size, size))
    n = 200
    model[rng.integers(0, size, n), rng.integers(0, size, n)] = rng.uniform(0.05, 1.0, n)
    residual = scipy.signal.fftconvolve(model, psf, mode="same")
    residual += rng.normal(0.0, 1e-3, residual.shape)
    dtype = np.float32 if precision == "single" else np.float64
    return residual.astype(dtype), psf.astype(dtype)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--cpu-size", type=int, default=1024,
                        help="image size without a GPU (numpy path and CPU only)")
    parser.add_argument("--precision", choices=("single", "double"), default="single")
    parser.add_argument("--algorithms", nargs="+", default=["hogbom", "clark", "multiscale"])
    parser.add_argument("--niter", nargs="+", type=int, default=[1000, 5000, 300],
                        help="components per algorithm, in the order of --algorithms")
    args = parser.parse_args()
    cupy, name, reason = device.probe()
    size = args.size if cupy is not None else args.cpu_size
    print(f"gpu_minor_cycle: {size}x{size} residual and PSF, {args.precision}", flush=True)
    if cupy is not None:
        print(f"device: {name}", flush=True)
        # warm-up: CuPy's kernel compilation and FFT plans
        r, p = problem(256, args.precision)
        for alg in args.algorithms:
            gpu_clean.minor_cycle(r, p, CleanParams(algorithm=alg, niter=20, mgain=1.0),
                                  iterations_done=0, threshold=0.0, xp=cupy)
    else:
        print(f"NO GPU: {reason}. Timing the numpy path of gpu_clean (labelled numpy) and the "
              "CPU modules only.", flush=True)
    residual, psf = problem(size, args.precision)
    label, xp = ("GPU", cupy) if cupy is not None else ("numpy", np)
    for alg, niter in zip(args.algorithms, args.niter, strict=False):
        params = CleanParams(algorithm=alg, niter=niter, gain=0.1, mgain=1.0)
        t_xp, got = timed(lambda p=params: gpu_clean.minor_cycle(
            residual, psf, p, iterations_done=0, threshold=0.0, xp=xp))
        t_cpu, ref = timed(lambda p=params: clean.minor_cycle(
            residual, psf, p, iterations_done=0, threshold=0.0))
        same = got.components == ref.components
        flux = abs(got.components.total_flux - ref.components.total_flux) / max(
            abs(ref.components.total_flux), 1e-30)
        print(f"  {alg:<10s} {label:<5s} {got.iterations:6d} components {t_xp:8.3f} s "
              f"{got.iterations / t_xp:10.1f} it/s | CPU {ref.iterations:6d} components "
              f"{t_cpu:8.3f} s {ref.iterations / t_cpu:10.1f} it/s | speed-up "
              f"{(got.iterations / t_xp) / (ref.iterations / t_cpu):6.2f} | "
              f"identical components: {same} (flux differs by {flux:.1e})", flush=True)


if __name__ == "__main__":
    main()

"""Minor-cycle speed: iterations per second of Högbom, Clark and multiscale CLEAN.

The PSF comes from a simulated VLA-like uv coverage (27 antennas on a Y, an Earth-rotation
track of ``--hours``), gridded and Fourier transformed at twice the image size: a real
interferometer PSF with its far sidelobes, beam FWHM about 4 pixels. The minor cycle gets it
whole (``--psf double``, the default) or its central ``(n, n)`` part (``--psf image``). An
image-sized PSF is truncated at offsets of n/2: the truncated operator is not positive
definite, and with the sparse coverage of a short track deep minor cycles can diverge (see
the report of ``--psf image``). The sky is 300 point sources
(power-law fluxes) and 8 Gaussian blobs; the dirty image is sky ⊛ PSF plus noise. Each
algorithm runs the major/minor loop with the major cycle done exactly in the image plane
(``residual = dirty - model ⊛ PSF`` with the full PSF, untimed), mgain 0.8, down to
5 sigma or ``niter``; the figures time the minor cycles only, set-up included (PSF transforms,
scale kernels, beam fit), in wall-clock and CPU seconds.

    python benchmarks/minor_cycle.py [--sizes 1024 4096] [--algorithms hogbom clark multiscale]

Measured on the development machine (2 cores shared with other jobs, load 4-7; float32;
iterations per wall second / per CPU second; final peak in Jy/beam, threshold 5e-4):

    --psf double  1024^2  hogbom      775 /  1178   2000 it (niter)       peak 0.0076
                          clark      1116 /  1533  13323 it (threshold)   peak 0.0005
                          multiscale  654 /   817   5000 it (niter)       peak 0.0019
                  4096^2  hogbom       42 /    43    500 it (niter)       peak 0.023
                          clark       191 /   130  10224 it (threshold)   peak 0.0005
                          multiscale   40 /    32   5000 it (niter)       peak 0.0014
    --psf image   1024^2  hogbom      871 /  1330, clark 1929 / 2617 (20000 it, niter, peak
                          0.0016), multiscale 728 / 1212
                  4096^2  hogbom       17 /    51, clark 516 / 999 (diverged: peak 0.18),
                          multiscale 48 / 126

Högbom on the list of pixels above the cycle's floor (issue 10), same machine, load 1.2-1.9,
``--niter 20000`` at 1024^2 and ``--niter 2000`` at 4096^2, before -> after (wall s):

    1024^2  hogbom  13326 it (threshold)  8.9 -> 3.4    clark 4.7 -> 3.8 (13323 it)
    4096^2  hogbom   2000 it (niter)     29.9 -> 6.1
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from htclean.imaging.deconvolution.clean import CleanParams, minor_cycle
from htclean.imaging.deconvolution.components import ComponentList
from htclean.imaging.deconvolution.convolver import Convolver


def vla_psf(n: int, hours: float, fwhm_pixels: float = 4.0) -> np.ndarray:
    """``(n, n)`` float64 PSF of a VLA-like array at declination +40, peak 1 at the centre."""
    arm = 40.0 * np.arange(1, 10) ** 1.716  # metres along each arm
    ants = np.concatenate([np.stack([arm * np.cos(a), arm * np.sin(a)], axis=1)
                           for a in np.radians([5.0, 125.0, 245.0])])
    i, j = np.triu_indices(len(ants), 1)
    bx, by = (ants[i] - ants[j]).T
    lat, dec = np.radians(34.0), np.radians(40.0)
    h = np.radians(np.linspace(-7.5 * hours, 7.5 * hours, max(2, int(4 * hours))))[:, None]
    u = bx * np.cos(h) - by * np.sin(lat) * np.sin(h)
    v = bx * np.sin(dec) * np.sin(h) + by * (np.sin(lat) * np.sin(dec) * np.cos(h)
                                             + np.cos(lat) * np.cos(dec))
    u = np.concatenate([u.ravel(), -u.ravel()])
    v = np.concatenate([v.ravel(), -v.ravel()])
    cell = 1.0 / np.hypot(u, v).max() / fwhm_pixels
    grid = np.zeros((n, n))
    np.add.at(grid, (np.round(v * cell * n).astype(int) % n,
                     np.round(u * cell * n).astype(int) % n), 1.0)
    psf = np.fft.fftshift(np.fft.ifft2(grid).real)
    return psf / psf[n // 2, n // 2]


def sky(n: int, seed: int = 3) -> np.ndarray:
    """``(n, n)`` model sky in Jy/pixel: points and Gaussian blobs inside the central 3/4."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, n))
    k = 300
    ys, xs = rng.integers(n // 8, 7 * n // 8, (2, k))
    np.add.at(out, (ys, xs), 0.005 * (1 + rng.pareto(1.5, k)))
    yy, xx = np.ogrid[:n, :n]
    for _ in range(8):
        cy, cx = rng.integers(n // 4, 3 * n // 4, 2)
        s = rng.uniform(3.0, 12.0)
        g = np.exp(-0.5 * ((yy - cy) ** 2 + (xx - cx) ** 2) / s**2)
        out += 0.4 * g / g.sum()
    return out


NITER = {"hogbom": {1024: 2000, 4096: 500}, "clark": {1024: 20000, 4096: 20000},
         "multiscale": {1024: 5000, 4096: 5000}}
NOISE = 1e-4  # Jy/beam


def run(name: str, dirty: np.ndarray, psf: np.ndarray, major: Convolver, niter: int,
        threads: int) -> dict:
    """The major/minor loop of one algorithm; timings of the minor cycles only."""
    params = CleanParams(algorithm=name, niter=niter, gain=0.1, mgain=0.8,
                         scales=(0.0, 4.0, 16.0), threads=threads)
    model = ComponentList.empty(dirty.shape[1], dirty.shape[0])
    residual, done, wall, cpu, cycles = dirty, 0, 0.0, 0.0, 0
    while True:
        t, c = time.perf_counter(), time.process_time()
        out = minor_cycle(residual, psf, params, iterations_done=done, threshold=5 * NOISE)
        wall += time.perf_counter() - t
        cpu += time.process_time() - c
        cycles += 1
        done += out.iterations
        model = model.merge(out.components)
        residual = (dirty - major.convolve(model.to_image())).astype(dirty.dtype)
        if out.stop_reason != "mgain":
            break
    return {"iter": done, "wall": wall, "cpu": cpu, "cycles": cycles, "comps": len(model),
            "peak": float(np.abs(residual).max()), "stop": out.stop_reason}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--algorithms", nargs="+", default=["hogbom", "clark", "multiscale"])
    ap.add_argument("--hours", type=float, default=1.0,
                    help="track length (short: higher sidelobes)")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--niter", type=int, default=0, help="iterations per run (0: per-size default)")
    ap.add_argument("--threads", type=int, default=0, help="FFT threads (0: all)")
    ap.add_argument("--psf", choices=["double", "image"], default="double",
                    help="PSF given to the minor cycle: twice the image size, or the image size")
    args = ap.parse_args()
    print(f"cores {len(os.sched_getaffinity(0))}, load {os.getloadavg()[0]:.1f}, "
          f"dtype {args.dtype}, track {args.hours} h, psf {args.psf}")
    print(f"{'size':>5} {'algorithm':>10} {'iter':>6} {'cycles':>6} {'wall s':>7} {'cpu s':>7} "
          f"{'iter/s':>7} {'iter/cpu-s':>10} {'peak end':>9} {'comps':>6} {'stop':>9}")
    for n in args.sizes:
        full = vla_psf(2 * n, args.hours)
        psf = full if args.psf == "double" else full[n // 2:n // 2 + n, n // 2:n // 2 + n]
        major = Convolver((n, n), [full], threads=args.threads)
        rng = np.random.default_rng(4)
        dirty = (major.convolve(sky(n)) + rng.normal(0.0, NOISE, (n, n))).astype(args.dtype)
        for name in args.algorithms:
            r = run(name, dirty, psf, major, args.niter or NITER[name].get(n, 1000),
                    args.threads)
            print(f"{n:>5} {name:>10} {r['iter']:>6} {r['cycles']:>6} {r['wall']:>7.1f} "
                  f"{r['cpu']:>7.1f} {r['iter'] / r['wall']:>7.1f} {r['iter'] / r['cpu']:>10.1f} "
                  f"{r['peak']:>9.5f} {r['comps']:>6} {r['stop']:>9}", flush=True)


if __name__ == "__main__":
    main()

"""Multi-term MFS cost: the minor cycle and the Taylor-weighted grids, nterms 1, 2, 3.

The data: a simulated VLA D-configuration observation (27 antennas, ``--times`` integrations
over 4 h at dec +40), ``--nchan`` channels over 1-2 GHz, 60 point sources with spectral
indices from -1.5 to +0.5 inside the central half of the image (exact DFT visibilities,
noise 0.5 Jy per real/imaginary part). For each image size:

- grids: wall and CPU seconds of ``taylor.grid_terms`` (ducc0 w-gridding, epsilon 1e-6,
  ``--threads``) making the nterms dirty images and 2 nterms - 1 PSFs (PSF twice the image) of
  the whole data, as a grid job does per part, and of the nterms residual images alone (a
  residual job's grids); nterms 1 is the single-term job's cost (one dirty and one PSF);
- minor cycle: CPU and wall milliseconds per iteration of ``clean.multi_term_cycle`` (Högbom and
  multiscale with scales 0 4 8 16, gain 0.1, ``--mgain``, ``--auto-threshold`` x the robust
  sigma, at most ``--niter`` components) for each nterms, and of clean.py's single-term
  algorithm on the tt0 images for comparison: minor cycles one after the other, each on the
  last one's residuals, until the threshold or niter (as a run's cycles, without the major
  cycles between: with a PSF twice the image the residual is the re-gridded one but for the
  w-term).
CPU time is the figure to compare (the development machine is shared: wall time is noisy).

    python benchmarks/mtmfs_minor_cycle.py [--sizes 256 512 1024] [--niter 3000]
                                           [--mgain 0.8] [--auto-threshold 3]

Measured on the development machine (2 cores shared with other jobs; 1.35 M visibilities,
1 thread, 1024^2, PSF 2048^2, the defaults: 3 cycles each, nterms 2 and 3 to niter 3000,
the others to the threshold, ~2210 components), CPU ms per iteration, before (every pixel
solved, searched and updated at every iteration; load 8-13) and after the list cycle
(imaging/deconvolution/mtmfs_list.py; load 1.5-5):

    minor cycle       clean.py   MT nterms 1   nterms 2   nterms 3
      hogbom before     0.32        7.74        15.85      27.64
             after      0.44        0.66         1.14       1.81     (x14, x15)
      multiscale before 2.99       10.58        37.89      78.64
             after      2.72        2.56         5.09       8.43     (x7.5, x9.3)
    grids (dirty + PSF / residual only, CPU s): nterms 1 3.08 / 0.77, nterms 2 x2.79 / x1.96,
    nterms 3 x4.62 / x3.76.

Where the Högbom nterms 2 time goes after (3 cycles, measured at load ~10): the list
iterations 1.4 s (lists of up to clark.MAX_LIST pixels: a.R > floor^2 / H_00 holds for ~1.5x
as many pixels as |R_0| > floor at nterms 2, 2x at nterms 3; the gather of the shifted Taylor
PSFs is most of it), the exact updates 1.5 s (of which 0.8 s the PSFs' transforms, once per
job). Multiscale nterms 2: the scale PSFs B_q ⊛ K_s ⊛ K_s 7.8 s (per job, 2 nterms - 1 PSFs x
3 scales), the exact update after each sub-minor loop 4.9 s.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from htclean.imaging.deconvolution.clean import CleanParams, minor_cycle, multi_term_cycle
from htclean.imaging.geometry import ImageGeometry
from htclean.imaging.gridding import gridding, taylor
from htclean.imaging.ms import msinfo
from htclean.imaging.simulation import vla
from htclean.imaging.simulation.sky import model_visibilities

C = 299792458.0
REF = 1.5e9


def observation(times: int, nchan: int, seed: int = 5):
    """uvw (nrow, 3) m, freq (nchan,) Hz of the VLA D configuration, and the suggested cell."""
    _, _, positions = vla.antennas("D")
    a1, a2 = vla.baseline_pairs(len(positions))
    uvw = vla.uvw(positions, a1, a2, np.radians(np.linspace(-30.0, 30.0, times)),
                  math.radians(40.0))
    freq = 1e9 + 1e9 / nchan * (np.arange(nchan) + 0.5)
    cell = msinfo.suggest_cell(float(np.hypot(uvw[:, 0], uvw[:, 1]).max()) * freq[-1] / C)
    return uvw, freq, cell


def sources(n: int, cell: float, seed: int = 5) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(60):
        dx, dy = rng.integers(-n // 4, n // 4, 2)
        out.append({"l": -dx * cell, "m": dy * cell, "shape": "point",
                    "flux": 0.01 * (1 + rng.pareto(1.5)), "spectral_index": rng.uniform(-1.5, 0.5)})
    return out


def timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds) of ``fn(*args, **kwargs)``."""
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - w, time.process_time() - c


def grids(uvw, freq, vis, geom, psf_geom, params, nterms_list) -> dict:
    """Time the Taylor grids per nterms; returns the normalised (dirty, psf) per nterms."""
    images, base = {}, None
    for nt in nterms_list:
        ti, w, c = timed(taylor.grid_terms, uvw, freq, vis, None, geom, psf_geom, params,
                         nterms=nt, ref_freq=REF)
        _, rw, rc = timed(taylor.grid_terms, uvw, freq, vis, None, geom, psf_geom, params,
                          nterms=nt, ref_freq=REF, psf=False)
        images[nt] = ti.normalised()
        base = base or (c, rc)
        print(f"  grids   nterms {nt}: dirty+PSF {w:6.2f} s wall {c:6.2f} s CPU "
              f"(x{c / base[0]:.2f} CPU);  residual only {rw:6.2f} s wall {rc:6.2f} s CPU "
              f"(x{rc / base[1]:.2f} CPU)")
    return images


def deconvolve(fn, residual, psf, cp: CleanParams) -> tuple:
    """Minor cycles of ``fn`` (mgain and auto-threshold as a run's) one after the other until
    the threshold or niter, each on the previous one's residual (no major cycle: the PSF is
    twice the image, so that residual is the re-gridded one but for the w-term): (iterations,
    cycles, wall s, CPU s, result of the last cycle)."""
    done = cycles = 0
    wall = cpu = 0.0
    while True:
        threshold = cp.cycle_threshold(residual[0] if residual.ndim == 3 else residual)
        r, w, c = timed(fn, residual, psf, cp, iterations_done=done, threshold=threshold)
        done, cycles, wall, cpu = done + r.iterations, cycles + 1, wall + w, cpu + c
        residual = r.residuals if residual.ndim == 3 else r.residual
        if r.stop_reason != "mgain" or r.iterations == 0:
            return done, cycles, wall, cpu, r


def minor_cycles(images: dict, args: argparse.Namespace) -> None:
    """Time the MT-MFS minor cycles per algorithm and nterms (and clean.py's on tt0)."""
    for algorithm in args.algorithms:
        cp = CleanParams(algorithm=algorithm, niter=args.niter, gain=0.1, mgain=args.mgain,
                         auto_threshold=args.auto_threshold, scales=(0, 4, 8, 16))
        dirty, psf = images[min(images)]
        runs = [("clean.py", minor_cycle, dirty[0], psf[0])]
        runs += [(f"nterms {nt}", multi_term_cycle, d, p) for nt, (d, p) in images.items()]
        for name, fn, d, p in runs:
            done, cycles, w, c, r = deconvolve(fn, d, p, cp)
            print(f"  minor   {algorithm:10s} {name:9s}: {1e3 * c / max(done, 1):8.3f} ms/it CPU "
                  f"{1e3 * w / max(done, 1):8.3f} ms/it wall ({done} it in {cycles} cycles, "
                  f"{c:.2f} CPU s, {r.stop_reason})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--niter", type=int, default=3000)
    ap.add_argument("--mgain", type=float, default=0.8)
    ap.add_argument("--auto-threshold", type=float, default=3.0)
    ap.add_argument("--times", type=int, default=120)
    ap.add_argument("--nchan", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--nterms", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--algorithms", nargs="+", default=["hogbom", "multiscale"])
    args = ap.parse_args()
    uvw, freq, cell = observation(args.times, args.nchan)
    params = gridding.GridParams(epsilon=1e-6, threads=args.threads)
    print(f"{len(uvw)} rows x {len(freq)} channels = {uvw.shape[0] * len(freq) / 1e6:.2f} M "
          f"visibilities, cell {cell / math.pi * 180 * 3600:.1f} arcsec, {args.threads} "
          f"gridder thread(s), minor cycles: niter {args.niter}, mgain {args.mgain}, "
          f"auto-threshold {args.auto_threshold}")
    for n in args.sizes:
        geom = ImageGeometry(n, n, cell, 1.0, math.radians(40.0), REF, 1e9)
        psf_geom = ImageGeometry(2 * n, 2 * n, cell, 1.0, math.radians(40.0), REF, 1e9)
        rng = np.random.default_rng(1)
        vis = model_visibilities(uvw, freq, sources(n, cell), REF)
        vis += 0.5 * (rng.standard_normal(vis.shape) + 1j * rng.standard_normal(vis.shape))
        print(f"\n{n}^2 image, PSF {2 * n}^2")
        minor_cycles(grids(uvw, freq, vis, geom, psf_geom, params, args.nterms), args)


if __name__ == "__main__":
    main()

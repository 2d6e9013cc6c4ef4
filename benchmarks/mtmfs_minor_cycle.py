"""Multi-term MFS cost: the minor cycle and the Taylor-weighted grids, nterms 1, 2, 3.

The data: a simulated VLA D-configuration observation (27 antennas, ``--times`` integrations
over 4 h at dec +40), ``--nchan`` channels over 1-2 GHz, 60 point sources with spectral
indices from -1.5 to +0.5 inside the central half of the image (exact DFT visibilities,
noise 0.5 Jy per real/imaginary part). For each image size:

- grids: wall and CPU seconds of ``taylor.grid_terms`` (ducc0 w-gridding, epsilon 1e-6,
  ``--threads``) making the nterms dirty images and 2 nterms - 1 PSFs (PSF twice the image) of
  the whole data, as a grid job does per part, and of the nterms residual images alone (a
  residual job's grids); nterms 1 is the single-term job's cost (one dirty and one PSF);
- minor cycle: iterations per wall / CPU second of ``mtmfs.minor_cycle`` (Högbom and
  multiscale with scales 0 4 8 16, gain 0.1, ``--niter`` components, no threshold) for each
  nterms, and of clean.py's single-term algorithm on the tt0 images for comparison.
Ratios are of CPU time (the development machine is shared: wall time is noisy).

    python benchmarks/mtmfs_minor_cycle.py [--sizes 256 512 1024] [--niter 300]

Measured on the development machine (2 cores shared with other jobs, load 5-6; defaults:
1.35 M visibilities, 1 thread, 300 iterations; CPU seconds, ratios to nterms 1):

    grids (dirty + PSF / residual only)     256^2              512^2             1024^2
      nterms 1                       0.94 s / 0.44 s                      3.01 s / 0.80 s
      nterms 2                      x2.44  / x1.95                       x2.74  / x1.92
      nterms 3                      x4.12  / x2.92                       x4.32  / x2.95
    minor cycle, CPU per iteration         256^2                             1024^2
      hogbom     clean.py / MT nterms 1   8304 / 4238 it/s                    604 / 268 it/s
                 nterms 2, 3 vs 1         x2.27, x4.66                        x2.73, x6.03
      multiscale clean.py / MT nterms 1    655 / 1499 it/s                    199 / 63 it/s
                 nterms 2, 3 vs 1         x2.63, x5.62                        x2.99, x6.46
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from htclean.imaging import gridding, msinfo, mtmfs, taylor, vla
from htclean.imaging.clean import CleanParams, minor_cycle
from htclean.imaging.geometry import ImageGeometry
from htclean.imaging.sky import model_visibilities

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


def minor_cycles(images: dict, niter: int, algorithms: list[str]) -> None:
    """Time the MT-MFS minor cycle per algorithm and nterms (and clean.py's on tt0)."""
    for algorithm in algorithms:
        cp = CleanParams(algorithm=algorithm, niter=niter, gain=0.1, mgain=0.999,
                         scales=(0, 4, 8, 16))
        dirty, psf = images[min(images)]
        ref, w, c = timed(minor_cycle, dirty[0], psf[0], cp, iterations_done=0, threshold=0.0)
        print(f"  minor   {algorithm:10s} clean.py : {ref.iterations / w:7.0f} it/s wall "
              f"{ref.iterations / c:7.0f} it/s CPU")
        first = None
        for nt, (dirty, psf) in images.items():
            r, w, c = timed(mtmfs.minor_cycle, dirty, psf, cp, iterations_done=0, threshold=0.0)
            rate = r.iterations / c
            first = first or rate
            print(f"  minor   {algorithm:10s} nterms {nt}: {r.iterations / w:7.0f} it/s wall "
                  f"{rate:7.0f} it/s CPU (CPU per iteration x{first / rate:.2f}; "
                  f"{r.iterations} it, {r.stop_reason})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--niter", type=int, default=300)
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
          f"gridder thread(s), minor cycle niter {args.niter}")
    for n in args.sizes:
        geom = ImageGeometry(n, n, cell, 1.0, math.radians(40.0), REF, 1e9)
        psf_geom = ImageGeometry(2 * n, 2 * n, cell, 1.0, math.radians(40.0), REF, 1e9)
        rng = np.random.default_rng(1)
        vis = model_visibilities(uvw, freq, sources(n, cell), REF)
        vis += 0.5 * (rng.standard_normal(vis.shape) + 1j * rng.standard_normal(vis.shape))
        print(f"\n{n}^2 image, PSF {2 * n}^2")
        minor_cycles(grids(uvw, freq, vis, geom, psf_geom, params, args.nterms), args.niter,
                     args.algorithms)


if __name__ == "__main__":
    main()

"""htclean's measured costs: CPU seconds of each job type from visibilities and pixels.

Every figure is a measurement on the 2-core development VM (ducc0, float32 gridding at
epsilon 1e-5) and says where it comes from:

- README "Performance on one machine", the 50m row of ``benchmarks/vs_wsclean.py`` (49.8 M
  visibilities, 4096^2, 1 part, 8 cycles): the PSF + dirty job 86 CPU s, each residual job
  39 CPU s, the 8 deconvolve jobs 30 s together (3.75 s wall each, 2 threads), the 9 next
  jobs 12 s, restore 6 s, the partition 13 s (931 MB MS tar -> part file).
- ``benchmarks/grid_overhead.py``: every ducc0 gridding call pays ~0.4 s CPU of FFTs over its
  w planes at 1024^2 (0.38 us per pixel per call), whatever its visibilities. The 50m jobs'
  per-visibility costs below are what is left after that: residual 2 calls (degrid, grid):
  (39 - 2 x 6.4) / 49.8 M = 0.53 us; PSF + dirty 5 calls (the dirty image, the 2x PSF in
  four image-sized tiles): (86 - 5 x 6.4) / 49.8 M = 1.08 us.
- ``benchmarks/mtmfs_jobs.py``: nterms 2 (3) multiplies the grid job by 2.73 (4.42), the
  residual by 2.15 (2.92), deconvolve by 1.73 (2.56).
- Part files hold 8.1 bytes per visibility (complex64 Stokes I, float32 weight, uvw per row;
  docs/job-contract.md, the issue-10 note); a partial image is float32 per pixel.

Each htclean job also starts a Python interpreter and imports its modules on the pool (no
fork server there): ``STARTUP_S``, the kickstart record's duration of the executable less the
job's own record wall, measured in ``benchmarks/pool_scale.py`` runs of 8 parts on the test
pool (grid and residual 0.16-0.31 s, next 0.15-0.31, deconvolve 0.16-0.20, partition
0.22-0.27, restore 0.32-0.38). What wraps the executable on a pool (PegasusLite, the worker
package it unpacks) is the pool's (``Pool.wrapper_s``, ``Pool.worker_package_s``): on the test
pool it was 4.3 of the 4.5 s a grid job ran, which an earlier version of this table took
for interpreter start-up.

The summing in ``next`` and gather jobs is an assumption (memory bandwidth, 1 ns per pixel of
each partial read): it was never measured apart from next's 1.3 s at 4096^2.
"""

from __future__ import annotations

from dataclasses import dataclass

US = 1e-6
PIXELS_50M = 4096 * 4096
VIS_50M = 49.8e6
FFT_PER_PIXEL_CALL = 0.38 * US      # grid_overhead.py: ~0.4 s CPU per call at 1024^2
GRID_PER_VIS = 1.08 * US            # 50m PSF + dirty job, 86 CPU s, less 5 calls
RESIDUAL_PER_VIS = 0.53 * US        # 50m residual job, 39 CPU s, less 2 calls
GRID_CALLS, RESIDUAL_CALLS = 5, 2
DECONVOLVE_PER_PIXEL = 2 * 3.75 / PIXELS_50M   # 50m: 3.75 s wall on 2 threads per cycle
NEXT_PER_PIXEL = 12.0 / 9 / PIXELS_50M         # 50m: 9 next jobs, 12 s
RESTORE_PER_PIXEL = 6.0 / PIXELS_50M           # 50m restore
PARTITION_PER_VIS = 13.0 / VIS_50M             # 50m partition (one thread reads the MS)
SUM_PER_PIXEL = 1e-9                           # assumption: summing one partial, per pixel
PART_BYTES_PER_VIS = 8.1
STARTUP_S = {"partition": 0.25, "weights": 0.2, "grid": 0.2, "residual": 0.2, "gather": 0.2,
             "deconvolve": 0.2, "next": 0.2, "restore": 0.35}
NTERMS_FACTOR = {"grid": (1.0, 2.73, 4.42), "residual": (1.0, 2.15, 2.92),
                 "deconvolve": (1.0, 1.73, 2.56)}


@dataclass(frozen=True)
class Costs:
    """The per-job CPU seconds of a run: ``visibilities`` in all, ``pixels`` of the image,
    ``nterms``. A part's share of the visibilities is ``visibilities / parts``."""

    visibilities: float
    pixels: int
    nterms: int = 1

    def _terms(self, kind: str) -> float:
        factors = NTERMS_FACTOR[kind]
        return factors[min(self.nterms, len(factors)) - 1]

    def grid(self, nvis: float) -> float:
        """The PSF + dirty image of one part from one read."""
        fft = GRID_CALLS * FFT_PER_PIXEL_CALL * self.pixels
        return (GRID_PER_VIS * nvis + fft) * self._terms("grid")

    def residual(self, nvis: float) -> float:
        """Predict the model, subtract, grid the residual of one part."""
        fft = RESIDUAL_CALLS * FFT_PER_PIXEL_CALL * self.pixels
        return (RESIDUAL_PER_VIS * nvis + fft) * self._terms("residual")

    def deconvolve(self) -> float:
        return DECONVOLVE_PER_PIXEL * self.pixels * self._terms("deconvolve")

    def gather(self, partials: int) -> float:
        return SUM_PER_PIXEL * self.pixels * partials * self.nterms

    def next(self, partials: int) -> float:
        return NEXT_PER_PIXEL * self.pixels + self.gather(partials)

    def restore(self) -> float:
        return RESTORE_PER_PIXEL * self.pixels

    def partition(self) -> float:
        return PARTITION_PER_VIS * self.visibilities

    def part_bytes(self, nvis: float) -> float:
        return PART_BYTES_PER_VIS * nvis

"""Resource requests sized to the job: CPUs and memory from what each job holds.

A job's peak memory is a base (the interpreter and the modules its executable imports;
the local engine's fork server preloads them all, 120-140 MB, so the base covers that too)
plus what it holds at its peak, from the sizes the plan knows:

- N image pixels, P PSF pixels (``image.psf_oversize`` x the image in each axis), T Taylor
  terms (T dirty or residual images, 2T - 1 PSFs), the gridder's float size (4 bytes single,
  8 double) and the plan's thread count W (``gridding.py``: W |w| streams, each stream's
  image kept until they are summed in order, W ducc0 grids at a time at most);
- the part's bytes (a part file holds 12 bytes a sample: complex64 visibility, float32
  weight; the grid job keeps the part's weights and uvw for the PSF, which needs no
  visibilities, and concatenates them: about twice the part at its peak);
- a gather's images (float32 partials summed in float64, one input at a time: the sum, the
  input, and the largest image's float64 temporaries), the same at any fan-in above 2.

Every figure is multiplied by ``MARGIN`` and rounded up to ``ROUND_MB``; the configuration's
``execution.request_memory`` caps it (a job whose estimate is above the cap asks for the cap,
as every job did before). ``benchmarks/request_sizes.py`` prints the estimate against the
``max_rss_mb`` of real runs' job records, per job type.

CPUs: the grid and residual jobs (and the serial deconvolve and restore, whose FFTs run on
the plan's threads) ask for up to the plan's thread count; a small part asks for one. The
others (partition, weights, gather, next) run one thread. Fewer CPUs than the plan's threads
never change a bit of the images (``imaging.cpus``): the thread count that fixes them is the
plan's, written into config.yml; a job's request only sets how many cores it runs them on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from htclean.imaging.cpus import planned_threads
from htclean.imaging.geometry import PSF_ONE_CALL_PX, psf_shape

MIB = 2**20
MARGIN = 1.25            # on every estimate
ROUND_MB = 64            # requests are multiples of this
BASE_MB = {              # interpreter + modules, measured ~30-180 MB in a fresh process
    "partition": 192, "weights": 160, "grid": 192, "gather": 160, "deconvolve": 192,
    "residual": 192, "next": 192, "restore": 320, "cube": 320,
}
OVERSAMPLED = 4.0        # ducc0's grid: up to 2x the image in each axis, complex
PART_BYTES_PER_CPU = 256 * MIB   # a grid job gets a further CPU per this much of its part
PSF_PIXELS_PER_CPU = 4096**2     # ... and per this many PSF pixels (its FFTs)
ROW_BYTES = 16 * 1024   # an MS row: 256 channels x 4 correlations of data, flags, weights
SERIAL_THREADED = ("deconvolve", "restore")   # FFTs on the plan's threads
SIZED = ("grid", "residual")


@dataclass(frozen=True)
class Sizes:
    """What a run's jobs hold: pixels, Taylor terms, the gridder's float size and threads."""

    image_px: int
    psf_px: int
    nterms: int
    item: int          # bytes of the gridder's real type
    threads: int       # the plan's thread count (imaging.cpus.planned_threads)
    scales: int = 0    # multiscale: the scales the minor cycle convolves with (else 0)

    @classmethod
    def from_settings(cls, settings: dict, shape: tuple[int, int] | None = None) -> Sizes:
        """From parsed settings; ``shape`` (nx, ny) where they lack image.nx/ny."""
        image = settings["image"]
        nx, ny = shape or (int(image["nx"]), int(image["ny"]))
        pnx, pny = psf_shape(nx, ny, float(image["psf_oversize"]))
        gridder = settings.get("gridder") or {}
        precision = gridder.get("precision", "auto")
        if precision == "auto":
            precision = "single" if float(gridder.get("epsilon", 1e-5)) >= 1e-5 else "double"
        deconv = settings["deconvolution"]
        scales = 0
        if deconv.get("algorithm") == "multiscale":
            scales = len(deconv.get("scales") or (0, 4, 16))
        return cls(nx * ny, pnx * pny, int(deconv["nterms"]), 8 if precision == "double" else 4,
                   planned_threads(settings), scales)

    @property
    def psfs(self) -> int:
        return 2 * self.nterms - 1

    def partial_px(self, tree: str) -> tuple[int, int]:
        """(all pixels, the largest image's) of a partial of ``tree``: image, residual or
        weights (a float64 density: counted twice)."""
        if tree == "image":
            return self.nterms * self.image_px + self.psfs * self.psf_px, self.psf_px
        if tree == "weights":
            return 2 * self.image_px, 2 * self.image_px
        return self.nterms * self.image_px, self.image_px


def gather_bytes(s: Sizes, tree: str, inputs: int) -> int:
    """Peak of summing ``inputs`` partials: two float32 partials and their float64 sum, the
    largest image's float64 copies; from the third input on, the float64 sum, one input and
    a new sum of the largest image."""
    total, largest = s.partial_px(tree)
    first = 8 * total + 16 * largest
    later = 12 * total + 8 * largest if inputs > 2 else 0
    return max(first, later) + 4 * largest      # + the float32 copy an inner level writes


def grid_bytes(s: Sizes, part_bytes: int, residual: bool) -> int:
    """Peak of a grid job (psf-dirty) or residual job on a part of ``part_bytes``."""
    # per stream; the PSF is gridded whole where it is small (geometry.psf_tile), else in
    # tiles of the image's size
    grid_px = s.image_px if residual or s.psf_px > PSF_ONE_CALL_PX else max(s.image_px, s.psf_px)
    grids = s.threads * (OVERSAMPLED * 2 * s.item + s.item) * grid_px
    taylor = s.nterms > 1
    acc = 8 if taylor else s.item
    if residual:
        images = s.nterms * s.image_px * (acc + s.item + (8 if taylor else 0))
        predict = OVERSAMPLED * 2 * s.item * s.image_px                       # dirty2vis
        samples = (2 + (2 * s.item) / 12 * (2 if taylor else 1)) * part_bytes
        return int(grids + images + predict + samples)
    images = s.nterms * s.image_px * (acc + s.item) + s.psfs * s.psf_px * s.item
    samples = (2 + (2 * s.item) / 12 * (2 * s.nterms if taylor else 0)) * part_bytes
    return int(grids + images + samples)


def deconvolve_bytes(s: Sizes) -> int:
    """The PSFs and residuals read as float64 FITS and their working copies (with nterms > 1
    the list cycle's interleaved PSFs and their transforms); multiscale adds
    per scale its PSF (float64 while made, float32 kept) and the residual smoothed by it and
    its kernel's transform (complex), and the FFT convolution's complex temporaries."""
    held = 8 * (2 * s.psfs * s.psf_px + 4 * s.nterms * s.image_px)
    if s.nterms > 1:  # the list cycle (imaging/deconvolution/mtmfs_list.py): the PSFs
        # interleaved (float64) and each one's real transform on the ~2n x 2n grid of the
        # exact update (complex128)
        held += s.psfs * (8 * s.psf_px + 32 * s.image_px)
    if s.scales:
        held += s.scales * (12 * s.psf_px + 24 * s.image_px) + 48 * s.psf_px
    return held


def restore_bytes(s: Sizes) -> int:
    """The PSF (beam fit), the images it reads and writes (float64), previews."""
    return 8 * (2 * s.psfs * s.psf_px + 12 * s.nterms * s.image_px)


def next_bytes(s: Sizes, tree: str, inputs: int) -> int:
    """next: the root of a gather tree (its partials), then the FITS it writes (float64)."""
    total, largest = s.partial_px(tree)
    return gather_bytes(s, tree, inputs) + 8 * largest


def partition_bytes(ms_bytes: int, chunk_rows: int) -> int:
    """A chunk of ``gridder.chunk_rows`` rows of the MS at a time (up to ``ROW_BYTES`` a row),
    read, converted and written: bounded by the MS itself."""
    return 3 * min(ms_bytes, chunk_rows * ROW_BYTES)


def memory_mb(base_mb: int, payload: float) -> int:
    """``base_mb`` + ``MARGIN`` x ``payload`` bytes, rounded up to ``ROUND_MB``."""
    mb = base_mb + MARGIN * payload / MIB
    return int(math.ceil(mb / ROUND_MB) * ROUND_MB)


def grid_cpus(s: Sizes, part_bytes: int) -> int:
    """One CPU, a further one per ``PART_BYTES_PER_CPU`` of part and ``PSF_PIXELS_PER_CPU``
    of PSF; at most the plan's threads."""
    want = 1 + part_bytes // PART_BYTES_PER_CPU + s.psf_px // PSF_PIXELS_PER_CPU
    return max(1, min(s.threads, int(want)))


@dataclass(frozen=True)
class Job:
    """What a job's requests depend on: its category, the gather tree it sums (image,
    residual or weights) and how many inputs, the bytes of its part (grid, residual,
    weights), of the input MSs (partition)."""

    category: str
    tree: str = "image"
    inputs: int = 1
    part_bytes: int = 0
    ms_bytes: int = 0


def estimate(settings: dict, job: Job) -> tuple[int, int]:
    """(cpus, memory in MB) of ``job``, before the configuration's caps."""
    s = Sizes.from_settings(settings)
    category = job.category
    if category == "partition":
        payload = partition_bytes(job.ms_bytes, int(settings["gridder"]["chunk_rows"]))
    elif category == "weights":
        payload = 3 * 8 * s.image_px + 2 * job.part_bytes
    elif category in SIZED:
        payload = grid_bytes(s, job.part_bytes, category == "residual")
    elif category == "gather":
        payload = gather_bytes(s, job.tree, job.inputs)
    elif category == "next":
        payload = next_bytes(s, job.tree, job.inputs)
    elif category == "deconvolve":
        payload = deconvolve_bytes(s)
    elif category == "restore":
        payload = restore_bytes(s)
    elif category == "cube":  # a cube of every output channel, and the plane it restores
        image = settings["image"]
        planes = max(1, int(image["nchan"] or 1) // int(image["width"]))
        payload = 2 * 4 * s.image_px * planes + restore_bytes(s)
    else:
        raise ValueError(f"unknown job category {category!r}")
    if category in SIZED:
        cpus = grid_cpus(s, job.part_bytes)
    elif category in SERIAL_THREADED:
        cpus = s.threads
    else:
        cpus = 1
    return cpus, memory_mb(BASE_MB[category], payload)

"""The minor cycle: parameters, result, the pieces every CLEAN algorithm shares, the dispatch.

``minor_cycle(residual, psf, params, iterations_done=..., threshold=...)`` runs one minor cycle
of the configured algorithm (hogbom.py, clark.py, multiscale.py) on a residual image, or on
the Taylor terms of multi-term MFS (nterms > 1), and returns the new components and the
updated residual. Conventions shared by all algorithms:

- images are ``(ny, nx)`` in FITS orientation (``image[y, x]``), Jy/beam; the PSF's peak is at
  pixel ``(pny // 2, pnx // 2)`` (any size, larger or smaller than the residual; it is
  normalised to 1 there);
- the peak is the largest ``|residual|`` (negative components are allowed, as in WSClean);
  ties go to the lowest flat index, so every run gives the same components;
- stop reasons, checked before each component in this order: ``'no-peak'`` (the residual is
  zero), ``'threshold'`` (peak <= threshold, Jy), ``'niter'`` (``iterations_done`` + this
  cycle's components reached ``niter``), ``'mgain'`` (peak <= (1 - mgain) x the peak at the
  start of the cycle, WSClean's -mgain).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from htclean.imaging.cpus import planned_threads
from htclean.imaging.deconvolution.components import add_stamps, scale_kernel
from htclean.imaging.deconvolution.convolver import Convolver, transform_length
from htclean.imaging.errors import InputError
from htclean.imaging.noise import robust_sigma

ALGORITHMS = ("hogbom", "clark", "multiscale")
STOP_REASONS = ("no-peak", "threshold", "niter", "mgain")
DEFAULT_SCALES = (0.0, 4.0, 16.0)


def fftconvolve(a, b, mode: str = "full"):
    """scipy.signal.fftconvolve, imported when first used (it costs ~0.8 s of CPU at import)."""
    from scipy.signal import fftconvolve as convolve

    return convolve(a, b, mode=mode)


@dataclass(frozen=True)
class CleanParams:
    """Minor-cycle settings; quantities in Jy and pixels. ``threshold`` is the configured
    absolute threshold; ``cycle_threshold`` combines it with ``auto_threshold``."""

    algorithm: str = "hogbom"
    niter: int = 1000
    gain: float = 0.1
    mgain: float = 0.8
    threshold: float = 0.0
    auto_threshold: float | None = None
    scales: tuple[float, ...] = DEFAULT_SCALES
    scale_bias: float = 0.6
    multiscale_gain: float = 0.2
    threads: int = 0

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> InputError:
            return InputError(f"deconvolution.{name} {why}, got {getattr(self, name)!r}")

        if self.algorithm not in ALGORITHMS:
            raise bad("algorithm", f"must be one of {', '.join(ALGORITHMS)}")
        if isinstance(self.niter, bool) or not isinstance(self.niter, int) or self.niter < 0:
            raise bad("niter", "must be an integer >= 0")
        for name in ("gain", "mgain", "scale_bias", "multiscale_gain"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 < v <= 1.0):
                raise bad(name, "must be in (0, 1]")
        if not (isinstance(self.threshold, (int, float)) and math.isfinite(self.threshold)
                and self.threshold >= 0.0):
            raise bad("threshold", "must be a finite flux >= 0 Jy")
        if self.auto_threshold is not None and not (
                isinstance(self.auto_threshold, (int, float))
                and math.isfinite(self.auto_threshold) and self.auto_threshold > 0.0):
            raise bad("auto_threshold", "must be a number > 0 or null")
        scales = tuple(self.scales)
        if not scales or any(not (isinstance(s, (int, float)) and math.isfinite(s) and s >= 0)
                             for s in scales):
            raise bad("scales", "must be a non-empty list of scales in pixels >= 0")
        object.__setattr__(self, "scales", tuple(sorted({float(s) for s in scales})))
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise bad("threads", "must be an integer >= 0")

    @classmethod
    def from_settings(cls, settings: dict) -> CleanParams:
        """From parsed settings (``settings['deconvolution']``, threshold already in Jy)."""
        d = settings.get("deconvolution") if isinstance(settings, dict) else None
        if not isinstance(d, dict):
            raise InputError("settings have no deconvolution section")
        keys = ("algorithm", "niter", "gain", "mgain", "threshold", "auto_threshold", "scales",
                "scale_bias")
        missing = [k for k in keys if k not in d]
        if missing:
            raise InputError(f"settings have no deconvolution.{missing[0]}")
        scales = d["scales"]
        return cls(algorithm=d["algorithm"], niter=d["niter"], gain=d["gain"], mgain=d["mgain"],
                   threshold=d["threshold"], auto_threshold=d["auto_threshold"],
                   scales=DEFAULT_SCALES if scales is None else tuple(scales),
                   scale_bias=d["scale_bias"], threads=planned_threads(settings))

    def cycle_threshold(self, residual: Any) -> float:
        """The absolute threshold (Jy) of a minor cycle on ``residual``:
        ``max(threshold, auto_threshold x robust_sigma(residual))``."""
        if self.auto_threshold is None:
            return float(self.threshold)
        return max(float(self.threshold), self.auto_threshold * robust_sigma(residual))


@dataclass(frozen=True, eq=False)
class MinorCycleResult:
    """What a minor cycle made: this cycle's ``components`` (merged; a ComponentList, or
    model.TaylorComponents where nterms > 1), the updated ``residual`` ``(ny, nx)`` or
    ``(nterms, ny, nx)`` (a new array; the input is not modified), ``iterations`` (components
    subtracted), ``peak_start``/``peak_end`` (max |residual| in Jy/beam before and after) and
    ``stop_reason`` (one of STOP_REASONS)."""

    components: Any
    residual: np.ndarray
    iterations: int
    peak_start: float
    peak_end: float
    stop_reason: str

    def summary(self) -> dict:
        """JSON-ready numbers of the cycle (no arrays)."""
        return {"iterations": self.iterations, "components": len(self.components),
                "flux": self.components.total_flux, "peak_start": self.peak_start,
                "peak_end": self.peak_end, "stop_reason": self.stop_reason}


class StopRule:
    """The stopping tests of one minor cycle (see the module docstring for the order)."""

    def __init__(self, params: CleanParams, peak_start: float, iterations_done: int,
                 threshold: float):
        self.threshold = threshold
        self.mgain_limit = (1.0 - params.mgain) * peak_start
        self.budget = max(0, params.niter - iterations_done)

    def reason(self, peak: float, iterations: int) -> str | None:
        """Why the cycle must stop at |peak| after ``iterations`` components, or None."""
        if peak == 0.0:
            return "no-peak"
        if peak <= self.threshold:
            return "threshold"
        if iterations >= self.budget:
            return "niter"
        if peak <= self.mgain_limit:
            return "mgain"
        return None

    def floor(self) -> float:
        """Below this |peak| the cycle stops whatever else happens."""
        return max(self.threshold, self.mgain_limit)


def find_peak(image: Any, xp: Any = np) -> tuple[int, int, float]:
    """``(y, x, value)`` of the largest ``|image|`` (``(ny, nx)`` array of module ``xp``);
    ties go to the lowest flat index."""
    flat = image.reshape(-1)
    i, j = int(xp.argmax(flat)), int(xp.argmin(flat))
    vi, vj = float(flat[i]), float(flat[j])
    k = j if (-vj > vi or (-vj == vi and j < i)) else i
    y, x = divmod(k, image.shape[1])
    return y, x, (vj if k == j else vi)


Window = tuple[slice, slice]


def overlap(shape: tuple[int, int], kshape: tuple[int, int], y: int, x: int,
            centre: tuple[int, int] | None = None) -> tuple[Window, Window]:
    """Slices ``(image window, kernel window)`` of a kernel whose pixel ``centre`` (default
    ``(ky // 2, kx // 2)``) lies on image pixel ``(y, x)``, clipped to both arrays."""
    ny, nx = shape
    ky, kx = kshape
    cy, cx = centre if centre is not None else (ky // 2, kx // 2)
    y0, y1 = max(0, y - cy), min(ny, y - cy + ky)
    x0, x1 = max(0, x - cx), min(nx, x - cx + kx)
    return ((slice(y0, y1), slice(x0, x1)),
            (slice(y0 - y + cy, y1 - y + cy), slice(x0 - x + cx, x1 - x + cx)))


def subtract_shifted(image: Any, kernel: Any, y: int, x: int, amp: float,
                     centre: tuple[int, int] | None = None) -> None:
    """``image -= amp x kernel`` shifted so its ``centre`` is on ``(y, x)``, in place."""
    (iy, ix), (ky, kx) = overlap(image.shape, kernel.shape, y, x, centre)
    image[iy, ix] -= image.dtype.type(amp) * kernel[ky, kx]


def prepare(residual: Any, psf: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated working arrays: a copy of the residual (float32 stays float32, else float64)
    and the PSF in the same dtype, normalised to 1 at its centre (the input itself when it
    already is: the algorithms never write to the PSF). InputError says what is wrong."""
    res = np.asarray(residual)
    p = np.asarray(psf)
    for name, a in (("residual", res), ("psf", p)):
        if a.ndim != 2 or min(a.shape) < 1:
            raise InputError(f"{name} must be a 2-D image (ny, nx), got shape {a.shape}")
        if a.dtype.kind not in "iuf":
            raise InputError(f"{name} must be real numbers, got {a.dtype}")
        if not (np.isfinite(a.min()) and np.isfinite(a.max())):  # NaN propagates; no copies
            raise InputError(f"{name} has NaN or infinite pixels")
    dtype = np.float32 if res.dtype == np.float32 else np.float64
    cy, cx = p.shape[0] // 2, p.shape[1] // 2
    centre = float(p[cy, cx])
    if centre <= 0.0:
        raise InputError(f"psf must peak at its centre pixel ({cy}, {cx}); found {centre:g} there")
    top = max(float(p.max()), -float(p.min()))
    if top > centre * (1.0 + 1e-6):
        raise InputError(f"psf must peak at its centre pixel ({cy}, {cx}): |psf| reaches {top:g}"
                         f" elsewhere, {centre:g} at the centre")
    # the PSF is only read: normalised into one new array, or used as it is when it is already
    # (a 2x PSF at 4096² is 256 MB in float32)
    norm = p.astype(dtype, copy=False) if centre == 1.0 else np.divide(p, centre, dtype=dtype)
    return res.astype(dtype, copy=True), norm


def sum_by_pixel(ys: np.ndarray, xs: np.ndarray, amps: np.ndarray,
                 nx: int) -> tuple[np.ndarray, np.ndarray]:
    """Components summed per pixel: (flat indices y*nx + x, ascending; their summed amplitudes),
    pixels whose amplitudes cancel exactly left out."""
    flat, inverse = np.unique(np.asarray(ys) * nx + np.asarray(xs), return_inverse=True)
    total = np.bincount(inverse.ravel(), weights=amps, minlength=flat.size)
    keep = total != 0.0
    return flat[keep], total[keep]


def pick_scale(scales: list, residual: Any, smoothed: Iterator[Any], peak: Callable,
               ny: int, nx: int) -> tuple:
    """Multiscale's choice of the next scale: the largest bias-weighted peak over the scales'
    images (``residual`` for scale 0, else the next of ``smoothed``), inside each scale's border.

    ``peak(image) -> (y, x, value)``; returns (score, scale, image, flat index, value).
    """
    best = None
    for sc in scales:
        image = residual if sc.scale == 0 else next(smoothed)
        r = sc.radius
        py, px, pv = peak(image[r:ny - r, r:nx - r])
        score = abs(pv) * sc.bias
        if best is None or score > best[0]:
            best = (score, sc, image, (py + r) * nx + px + r, pv)
    return best


class PSFSubtractor:
    """``residual -= (model increment) ⊛ psf`` for a batch of components of one scale.

    A few components are subtracted one by one as shifted (scale-convolved) PSFs; many are
    put on a model image and convolved by FFT. Both are exact up to rounding (the FFT is
    zero-padded); which one runs depends only on the count, so runs are reproducible.
    """

    def __init__(self, shape: tuple[int, int], psf: np.ndarray, *, threads: int = 0):
        self.shape = shape
        self.psf = psf
        self.threads = threads
        self._conv: Convolver | None = None
        self._scaled: dict[float, np.ndarray] = {}
        ny, nx = shape
        pad = transform_length(ny, psf.shape[0]) * transform_length(nx, psf.shape[1])
        direct = min(ny, psf.shape[0]) * min(nx, psf.shape[1])
        # measured on one core (512-2048 pixels, float32/64): a shifted-PSF subtraction costs
        # 1-3.4 ns per pixel, the FFT convolution 0.8-1.5 ns per padded pixel and log2(pad).
        # The planned thread count (0: one), never the cores found: the choice changes the
        # residual at rounding, so it must not depend on the machine.
        fft = 1.1 * pad * math.log2(pad) / max(1, threads) ** 0.7
        self.direct_limit = max(1, int(fft / (2.2 * direct)))

    def kernel_psf(self, scale: float) -> np.ndarray:
        """``psf ⊛ scale_kernel(scale)`` (full linear convolution; centre at the psf centre
        plus the kernel radius), cached per scale."""
        if scale == 0.0:
            return self.psf
        if scale not in self._scaled:
            k = scale_kernel(scale)
            full = fftconvolve(self.psf.astype(np.float64), k, mode="full")
            self._scaled[scale] = full.astype(self.psf.dtype)
        return self._scaled[scale]

    def __call__(self, residual: np.ndarray, ys: np.ndarray, xs: np.ndarray, amps: np.ndarray,
                 scale: float = 0.0) -> None:
        """Subtract components ``amps`` (Jy) at pixels ``(ys, xs)`` of ``scale`` in place."""
        ny, nx = self.shape
        flat, total = sum_by_pixel(ys, xs, amps, nx)
        if flat.size <= self.direct_limit:
            kp = self.kernel_psf(scale)
            k = scale_kernel(scale)
            centre = (self.psf.shape[0] // 2 + k.shape[0] // 2,
                      self.psf.shape[1] // 2 + k.shape[1] // 2)
            for f, a in zip(flat.tolist(), total.tolist(), strict=True):
                subtract_shifted(residual, kp, f // nx, f % nx, a, centre)
            return
        if self._conv is None:
            self._conv = Convolver(self.shape, [self.psf], dtype=residual.dtype,
                                   threads=self.threads)
        model = np.zeros(self.shape, dtype=residual.dtype)  # the transform's precision
        add_stamps(model, flat // nx, flat % nx, total, scale_kernel(scale))
        residual -= self._conv.convolve(model).astype(residual.dtype, copy=False)


def result(components: Any, residual: np.ndarray, iterations: int,
           peak_start: float, peak_end: float, reason: str) -> MinorCycleResult:
    """Assemble a MinorCycleResult (the algorithms' common exit)."""
    return MinorCycleResult(components, residual, int(iterations), float(peak_start),
                            float(peak_end), reason)


def minor_cycle(residual: Any, psf: Any, params: CleanParams, *, iterations_done: int,
                threshold: float, xp: Any = None) -> MinorCycleResult:
    """One minor cycle of ``params.algorithm`` on ``residual`` Jy/beam with ``psf``: one image
    ``(ny, nx)`` or the Taylor terms ``(nterms, ny, nx)`` with their ``2 nterms - 1`` PSFs.

    ``iterations_done``: components of the earlier cycles (counted against ``params.niter``);
    ``threshold``: absolute stopping threshold in Jy (``params.cycle_threshold`` of tt0). One
    term is the case nterms = 1 of ``multi_term_cycle``, run by the one-image algorithms
    (hogbom.py, clark.py, multiscale.py; on the GPU with ``xp`` = CuPy, gpu_clean.py): the same
    components, in float32 where the residual is. The result has the input's shape.
    """
    if isinstance(iterations_done, bool) or not isinstance(iterations_done, (int, np.integer)) \
            or iterations_done < 0:
        raise InputError(f"iterations_done must be an integer >= 0, got {iterations_done!r}")
    if not (math.isfinite(threshold) and threshold >= 0.0):
        raise InputError(f"threshold must be a finite flux >= 0 Jy, got {threshold!r}")
    res, p = np.asarray(residual), np.asarray(psf)
    if res.ndim == 3 and len(res) > 1:
        return multi_term_cycle(res, p, params, iterations_done=int(iterations_done),
                                threshold=float(threshold))
    terms = res.ndim == 3
    if terms:
        if p.ndim != 3 or len(p) != 1:
            raise InputError(f"nterms 1 needs 1 Taylor PSF, got shape {p.shape}")
        res, p = res[0], p[0]
    if xp is not None:
        from htclean.imaging.gpu import gpu_clean

        out = gpu_clean.minor_cycle(res, p, params, iterations_done=iterations_done,
                                    threshold=threshold, xp=xp)
    else:
        res, p = prepare(res, p)
        # The algorithm modules import this one for the shared pieces above: a late import.
        from htclean.imaging.deconvolution import clark, hogbom, multiscale

        run = {"hogbom": hogbom.run, "clark": clark.run, "multiscale": multiscale.run}
        out = run[params.algorithm](res, p, params, iterations_done=int(iterations_done),
                                    threshold=float(threshold))
    if terms:
        return result(out.components, out.residual[None], out.iterations, out.peak_start,
                      out.peak_end, out.stop_reason)
    return out


def multi_term_cycle(residuals: Any, psfs: Any, params: CleanParams, *, iterations_done: int,
                     threshold: float) -> MinorCycleResult:
    """One MT-MFS minor cycle (Rau & Cornwell 2011) of ``params.algorithm`` on Taylor
    residuals (nterms, ny, nx) with Taylor PSFs (2 nterms - 1, pny, pnx), any nterms >= 1
    (hogbom.run_terms, multiscale.run_terms; float64); the inputs are not modified. Its
    stop rules and peaks are on max |R_0|; its components are TaylorComponents."""
    from htclean.imaging.deconvolution import hogbom, multiscale
    from htclean.imaging.gridding import taylor

    if params.algorithm not in ("hogbom", "multiscale"):
        raise InputError(f"multi-term deconvolution supports the hogbom and multiscale "
                         f"algorithms, not {params.algorithm!r}")
    if not (math.isfinite(threshold) and threshold >= 0):
        raise InputError(f"threshold must be a finite flux >= 0 Jy, got {threshold!r}")
    res, psf = taylor.prepare(residuals, psfs)
    peak_start = float(np.abs(res[0]).max())
    stop = StopRule(params, peak_start, int(iterations_done), float(threshold))
    run = multiscale.run_terms if params.algorithm == "multiscale" else hogbom.run_terms
    comps, done, reason = run(res, psf, params, stop)
    return result(comps, res, done, peak_start, float(np.abs(res[0]).max()), reason)

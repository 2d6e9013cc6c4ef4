"""PNG previews of images: offsets in arcsec from the image centre, a colour bar, statistics.

The colour scale is an asinh stretch anchored on the robust noise (``noise.robust_sigma``):
linear within a few sigma of zero, so the noise shows as texture, and logarithmic above, so
sources from a few sigma to the peak are all visible without saturating; the colour bar stays
in the image's true unit. The title gives the peak and the robust noise (MAD), and, given the
restoring beam, it is drawn as an ellipse in the bottom-left corner.

Matplotlib with the Agg backend (no display needed); written atomically.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from htclean.imaging.errors import InputError
from htclean.imaging.geometry import ImageGeometry

STRETCHES = ("asinh", "linear")
NOISE_WIDTH = 2.0  # the asinh stretch is linear within this many robust sigmas of zero
MIN_WIDTH = 1e-4  # ... and at least this fraction of the largest |pixel| (noise-free images)
SHOWN_PIXELS = 512  # a preview draws at most this many pixels a side (``downsample``)
_PREFIXES = ((0.1, 1.0, ""), (1e-3, 1e-3, "m"), (1e-6, 1e-6, "µ"), (1e-9, 1e-9, "n"))


def _finite(image: np.ndarray) -> np.ndarray:
    return image[np.isfinite(image)]


def format_value(value: float, bunit: str) -> str:
    """``value`` in ``bunit`` with 4 significant digits; a Jy unit gets an SI prefix
    (0.9999 Jy/beam, 12.34 mJy/beam, 126.8 µJy/beam); no unit: the bare number."""
    if bunit.startswith("Jy") and math.isfinite(value):
        for floor, scale, prefix in _PREFIXES:
            if abs(value) >= floor:
                return f"{value / scale:.4g} {prefix}{bunit}"
    return f"{value:.4g} {bunit}".rstrip()


def colour_norm(image: np.ndarray, *, stretch: str = "asinh", vmin: float | None = None,
                vmax: float | None = None, sigma: float | None = None) -> Any:
    """The matplotlib norm of a preview of ``image`` (any shape, in its unit).

    vmin/vmax default to the image's finite range. ``asinh``: AsinhNorm whose linear width
    is NOISE_WIDTH x the robust sigma (at least MIN_WIDTH x the largest |pixel|); ``linear``:
    Normalize. ``sigma``: the image's robust sigma where the caller has it.
    """
    from matplotlib.colors import AsinhNorm, Normalize

    from htclean.imaging.noise import robust_sigma

    if stretch not in STRETCHES:
        raise InputError(f"stretch must be one of {', '.join(STRETCHES)}, got {stretch!r}")
    finite = _finite(np.asarray(image))
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    lo, hi = lo if vmin is None else vmin, hi if vmax is None else vmax
    if not lo <= hi:
        raise InputError(f"the colour range must have vmin <= vmax, got {lo!r}, {hi!r}")
    if stretch == "linear":
        return Normalize(vmin=lo, vmax=hi)
    scale = float(np.abs(finite).max()) if finite.size else 1.0
    if sigma is None:
        sigma = robust_sigma(finite) if finite.size else 0.0
    width = max(NOISE_WIDTH * sigma, MIN_WIDTH * scale)
    return AsinhNorm(linear_width=width if width > 0 else 1.0, vmin=lo, vmax=hi)


def colour_ticks(norm: Any, min_gap: float = 0.08) -> list[float]:
    """Colour-bar ticks of an asinh ``norm``: 0 and the powers of ten (either sign) in its
    range, then 2 and 5 times them while fewer than 4, each at least ``min_gap`` (a fraction
    of the bar) from the others. Sorted values in the image's unit."""
    lo, hi = float(norm.vmin), float(norm.vmax)
    span = max(abs(lo), abs(hi))
    if not span > 0:
        return [lo]
    top = math.ceil(math.log10(span))
    powers = [10.0 ** k for k in range(top, top - 12, -1)]
    chosen: list[float] = []
    positions: list[float] = []
    for mantissas in ((1.0,), (2.0, 5.0)):
        if mantissas != (1.0,) and len(chosen) >= 4:
            break
        candidates = [0.0] if mantissas == (1.0,) else []
        candidates += [sign * m * p for p in powers for m in mantissas for sign in (1, -1)]
        for value in candidates:
            if not lo - 1e-6 * span <= value <= hi + 1e-6 * span:
                continue
            value = min(max(value, lo), hi)  # a PSF's peak 0.9999998 is ticked (and shown) 1
            where = float(norm(value))
            if all(abs(where - q) >= min_gap for q in positions):
                chosen.append(value)
                positions.append(where)
    return sorted(chosen)


def downsample(image: np.ndarray, limit: int = SHOWN_PIXELS) -> tuple[np.ndarray, int]:
    """``(shown, factor)``: ``image`` reduced by an integer ``factor`` so that neither side
    exceeds ``limit`` pixels, each block of factor x factor pixels shown as its pixel of
    largest |value| (a point source keeps its peak; blocks past the edge are NaN-padded);
    the image itself when it is small enough. A figure is ~500 pixels wide: drawing a 4096²
    image resampled it in float64 at full size."""
    ny, nx = image.shape
    factor = -(-max(ny, nx) // limit)
    if factor <= 1:
        return image, 1
    by, bx = -(-ny // factor), -(-nx // factor)
    padded = np.full((by * factor, bx * factor), np.nan, dtype=image.dtype)
    padded[:ny, :nx] = image
    blocks = padded.reshape(by, factor, bx, factor).transpose(0, 2, 1, 3).reshape(by, bx, -1)
    size = np.abs(blocks)
    size[np.isnan(size)] = -1.0
    pick = size.argmax(axis=2)[..., None]
    return np.take_along_axis(blocks, pick, axis=2)[..., 0], factor


def _statistics(image: np.ndarray, bunit: str, noise: bool, sigma: float | None = None) -> str:
    """One line: the peak and the robust noise (MAD) with peak/noise; without ``noise``
    (a PSF, whose MAD measures sidelobes), the peak and the deepest negative."""
    from htclean.imaging.noise import robust_sigma

    finite = _finite(image)
    if finite.size == 0:
        return "no finite pixels"
    peak = float(finite.max())
    if not noise:
        return (f"peak {format_value(peak, bunit)}, "
                f"min {format_value(float(finite.min()), bunit)}")
    if sigma is None:
        sigma = robust_sigma(finite)
    if not sigma > 0:  # a noise-free image (a model): most pixels are equal
        return _statistics(image, bunit, noise=False)
    return (f"peak {format_value(peak, bunit)}, noise (MAD) {format_value(sigma, bunit)}, "
            f"peak/noise {peak / sigma:.4g}")


def _draw_beam(ax: Any, beam: Any, left: float, bottom: float, width: float) -> None:
    """The restoring beam (FWHM ellipse) in the bottom-left corner of ``ax`` (data in arcsec
    offsets, East to the left); its major axis is ``beam.bpa`` degrees East of North."""
    from matplotlib.patches import Ellipse

    bmaj, bmin = math.degrees(beam.bmaj) * 3600.0, math.degrees(beam.bmin) * 3600.0
    # data x is the East offset: the major axis points along (sin bpa, cos bpa) in (x, y);
    # with height = bmaj, an Ellipse turned by -bpa (counter-clockwise in data) does that
    pad = 0.03 * width + bmaj / 2.0
    ax.add_patch(Ellipse((left - pad, bottom + pad), width=bmin, height=bmaj, angle=-beam.bpa,
                         facecolor="white", edgecolor="black", alpha=0.8, linewidth=0.8,
                         label="restoring beam"))


def figure(image: np.ndarray, geom: ImageGeometry, *, title: str = "", bunit: str = "Jy/beam",
           label: str | None = None, beam: Any = None, noise: bool = True,
           stretch: str = "asinh", cmap: str = "inferno", vmin: float | None = None,
           vmax: float | None = None, sigma: float | None = None,
           statistics: str | None = None) -> Any:
    """The preview of ``image`` (ny, nx), FITS orientation, as a matplotlib Figure (Agg).

    Axes are RA and Dec offsets from the image centre in arcsec, East on the left. The colour
    bar is in ``bunit`` ("Jy/beam" for images, "Jy/pixel" for a model, "" for a PSF of peak
    1) and labelled ``label`` (default ``bunit``); ``colour_norm`` gives the stretch. The title
    is ``title``, then the peak and the robust noise (``noise=False``: the peak and the
    minimum, for a PSF), then the beam when ``beam`` (imaging.beams.beam.Beam: bmaj/bmin FWHM in
    radians, bpa degrees East of North) is given; the beam is also drawn, bottom left.
    ``sigma``: the image's robust sigma (noise.robust_sigma) where the caller has it; else it
    is computed once here (at 4096² it costs more than drawing). ``statistics``: the line to
    show instead of the peak and noise (a map that is not an image, e.g. a spectral index).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    image = np.asarray(image)
    if image.dtype.kind != "f":
        image = image.astype(np.float64)
    if image.shape != geom.shape:
        raise InputError(f"image has shape {image.shape}, the geometry says {geom.shape}")
    if sigma is None and (noise or stretch == "asinh"):
        from htclean.imaging.noise import robust_sigma

        finite = _finite(image)
        sigma = robust_sigma(finite) if finite.size else 0.0
    norm = colour_norm(image, stretch=stretch, vmin=vmin, vmax=vmax, sigma=sigma)
    asec = math.degrees(geom.cell) * 3600.0
    # pixel edges in offsets: l decreases with x (East on the left), m increases with y
    left = (geom.nx // 2 + 0.5) * asec
    right = -(geom.nx - geom.nx // 2 - 0.5) * asec
    bottom = -(geom.ny // 2 + 0.5) * asec
    top = (geom.ny - geom.ny // 2 - 0.5) * asec
    fig = Figure(figsize=(6.4, 5.8), dpi=100, layout="tight")
    ax = fig.add_subplot(1, 1, 1)
    small, factor = downsample(image)
    # the shown array covers whole blocks: its far edges lie past the image's (NaN there)
    far_x = left - small.shape[1] * factor * asec
    far_y = bottom + small.shape[0] * factor * asec
    shown = ax.imshow(small, origin="lower", cmap=cmap, extent=(left, far_x, bottom, far_y),
                      norm=norm, interpolation="nearest")
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    ax.set_xlabel("RA offset (arcsec)")
    ax.set_ylabel("Dec offset (arcsec)")
    lines = [title] if title else []
    lines.append(statistics if statistics is not None
                 else _statistics(image, bunit, noise, sigma))
    if beam is not None:
        bmaj, bmin = (math.degrees(b) * 3600.0 for b in (beam.bmaj, beam.bmin))
        lines.append(f'beam {bmaj:.3g}" x {bmin:.3g}", PA {beam.bpa:.1f} deg (bottom left)')
        _draw_beam(ax, beam, left, bottom, left - right)
    ax.set_title("\n".join(lines), fontsize=9)
    bar = make_axes_locatable(ax).append_axes("right", size="4%", pad=0.08)
    text = bunit if label is None else label
    if stretch == "asinh":
        fig.colorbar(shown, cax=bar, ticks=colour_ticks(norm), format="%g",
                     label=f"{text} (asinh scale)" if text else "asinh scale")
        bar.minorticks_off()
    else:
        fig.colorbar(shown, cax=bar, label=text)
    return fig


def write_preview(path: str | os.PathLike, image: np.ndarray, geom: ImageGeometry, *,
                  title: str = "", bunit: str = "Jy/beam", label: str | None = None,
                  beam: Any = None, noise: bool = True, stretch: str = "asinh",
                  cmap: str = "inferno", vmin: float | None = None,
                  vmax: float | None = None, sigma: float | None = None,
                  statistics: str | None = None) -> None:
    """Write the PNG of ``figure(image, geom, ...)`` (same arguments) to ``path``."""
    fig = figure(image, geom, title=title, bunit=bunit, label=label, beam=beam, noise=noise,
                 stretch=stretch, cmap=cmap, vmin=vmin, vmax=vmax, sigma=sigma,
                 statistics=statistics)
    save_png_atomic(fig, path)


def save_png_atomic(fig: Any, path: str | Path) -> Path:
    """Write the matplotlib figure ``fig`` as a PNG to ``path`` through a temporary name and
    a rename (no half-written file under the name); return the path."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target

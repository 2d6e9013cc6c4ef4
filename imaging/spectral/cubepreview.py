"""A PNG of a spectral cube: a grid of channel maps and the spectrum at the brightest pixel.

Up to ``PANELS`` channel maps share one colour scale (preview.py's asinh stretch, anchored on
the median channel noise), each labelled with its channel and its radio velocity (with
RESTFRQ) or frequency. With more channels than panels, the maps show the line: the run of
channels around its peak where the line pixel's spectrum (less its median) is above
``LINE_SIGMA`` x the channel noise, padded to fill the panels, or evenly strided over that
run when it is wider (``preview_channels``); without such channels, evenly over the band.
The line pixel is the one brightest above its own spectral median (``line_pixel``), so a
continuum source that was not subtracted does not hide the line. Below the maps, the
spectrum at the brightest voxel's pixel (and at the line pixel, where that is another one)
with the channel noise as a band; beside it the peak, the line's peak above its median,
their channels and pixels, and the channel noise. Matplotlib with the Agg backend; written
atomically.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from htclean.imaging import fitscube, preview
from htclean.imaging.errors import InputError
from htclean.imaging.noise import robust_sigma
from htclean.imaging.spectral.moments import radio_velocity

PANELS = 12  # channel maps drawn at most
COLUMNS = 4
LINE_SIGMA = 3.0
ROWS = 64  # line_pixel's median over the channels, this many image rows at a time
PANEL_PIXELS = 160  # each map drawn with at most this many pixels a side (preview.downsample)


def preview_channels(spectrum: np.ndarray, noise: np.ndarray,
                     panels: int = PANELS) -> np.ndarray:
    """The channels (sorted indices) to draw of a cube whose brightest spectrum is
    ``spectrum`` (nchan,) with channel noise ``noise`` (nchan,) (module docstring)."""
    nchan = len(spectrum)
    if nchan <= panels:
        return np.arange(nchan)
    with np.errstate(invalid="ignore"):
        above = np.asarray(spectrum) > LINE_SIGMA * np.asarray(noise)
    peak = int(np.nanargmax(spectrum)) if np.isfinite(spectrum).any() else 0
    if not above[peak]:
        return np.unique(np.round(np.linspace(0, nchan - 1, panels)).astype(int))
    first = last = peak  # the run of channels above the threshold around the peak
    while first > 0 and above[first - 1]:
        first -= 1
    while last < nchan - 1 and above[last + 1]:
        last += 1
    if last - first + 1 <= panels:
        start = min(max(0, (first + last + 1) // 2 - panels // 2), nchan - panels)
        return np.arange(start, start + panels)
    return np.unique(np.round(np.linspace(first, last, panels)).astype(int))


def line_pixel(data: np.ndarray) -> tuple[int, int, int, float]:
    """(channel, y, x, excess): the voxel of ``data`` (nchan, ny, nx) furthest above its
    pixel's median over the channels (its continuum), and that excess."""
    median = np.empty(data.shape[1:], np.float64)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels: NaN, as wanted
        for y in range(0, data.shape[1], ROWS):  # nanmedian copies what it is given
            median[y:y + ROWS] = np.nanmedian(data[:, y:y + ROWS], axis=0)
    best = (0, 0, 0, -np.inf)
    for c, plane in enumerate(data):
        excess = plane - median
        if not np.isfinite(excess).any():
            continue
        y, x = np.unravel_index(np.nanargmax(excess), excess.shape)
        if excess[y, x] > best[3]:
            best = (c, int(y), int(x), float(excess[y, x]))
    return best


def brightest(data: np.ndarray) -> tuple[int, int, int]:
    """(channel, y, x) of the largest finite voxel of ``data``, a plane at a time (nanargmax
    of the whole cube copies it); InputError when no voxel is finite."""
    best, where = -np.inf, None
    for c, plane in enumerate(data):
        if np.isfinite(plane).any():
            y, x = np.unravel_index(np.nanargmax(plane), plane.shape)
            if plane[y, x] > best:
                best, where = plane[y, x], (c, int(y), int(x))
    if where is None:
        raise InputError("the cube has no finite pixel: nothing to preview")
    return where


def _label(freq: float, rest_freq: float | None) -> str:
    if rest_freq is None:
        return f"{freq / 1e6:.4f} MHz"
    return f"{float(radio_velocity(np.array([freq]), rest_freq)[0]):.2f} km/s"


def _noise(cube: np.ndarray) -> np.ndarray:
    return np.array([robust_sigma(p) if np.isfinite(p).any() else np.nan for p in cube])


def figure(cube: fitscube.Cube, title: str = "") -> Any:
    """The channel maps and spectrum of ``cube`` (fitscube.read_cube) as a Figure (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    data = cube.data
    c, y, x = brightest(data)
    noise = _noise(data)
    spectrum = data[:, y, x].astype(np.float64)
    line = line_pixel(data)
    lspec = data[:, line[1], line[2]].astype(np.float64)
    chosen = preview_channels(lspec - np.nanmedian(lspec), noise)
    rows = -(-len(chosen) // COLUMNS)
    fig = Figure(figsize=(3.0 * COLUMNS, 2.7 * rows + 3.4), dpi=100, layout="constrained")
    grid = fig.add_gridspec(rows + 1, COLUMNS, height_ratios=[1.0] * rows + [1.1])
    shown = [preview.downsample(data[i], PANEL_PIXELS) for i in chosen]
    stack = np.stack([s for s, _ in shown])
    sigma = float(np.nanmedian(noise))
    norm = preview.colour_norm(stack, sigma=sigma if math.isfinite(sigma) else None)
    geom = cube.geom
    asec = math.degrees(geom.cell) * 3600.0
    left, bottom = (geom.nx // 2 + 0.5) * asec, -(geom.ny // 2 + 0.5) * asec
    image = None
    for k, (i, (small, factor)) in enumerate(zip(chosen, shown, strict=True)):
        ax = fig.add_subplot(grid[k // COLUMNS, k % COLUMNS])
        extent = (left, left - small.shape[1] * factor * asec, bottom,
                  bottom + small.shape[0] * factor * asec)
        image = ax.imshow(small, origin="lower", cmap="inferno", norm=norm, extent=extent,
                          interpolation="nearest")
        ax.set_xlim(left, left - geom.nx * asec)
        ax.set_ylim(bottom, bottom + geom.ny * asec)
        ax.set_title(f"ch {i}: {_label(cube.freq[i], cube.rest_freq)}", fontsize=8)
        ax.tick_params(labelsize=6)
        if k % COLUMNS:
            ax.set_yticklabels([])
        if k // COLUMNS != rows - 1:
            ax.set_xticklabels([])
        elif k % COLUMNS == 0:
            ax.set_xlabel("RA offset (arcsec)", fontsize=7)
            ax.set_ylabel("Dec offset (arcsec)", fontsize=7)
    fig.colorbar(image, ax=fig.axes, ticks=preview.colour_ticks(norm), format="%g",
                 label="Jy/beam (asinh scale)", shrink=0.8)
    other = None if (line[1], line[2]) == (y, x) else (lspec, line)
    _spectrum(fig, grid[rows, :COLUMNS - 1], cube, spectrum, noise, chosen, other)
    text = fig.add_subplot(grid[rows, COLUMNS - 1])
    text.axis("off")
    text.text(0.0, 1.0, _numbers(cube, spectrum, noise, (c, y, x), line), va="top", fontsize=8,
              family="monospace", transform=text.transAxes)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _spectrum(fig: Any, where: Any, cube: fitscube.Cube, spectrum: np.ndarray,
              noise: np.ndarray, chosen: np.ndarray, other: tuple | None) -> None:
    ax = fig.add_subplot(where)
    if cube.rest_freq is not None:
        axis, label = radio_velocity(cube.freq, cube.rest_freq), "radio velocity (km/s)"
    else:
        axis, label = cube.freq / 1e6, "frequency (MHz)"
    ax.fill_between(axis, -noise, noise, step="mid", color="0.85", label="±1 channel noise")
    ax.step(axis, spectrum, where="mid", color="C0", label="brightest pixel")
    if other is not None:
        lspec, (_, ly, lx, _) = other
        ax.step(axis, lspec, where="mid", color="C2", label=f"line pixel ({lx}, {ly})")
    shown = spectrum if other is None else other[0]
    ax.plot(axis[chosen], shown[chosen], "o", ms=3, color="C1", label="channel maps above")
    ax.axhline(0.0, color="0.5", lw=0.5)
    ax.set_xlabel(label)
    ax.set_ylabel("Jy/beam")
    ax.legend(fontsize=7, loc="upper right")


def _numbers(cube: fitscube.Cube, spectrum: np.ndarray, noise: np.ndarray,
             peak: tuple[int, int, int], line: tuple[int, int, int, float]) -> str:
    c, y, x = (int(v) for v in peak)
    geom = cube.geom
    asec = math.degrees(geom.cell) * 3600.0
    finite = noise[np.isfinite(noise)]
    lines = [f"{len(cube.freq)} channels, {geom.nx} x {geom.ny} px",
             f"peak {preview.format_value(float(spectrum[c]), 'Jy/beam')}",
             f"  channel {c}: {_label(cube.freq[c], cube.rest_freq)}",
             f"  pixel (x, y) ({x}, {y})",
             f"  offset ({-(x - geom.nx // 2) * asec:.1f}\", {(y - geom.ny // 2) * asec:.1f}\")",
             f"line {preview.format_value(line[3], 'Jy/beam')} above median",
             f"  channel {line[0]}: {_label(cube.freq[line[0]], cube.rest_freq)}",
             f"  pixel (x, y) ({line[2]}, {line[1]})",
             "channel noise (MAD)",
             f"  median {preview.format_value(float(np.median(finite)), 'Jy/beam')}",
             f"  min {preview.format_value(float(finite.min()), 'Jy/beam')}",
             f"  max {preview.format_value(float(finite.max()), 'Jy/beam')}",
             f"  at peak {preview.format_value(float(noise[c]), 'Jy/beam')}"]
    if noise[c] > 0:
        lines.append(f"peak / noise {spectrum[c] / noise[c]:.4g}")
    return "\n".join(lines)


def channel_preview(image_cube: Path, png: Path) -> Path:
    """Write the PNG of ``figure`` for the cube file ``image_cube`` to ``png``; return it."""
    cube = fitscube.read_cube(image_cube, dtype=np.float32)
    fig = figure(cube, title=Path(image_cube).name)
    return preview.save_png_atomic(fig, png)

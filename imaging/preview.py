"""PNG previews of images: offsets in arcsec from the image centre, a colour bar, statistics.

Matplotlib with the Agg backend (no display needed); written atomically.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from htclean.imaging.errors import InputError
from htclean.imaging.geometry import ImageGeometry


def _rms(image: np.ndarray) -> float:
    finite = image[np.isfinite(image)]
    return float(np.sqrt(np.mean(np.square(finite)))) if finite.size else float("nan")


def write_preview(path: str | os.PathLike, image: np.ndarray, geom: ImageGeometry, *,
                  title: str = "", bunit: str = "Jy/beam", cmap: str = "inferno",
                  vmin: float | None = None, vmax: float | None = None) -> None:
    """Write a PNG of ``image`` (ny, nx), FITS orientation, East on the left.

    Axes are RA and Dec offsets from the image centre in arcsec; the colour bar is in
    ``bunit``; min, max and rms of the image are written under the title. vmin/vmax default
    to the image's range.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    image = np.asarray(image, np.float64)
    if image.shape != geom.shape:
        raise InputError(f"image has shape {image.shape}, the geometry says {geom.shape}")
    asec = math.degrees(geom.cell) * 3600.0
    # pixel edges in offsets: l decreases with x (East on the left), m increases with y
    left = (geom.nx // 2 + 0.5) * asec
    right = -(geom.nx - geom.nx // 2 - 0.5) * asec
    bottom = -(geom.ny // 2 + 0.5) * asec
    top = (geom.ny - geom.ny // 2 - 0.5) * asec
    finite = image[np.isfinite(image)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    fig = Figure(figsize=(6.4, 5.6), dpi=100, layout="tight")
    ax = fig.add_subplot(1, 1, 1)
    shown = ax.imshow(image, origin="lower", cmap=cmap, extent=(left, right, bottom, top),
                      vmin=lo if vmin is None else vmin, vmax=hi if vmax is None else vmax,
                      interpolation="nearest")
    ax.set_xlabel("RA offset (arcsec)")
    ax.set_ylabel("Dec offset (arcsec)")
    stats = f"min {lo:.4g}  max {hi:.4g}  rms {_rms(image):.4g} {bunit}"
    ax.set_title(f"{title}\n{stats}" if title else stats, fontsize=9)
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    bar = make_axes_locatable(ax).append_axes("right", size="4%", pad=0.08)
    fig.colorbar(shown, cax=bar, label=bunit)
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)

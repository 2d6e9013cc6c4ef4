"""Partial images: the unnormalised sums the grid jobs write and the gather adds up.

A ``Partial`` holds images of some visibilities and what normalises them; partials of all
parts add up (``a + b``) exactly as the one-process image would, and ``normalise`` divides by
the global weight sum at the end. Taylor terms of multi-term MFS are images ``kind-ttN``
(``term_names``); an nterms-1 image is the one term ``kind``. Partials travel between jobs
as .npz files (``save_partial``, ``load_partial``).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from htclean.imaging.errors import InputError
from htclean.imaging.geometry import ImageGeometry

EXACT = frozenset({"density"})  # images kept in float64 when saved (they divide weights)


@dataclass
class Partial:
    """Unnormalised images of some visibilities and what normalises them.

    images: name -> array (``dirty``, ``residual`` or ``density`` (ny, nx); ``psf`` (pny, pnx),
    ``image.psf_oversize`` x the image, on ``geometry.psf_geometry(geom, oversize)``);
    weight_sum: sum of the imaging weights gridded (float64); visibilities: Stokes I samples
    with weight > 0; nbad: NaN/Inf samples treated as flagged; geom: the image's pixel grid,
    with the band and date covered. ``a + b`` sums images (each keeps its own shape) and counts
    (float64).
    """

    images: dict[str, np.ndarray]
    weight_sum: float = 0.0
    visibilities: int = 0
    nbad: int = 0
    geom: ImageGeometry | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __add__(self, other: Partial) -> Partial:
        if set(self.images) != set(other.images):
            raise InputError(f"cannot add partial images {sorted(self.images)} and "
                             f"{sorted(other.images)}")
        images = {}
        for name, img in self.images.items():
            if img.shape != other.images[name].shape:
                raise InputError(f"cannot add {name} images of shapes {img.shape} and "
                                 f"{other.images[name].shape}")
            images[name] = np.asarray(img, np.float64) + other.images[name]
        geom = self.geom if other.geom is None else (
            other.geom if self.geom is None else self.geom.union(other.geom))
        meta = {**self.meta, **other.meta}
        if "channel_weights" in self.meta and "channel_weights" in other.meta:
            meta["channel_weights"] = add_channel_weights(self.meta["channel_weights"],
                                                          other.meta["channel_weights"])
        return Partial(images, self.weight_sum + other.weight_sum,
                       self.visibilities + other.visibilities, self.nbad + other.nbad, geom,
                       meta)


def skipped(reason: str) -> Partial:
    """An empty partial: no images, no geometry; a residual job planned before the loop
    stopped (``reason``) writes it instead of gridding, and a gather of such partials only
    passes one on (``is_skipped``)."""
    return Partial({}, meta={"mode": "residual", "skipped": reason})


def is_skipped(partial: Partial) -> bool:
    return "skipped" in partial.meta


def add_channel_weights(a: list, b: list) -> list[list[float]]:
    """Two lists of [frequency Hz, weight sum] added by frequency, ascending (multi-term MFS
    partials carry them)."""
    sums: dict[float, float] = {}
    for f, w in (*a, *b):
        sums[float(f)] = sums.get(float(f), 0.0) + float(w)
    return [[f, sums[f]] for f in sorted(sums)]


def normalise(partial: Partial) -> dict[str, np.ndarray]:
    """Images divided by the weight sum (the PSF then peaks at 1), each in its own float type
    (float32 partials stay float32: a 2x PSF is not doubled in memory), divided in float64 a
    block of rows at a time. The density, if present, is returned unchanged."""
    if not partial.weight_sum > 0:
        raise InputError("no unflagged visibilities: the weight sum is zero")
    out = {}
    for name, img in partial.images.items():
        if name in EXACT:
            out[name] = img
            continue
        img = np.asarray(img)
        res = np.empty(img.shape, np.result_type(img.dtype, np.float32))
        for r in range(0, max(len(img), 1), 512):
            res[r:r + 512] = img[r:r + 512] / np.float64(partial.weight_sum)
        out[name] = res
    return out


def term_names(kind: str, n: int) -> list[str]:
    """The Partial image names of ``n`` stacked terms: ``kind`` for one term, else
    ``kind-tt0`` .. ``kind-tt(n-1)``."""
    return [kind] if n == 1 else [f"{kind}-tt{t}" for t in range(n)]


def stacked(partial: Partial, kind: str) -> np.ndarray:
    """The terms of ``kind`` in a partial as one (n, ny, nx) array (one term: a view)."""
    if kind in partial.images:
        return np.asarray(partial.images[kind])[None]
    names = sorted((k for k in partial.images if k.startswith(f"{kind}-tt")),
                   key=lambda k: int(k.rsplit("tt", 1)[1]))
    if not names:
        raise InputError(f"the partial holds {sorted(partial.images)}, no {kind} terms")
    return np.stack([partial.images[k] for k in names])


def save_partial(path: str | os.PathLike, partial: Partial) -> None:
    """Write a partial atomically as .npz: images as float32 (``density`` float64, the file
    then zip-compressed), the weight sum (float64), counts, and the geometry and meta as JSON."""
    arrays: dict[str, np.ndarray] = {
        f"image_{name}": np.asarray(img, np.float64 if name in EXACT else np.float32)
        for name, img in partial.images.items()}
    header = {"weight_sum": float(partial.weight_sum), "visibilities": int(partial.visibilities),
              "nbad": int(partial.nbad), "meta": partial.meta,
              "geom": asdict(partial.geom) if partial.geom is not None else None}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    buf = io.BytesIO()
    # a density is mostly empty (the uv cells no baseline reaches): compressed, a fraction of
    # its float64 size for every weights, grid and residual job that reads it
    (np.savez_compressed if "density" in partial.images else np.savez)(buf, **arrays)
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(buf.getbuffer())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def load_partial(path: str | os.PathLike) -> Partial:
    """Read a partial written by ``save_partial``; InputError when it is not one."""
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(bytes(z["header"]).decode())
            images = {k.removeprefix("image_"): z[k] for k in z.files if k.startswith("image_")}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path} is not a partial image file: {exc}") from None
    geom = ImageGeometry(**header["geom"]) if header.get("geom") else None
    return Partial(images, float(header["weight_sum"]), int(header["visibilities"]),
                   int(header.get("nbad", 0)), geom, header.get("meta") or {})

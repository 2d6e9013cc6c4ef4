"""The CLEAN model as a sparse component list, and the shapes of its scale components.

A component is an integer pixel position ``(x, y)`` in FITS orientation (``image[y, x]``), a
flux in Jy and a scale in pixels: scale 0 is a point (a delta at the pixel), scale > 0 is the
multiscale kernel of ``scale_kernel(scale)`` centred on the pixel, normalised so that its sum
is the component's flux. ``ComponentList.to_image()`` is the model image in Jy/pixel that
degridding predicts. The list travels between jobs as a small JSON file (``write``/``read``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from htclean.imaging.errors import InputError

FORMAT = "htclean-components"
VERSION = 1


@lru_cache(maxsize=64)
def _kernel(scale: float) -> np.ndarray:
    if scale == 0.0:
        return np.ones((1, 1))
    n = 2 * math.ceil(scale / 2.0) + 1
    r = np.hypot(*np.meshgrid(np.arange(n) - n // 2, np.arange(n) - n // 2, indexing="ij"))
    taper = np.where(2.0 * r <= n + 1, 0.5 * (1.0 + np.cos(2.0 * np.pi * r / (n + 1))), 0.0)
    paraboloid = np.clip(1.0 - (r / scale) ** 2, 0.0, None)
    k = taper * paraboloid
    k /= k.sum()
    k.setflags(write=False)
    return k


def scale_kernel(scale: float) -> np.ndarray:
    """The shape of a component of ``scale`` pixels: ``(n, n) float64``, sum 1, centre ``n // 2``.

    WSClean's tapered paraboloid: ``(1 - (r / scale)^2)`` times a Hann window over
    ``n = 2 ceil(scale / 2) + 1`` pixels, so ``scale`` is the kernel's full width. Scale 0 is a
    ``(1, 1)`` delta. The array is read-only (cached).
    """
    if not (math.isfinite(scale) and scale >= 0.0):
        raise InputError(f"scale must be a finite number of pixels >= 0, got {scale!r}")
    return _kernel(float(scale))


def add_stamps(image: np.ndarray, ys: np.ndarray, xs: np.ndarray, amps: np.ndarray,
               kernel: np.ndarray) -> None:
    """Add ``amps[i] * kernel`` centred on ``image[ys[i], xs[i]]``, clipped at the edges, in place.

    ``kernel`` has odd sides; its centre is ``(ky // 2, kx // 2)``.
    """
    ny, nx = image.shape
    ky, kx = kernel.shape
    if ky == 1 and kx == 1:
        np.add.at(image, (ys, xs), amps * kernel[0, 0])
        return
    cy, cx = ky // 2, kx // 2
    for y, x, a in zip(ys.tolist(), xs.tolist(), amps.tolist(), strict=True):
        y0, y1 = max(0, y - cy), min(ny, y - cy + ky)
        x0, x1 = max(0, x - cx), min(nx, x - cx + kx)
        image[y0:y1, x0:x1] += a * kernel[y0 - y + cy:y1 - y + cy, x0 - x + cx:x1 - x + cx]


@dataclass(frozen=True, eq=False)
class ComponentList:
    """CLEAN components: ``x, y`` int64 pixels, ``flux`` float64 Jy, ``scale`` float64 pixels.

    Always canonical: one entry per distinct ``(x, y, scale)`` (fluxes summed, exact zeros
    dropped), sorted by scale, then y, then x. Build it with ``from_arrays`` or ``empty``.
    """

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    scale: np.ndarray
    nx: int
    ny: int

    @classmethod
    def empty(cls, nx: int, ny: int) -> ComponentList:
        """A list with no components for an ``nx`` x ``ny`` image."""
        return cls.from_arrays([], [], [], [], nx, ny)

    @classmethod
    def from_arrays(cls, x: Any, y: Any, flux: Any, scale: Any, nx: int, ny: int) -> ComponentList:
        """Validate, merge equal ``(x, y, scale)`` and sort; any array-likes of one length."""
        if isinstance(nx, bool) or isinstance(ny, bool) or not (
                isinstance(nx, (int, np.integer)) and isinstance(ny, (int, np.integer))
                and nx > 0 and ny > 0):
            raise InputError(f"image size must be two positive integers, got nx={nx!r}, "
                             f"ny={ny!r}")
        cols = {}
        for name, value, kind in (("x", x, "i"), ("y", y, "i"), ("flux", flux, "f"),
                                  ("scale", scale, "f")):
            a = np.asarray(value)
            if a.ndim != 1:
                raise InputError(f"component {name} must be a 1-D array, got shape {a.shape}")
            if a.size and kind == "i" and a.dtype.kind not in "iu":
                raise InputError(f"component {name} must be integers, got {a.dtype}")
            if a.size and kind == "f" and a.dtype.kind not in "iuf":
                raise InputError(f"component {name} must be numbers, got {a.dtype}")
            cols[name] = a.astype(np.int64 if kind == "i" else np.float64)
        n = {a.size for a in cols.values()}
        if len(n) != 1:
            raise InputError("component arrays x, y, flux, scale differ in length: "
                             + ", ".join(f"{k}={a.size}" for k, a in cols.items()))
        xs, ys, fl, sc = cols["x"], cols["y"], cols["flux"], cols["scale"]
        if xs.size:
            if xs.min() < 0 or xs.max() >= nx:
                raise InputError(f"component x outside 0..{nx - 1}: {xs.min()}..{xs.max()}")
            if ys.min() < 0 or ys.max() >= ny:
                raise InputError(f"component y outside 0..{ny - 1}: {ys.min()}..{ys.max()}")
            if not np.isfinite(fl).all():
                raise InputError("component flux has NaN or infinite values")
            if not np.isfinite(sc).all() or sc.min() < 0:
                raise InputError("component scale must be finite and >= 0")
        order = np.lexsort((xs, ys, sc))
        xs, ys, fl, sc = xs[order], ys[order], fl[order], sc[order]
        if xs.size:
            new = np.ones(xs.size, dtype=bool)
            new[1:] = (xs[1:] != xs[:-1]) | (ys[1:] != ys[:-1]) | (sc[1:] != sc[:-1])
            starts = np.flatnonzero(new)
            xs, ys, sc = xs[starts], ys[starts], sc[starts]
            fl = np.add.reduceat(fl, starts)
            keep = fl != 0.0
            xs, ys, fl, sc = xs[keep], ys[keep], fl[keep], sc[keep]
        for a in (xs, ys, fl, sc):
            a.setflags(write=False)
        return cls(xs, ys, fl, sc, int(nx), int(ny))

    def __len__(self) -> int:
        return int(self.x.size)

    @property
    def total_flux(self) -> float:
        """Sum of the component fluxes in Jy."""
        return float(self.flux.sum())

    def merge(self, other: ComponentList) -> ComponentList:
        """Both lists in one: fluxes added at equal ``(x, y, scale)``."""
        if (self.nx, self.ny) != (other.nx, other.ny):
            raise InputError(f"cannot merge component lists of images {self.nx}x{self.ny} and "
                             f"{other.nx}x{other.ny}")
        return ComponentList.from_arrays(
            np.concatenate([self.x, other.x]), np.concatenate([self.y, other.y]),
            np.concatenate([self.flux, other.flux]), np.concatenate([self.scale, other.scale]),
            self.nx, self.ny)

    def to_image(self, dtype: Any = np.float64) -> np.ndarray:
        """The model image ``(ny, nx)`` in Jy/pixel (scale kernels clipped at the edges)."""
        image = np.zeros((self.ny, self.nx), dtype=np.float64)
        for s in np.unique(self.scale).tolist():
            sel = self.scale == s
            add_stamps(image, self.y[sel], self.x[sel], self.flux[sel], scale_kernel(s))
        return image.astype(dtype, copy=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ComponentList):
            return NotImplemented
        return ((self.nx, self.ny) == (other.nx, other.ny)
                and all(np.array_equal(getattr(self, k), getattr(other, k))
                        for k in ("x", "y", "flux", "scale")))

    def to_dict(self) -> dict:
        """Plain JSON-ready form (floats as Python floats, which round-trip exactly)."""
        return {"format": FORMAT, "version": VERSION, "nx": self.nx, "ny": self.ny,
                "count": len(self), "total_flux": self.total_flux,
                "x": self.x.tolist(), "y": self.y.tolist(), "flux": self.flux.tolist(),
                "scale": self.scale.tolist()}

    def to_json(self) -> str:
        """The list as JSON text."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any, source: str = "component list") -> ComponentList:
        """Validate a parsed JSON document; InputError naming ``source`` when it is wrong."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError(f"{source}: not an htclean component list (format {FORMAT!r})")
        if data.get("version") != VERSION:
            raise InputError(f"{source}: unsupported component list version "
                             f"{data.get('version')!r} (expected {VERSION})")
        missing = [k for k in ("nx", "ny", "x", "y", "flux", "scale") if k not in data]
        if missing:
            raise InputError(f"{source}: missing {', '.join(missing)}")
        for k in ("x", "y", "flux", "scale"):
            v = data[k]
            if not isinstance(v, list) or any(
                    isinstance(e, bool) or not isinstance(e, (int, float)) for e in v):
                raise InputError(f"{source}: {k} must be a list of numbers")
            if k in ("x", "y") and any(not isinstance(e, int) for e in v):
                raise InputError(f"{source}: {k} must be a list of integer pixels")
        try:
            out = cls.from_arrays(np.array(data["x"], dtype=np.int64),
                                  np.array(data["y"], dtype=np.int64),
                                  np.array(data["flux"], dtype=np.float64),
                                  np.array(data["scale"], dtype=np.float64),
                                  data["nx"], data["ny"])
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from None
        except OverflowError:
            raise InputError(f"{source}: pixel position out of range") from None
        if "count" in data and data["count"] != len(out):
            raise InputError(f"{source}: count {data['count']!r} does not match the "
                             f"{len(out)} components (truncated or edited file?)")
        return out

    @classmethod
    def from_json(cls, text: str, source: str = "component list") -> ComponentList:
        """Parse ``to_json`` output; InputError naming ``source`` when it is not valid."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") \
                from None
        return cls.from_dict(data, source)

    def write(self, path: str | os.PathLike) -> None:
        """Write the JSON file atomically (temporary name, then rename)."""
        p = Path(path)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(self.to_json() + "\n")
        os.replace(tmp, p)

    @classmethod
    def read(cls, path: str | os.PathLike) -> ComponentList:
        """Read a file written by ``write``; InputError naming the file when it is bad."""
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise InputError(f"{path}: cannot read component list: {reason}") from None
        return cls.from_json(text, str(path))

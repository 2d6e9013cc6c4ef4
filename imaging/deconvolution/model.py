"""The model a run carries between cycles: a component list of nterms Taylor coefficients.

One term is a ``components.ComponentList`` (its file: ``htclean-component-list``, Jy); more
are ``TaylorComponents`` (``htclean-taylor-components``: per (x, y, scale) the tt0, tt1 ...
coefficients and the Taylor reference frequency). ``empty``, ``read_model`` and ``to_json``
give the right one for ``nterms``, so the jobs need no case of their own.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from htclean.imaging.deconvolution.components import ComponentList
from htclean.imaging.errors import InputError

TAYLOR_FORMAT = "htclean-taylor-components"


@dataclass(frozen=True, eq=False)
class TaylorComponents:
    """Components with Taylor coefficients: ``x``, ``y`` (int64 pixels), ``scale`` (float64
    pixels, 0 = point, components.scale_kernel otherwise) and ``flux`` (ncomp, nterms) float64
    (Jy at the reference frequency, then the tt1, tt2 ... coefficients), on an ``(ny, nx)``
    image; one entry per (x, y, scale), sorted by (scale, y, x)."""

    x: np.ndarray
    y: np.ndarray
    scale: np.ndarray
    flux: np.ndarray
    nx: int
    ny: int

    @classmethod
    def from_arrays(cls, x: Any, y: Any, flux: Any, nx: int, ny: int,
                    scale: Any = None) -> TaylorComponents:
        """Merge components per (x, y, scale) (coefficients summed); scale None: points."""
        x, y = np.asarray(x, np.int64).reshape(-1), np.asarray(y, np.int64).reshape(-1)
        f = np.asarray(flux, np.float64)
        f = f.reshape(len(x), -1) if f.size else f.reshape(0, f.shape[-1] if f.ndim > 1 else 1)
        sc = np.zeros(len(x)) if scale is None else np.asarray(scale, np.float64).reshape(-1)
        if ((x < 0) | (x >= nx) | (y < 0) | (y >= ny)).any() or sc.shape != x.shape:
            raise InputError(f"Taylor components must lie inside the {nx}x{ny} image, one "
                             "scale each")
        scales, sidx = np.unique(sc, return_inverse=True)
        key = (sidx.ravel() * ny + y) * nx + x
        flat, where = np.unique(key, return_inverse=True)
        total = np.zeros((flat.size, f.shape[1]))
        np.add.at(total, where.ravel(), f)
        return cls(flat % nx, (flat // nx) % ny, scales[flat // (nx * ny)], total, int(nx),
                   int(ny))

    @property
    def nterms(self) -> int:
        return self.flux.shape[1]

    @property
    def total_flux(self) -> float:
        """Sum of the tt0 coefficients in Jy (ComponentList's total_flux for term 0)."""
        return float(self.flux[:, 0].sum())

    def __len__(self) -> int:
        return len(self.x)

    def merge(self, other: TaylorComponents) -> TaylorComponents:
        """Both lists as one (coefficients of a shared (x, y, scale) summed)."""
        return TaylorComponents.from_arrays(
            np.concatenate([self.x, other.x]), np.concatenate([self.y, other.y]),
            np.concatenate([self.flux, other.flux]), self.nx, self.ny,
            np.concatenate([self.scale, other.scale]))

    def term(self, t: int) -> ComponentList:
        """The components of Taylor term ``t`` as a ComponentList (for restore, FITS)."""
        return ComponentList.from_arrays(self.x, self.y, self.flux[:, t], self.scale, self.nx,
                                         self.ny)

    def images(self) -> np.ndarray:
        """(nterms, ny, nx) float64 model images in Jy/pixel."""
        return np.stack([self.term(t).to_image() for t in range(self.nterms)])

    def to_dict(self, ref_freq: float) -> dict:
        """JSON-ready form; ``terms[t]`` lists the tt``t`` coefficients, about ``ref_freq`` Hz."""
        return {"format": TAYLOR_FORMAT, "version": 1, "nx": self.nx, "ny": self.ny,
                "nterms": self.nterms, "ref_freq": float(ref_freq), "count": len(self),
                "x": self.x.tolist(), "y": self.y.tolist(), "scale": self.scale.tolist(),
                "terms": self.flux.T.tolist()}

    @classmethod
    def from_dict(cls, data: Any, source: str = "Taylor components"
                  ) -> tuple[TaylorComponents, float]:
        """(components, ref_freq) of a ``to_dict`` document; InputError naming ``source``."""
        if not isinstance(data, dict) or data.get("format") != TAYLOR_FORMAT \
                or data.get("version") != 1:
            raise InputError(f"{source}: not an htclean Taylor component list "
                             f"({TAYLOR_FORMAT!r} version 1)")
        try:
            terms = np.array(data["terms"], dtype=np.float64).reshape(int(data["nterms"]), -1)
            comps = cls.from_arrays(np.array(data["x"], dtype=np.int64),
                                    np.array(data["y"], dtype=np.int64), terms.T,
                                    int(data["nx"]), int(data["ny"]),
                                    np.array(data["scale"], dtype=np.float64))
            ref = float(data["ref_freq"])
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise InputError(f"{source}: malformed Taylor component list ({exc})") from None
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from None
        if data.get("count") != len(comps) or not (math.isfinite(ref) and ref > 0) \
                or not np.isfinite(comps.flux).all():
            raise InputError(f"{source}: count, ref_freq or coefficients are wrong "
                             "(truncated or edited file?)")
        return comps, ref

    def write(self, path: str | os.PathLike, ref_freq: float) -> None:
        """Write the JSON file atomically (temporary name, then rename)."""
        p = Path(path)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(ref_freq), separators=(",", ":")) + "\n")
        os.replace(tmp, p)

    @classmethod
    def read(cls, path: str | os.PathLike) -> tuple[TaylorComponents, float]:
        """(components, ref_freq) of a file written by ``write``; InputError naming it."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: cannot read Taylor components: {exc}") from None
        return cls.from_dict(data, str(path))


Model = ComponentList | TaylorComponents


def empty(nx: int, ny: int, nterms: int) -> Model:
    """A model with no components for an ``nx`` x ``ny`` image of ``nterms`` terms."""
    if nterms == 1:
        return ComponentList.empty(nx, ny)
    return TaylorComponents.from_arrays([], [], np.zeros((0, nterms)), nx, ny)


def term(model: Model, t: int) -> ComponentList:
    """Taylor term ``t`` of a model as a ComponentList (one term: the model itself)."""
    return model if isinstance(model, ComponentList) else model.term(t)


def read_model(path: str | os.PathLike, what: str, nx: int, ny: int, nterms: int,
               ref_freq: float | None = None) -> Model:
    """The model file ``path`` (argument ``what``), checked against the image (``nx`` x
    ``ny``), ``nterms`` and, where nterms > 1, the reference frequency ``ref_freq`` (Hz;
    None: not checked); InputError naming the file otherwise."""
    if nterms == 1:
        model: Model = ComponentList.read(path)
        ref = None
    else:
        model, ref = TaylorComponents.read(path)
    terms = getattr(model, "nterms", 1)
    if (model.nx, model.ny, terms) != (nx, ny, nterms):
        raise InputError(f"{what}: {path} is for a {model.nx}x{model.ny} image of {terms} "
                         f"Taylor terms, the image is {nx}x{ny}, {nterms} terms")
    if ref is not None and ref_freq is not None and not math.isclose(ref, ref_freq,
                                                                     rel_tol=1e-12):
        raise InputError(f"{what}: reference frequency {ref} Hz, the residual's is "
                         f"{ref_freq} Hz")
    return model


def to_json(model: Model, ref_freq: float | None) -> str:
    """The model file's text (one line and a newline); ``ref_freq`` where nterms > 1."""
    if isinstance(model, ComponentList):
        return model.to_json() + "\n"
    return json.dumps(model.to_dict(float(ref_freq or 0.0)), separators=(",", ":")) + "\n"

"""Per-part Taylor-term products of multi-term MFS (deconvolution.nterms > 1), one read each.

What the grid jobs call where nterms > 1, as ``parts.part_psf_dirty`` and
``parts.part_residual`` are for nterms 1 (imaging/taylor.py for the terms): the image job
makes the ``nterms`` Taylor-weighted dirty images ``dirty-tt0 ..`` and the ``2 nterms - 1``
Taylor-weighted PSFs ``psf-tt0 ..`` from one read of the part; the residual job predicts the
Taylor component list and grids the ``nterms`` residual images ``residual-tt0 ..``. They are
unnormalised ``parts.Partial`` images, so the gather adds them as it adds any partial, and one
weight sum normalises every term.

Each partial also carries the sum of the imaging weights per channel frequency
(``meta["channel_weights"]``, [[Hz, sum], ...]; parts.Partial adds them up): the band
average of the primary beam and the reference frequency weight channels as the data are.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from htclean.imaging import gridding, taylor
from htclean.imaging.errors import InputError
from htclean.imaging.geometry import psf_geometry
from htclean.imaging.parts import (
    Partial,
    _density_of,
    _imaging_weights,
    _source,
    _weights,
    add_channel_weights,
)


def term_names(kind: str, n: int) -> list[str]:
    """``kind-tt0`` .. ``kind-tt(n-1)``: the Partial image names of stacked terms."""
    return [f"{kind}-tt{t}" for t in range(n)]


def stacked(partial: Partial, kind: str) -> np.ndarray:
    """The terms ``kind-tt0, kind-tt1, ..`` of a partial as one (n, ny, nx) array."""
    names = sorted((k for k in partial.images if k.startswith(f"{kind}-tt")),
                   key=lambda k: int(k.rsplit("tt", 1)[1]))
    if not names:
        raise InputError(f"the partial holds {sorted(partial.images)}, no {kind} terms")
    return np.stack([partial.images[k] for k in names])


def _channel_sums(freq: np.ndarray, w: np.ndarray) -> list[list[float]]:
    sums = np.asarray(w, np.float64).sum(axis=0)
    return [[float(f), float(s)] for f, s in zip(freq, sums, strict=True)]


def part_taylor(ms: str | os.PathLike, settings: dict[str, Any],
                density: Partial | np.ndarray | None = None, *, ref_freq: float,
                model: Any = None, rows: Sequence[int] | np.ndarray | None = None,
                channels: tuple[int, int] | None = None) -> Partial:
    """The part's Taylor images from one read: with ``model`` None the image job's
    ``dirty-ttN`` and ``psf-ttN``; with ``model`` (Taylor model images (nterms, ny, nx) in
    Jy/pixel, or a TaylorComponents) the residual job's ``residual-ttN`` of ``V - predict``.
    nterms is ``deconvolution.nterms``; ref_freq the Taylor reference frequency (Hz)."""
    nterms = taylor.check_nterms(settings["deconvolution"]["nterms"])
    geom, chunks = _source(ms, settings, rows, channels)
    pgeom = psf_geometry(geom, settings["image"]["psf_oversize"])
    params = gridding.GridParams.from_settings(settings)
    kind, robust = _weights(settings)
    grid = _density_of(density)
    models = None
    if model is not None:
        models = np.asarray(model.images() if hasattr(model, "images") else model, np.float64)
        if models.shape != (nterms, *geom.shape):
            raise InputError(f"the Taylor model is {models.shape}, the image needs "
                             f"{(nterms, *geom.shape)}")
    dirty = np.zeros((nterms, *geom.shape), np.float64)
    wsum, nvis, nbad, chan = 0.0, 0, 0, []
    bands: dict[bytes, tuple[np.ndarray, list, list]] = {}
    for chunk in chunks:
        w = _imaging_weights(chunk, kind, robust, grid, geom, params)
        vis = chunk.vis.astype(params.complex, copy=False)
        if models is not None and np.any(models):
            vis = vis - taylor.predict_terms(models, chunk.uvw, chunk.freq, geom, params,
                                             ref_freq=ref_freq)
        wt = taylor.taylor_weights(chunk.freq, ref_freq, nterms)
        for t in range(nterms):
            dirty[t] += gridding.dirty(chunk.uvw, chunk.freq, vis * wt[t][None, :], w, geom,
                                       params)
        if models is None:
            band = bands.setdefault(chunk.freq.tobytes(), (chunk.freq, [], []))
            band[1].append(chunk.uvw)
            band[2].append(w)
        chan = add_channel_weights(chan, _channel_sums(chunk.freq, w))
        wsum += float(w.sum(dtype=np.float64))
        nvis += int(np.count_nonzero(w))
        nbad += chunk.nbad
        del chunk, w, vis
    label = "dirty" if models is None else "residual"
    images = dict(zip(term_names(label, nterms), dirty.astype(params.real), strict=True))
    if models is None:  # the PSFs need no visibilities: all rows of a band in one call per term
        psfs = np.zeros((2 * nterms - 1, *pgeom.shape), params.real)
        for freq, uvws, weights in bands.values():
            uvw, w = np.concatenate(uvws), np.concatenate(weights)
            wt = taylor.taylor_weights(freq, ref_freq, 2 * nterms - 1)
            for t in range(2 * nterms - 1):
                ones = np.broadcast_to(wt[t][None, :].astype(params.complex), w.shape)
                psfs[t] += gridding.dirty(uvw, freq, np.ascontiguousarray(ones), w, pgeom,
                                          params, tile=geom.shape)
        images.update(zip(term_names("psf", 2 * nterms - 1), psfs, strict=True))
    return Partial(images, wsum, nvis, nbad, geom,
                   {"channel_weights": chan, "nterms": nterms, "ref_freq": float(ref_freq)})

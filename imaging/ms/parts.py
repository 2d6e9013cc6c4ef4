"""Per-part products: weight density, PSF + dirty, residual — each from ONE read of the part.

What the grid jobs call. A part is an MS (optionally restricted to rows / a channel range);
its products are unnormalised sums (partials.Partial) that add up over parts exactly as the
one-process image would; ``partials.normalise`` divides by the global weight sum at the end.
Memory is bounded by ``gridder.chunk_rows``: chunks are read, weighted and gridded one at a
time (each loop drops its chunk before the next is read, so only one is held).

Every product is made for ``deconvolution.nterms`` Taylor terms (taylor.py; nterms 1 is the
one term of weight 1): the ``nterms`` Taylor-weighted dirty or residual images and the
``2 nterms - 1`` Taylor-weighted PSFs (``partials.term_names``: ``dirty``, ``psf``,
``residual`` for one term, ``dirty-tt0`` .. otherwise). One term sums in the gridder's float
type (the image's memory), several in float64. Where nterms > 1 or ``image.primary_beam`` is
on, the PSF/dirty partial also carries the imaging weights summed per channel
(``meta["channel_weights"]``, [[Hz, sum], ...]): the band average of the primary beam and the
reference frequency weight channels as the data are.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from htclean.imaging.errors import InputError
from htclean.imaging.geometry import ImageGeometry, psf_geometry, psf_tile
from htclean.imaging.gridding import gridding, taylor, weighting
from htclean.imaging.ms import msread, partfile
from htclean.imaging.ms.partials import Partial, add_channel_weights, term_names


def _geometry(settings: dict[str, Any], info: msread.MsInfo) -> ImageGeometry:
    """ImageGeometry.from_settings, from a part file's stored MsInfo."""
    image = settings["image"]
    centre = image.get("phase_centre")
    ra, dec = centre if centre is not None else info.phase_centre
    return ImageGeometry(nx=int(image["nx"]), ny=int(image["ny"]), cell=float(image["cell"]),
                         ra=float(ra), dec=float(dec), freq=(info.freq_min + info.freq_max) / 2,
                         bandwidth=info.freq_max - info.freq_min, date_obs=info.date_obs,
                         telescope=info.telescope, frame=info.frame)


def _source(ms: str | os.PathLike, settings: dict[str, Any],
            rows: Sequence[int] | np.ndarray | None, channels: tuple[int, int] | None,
            vis: bool = True) -> tuple[ImageGeometry, Iterator[msread.VisChunk]]:
    """The image geometry and the Stokes I chunks of ``ms``: a part file (partfile.py, read
    as written; vis False: without its visibilities) or a Measurement Set (read
    ``gridder.chunk_rows`` rows at a time)."""
    data = settings["data"]
    if partfile.is_part_file(ms):
        if rows is not None or channels is not None:
            raise InputError(f"{ms}: a part file is read whole (no rows or channels selection)")
        header = partfile.read_header(ms)
        geom = _geometry(settings, partfile.info(header))
        partfile.check(header, data, (geom.ra, geom.dec), ms)
        return geom, partfile.read_chunks(ms, header, vis, GROUP_VIS)
    geom = ImageGeometry.from_settings(settings, ms)
    return geom, msread.read_chunks(ms, column=data["column"], field=data["field"],
                                    spw=data["spw"], polarization_rule=data["polarization_rule"],
                                    chunk_rows=settings["gridder"]["chunk_rows"],
                                    phase_centre=(geom.ra, geom.dec), rows=rows,
                                    channels=channels)


def write_part(ms: str | os.PathLike, settings: dict[str, Any], out: str | os.PathLike, *,
               rows: Sequence[int] | np.ndarray | None = None,
               channels: tuple[int, int] | None = None,
               centre: tuple[float, float] | None = None) -> dict[str, Any]:
    """Write the rows ``rows`` (None = all) and channels ``channels`` of ``ms`` as a part
    file (partfile.py) at ``out``: Stokes I by ``data.polarization_rule``, phased to the
    image centre, ``gridder.chunk_rows`` rows at a time, less the continuum where
    ``data.continuum`` says (spectral/uvcontsub.py). Returns the part's header.

    centre: the run's phase centre (ra, dec) when it is not this MS's own (one of several
    MSs, no ``image.phase_centre``): the part is phased to it and records it as its MS's
    phase centre, so every part of the run has one image centre."""
    return write_parts(ms, settings, [out], rows=rows, ranges=None if channels is None else
                       [channels], centre=centre, whole=False)[0]


def write_parts(ms: str | os.PathLike, settings: dict[str, Any], outs: Sequence[str | os.PathLike],
                *, rows: Sequence[int] | np.ndarray | None = None,
                ranges: Sequence[tuple[int, int]] | None = None,
                centre: tuple[float, float] | None = None,
                whole: bool = True) -> list[dict[str, Any]]:
    """``write_part`` of the rows ``rows`` for each channel range of ``ranges`` (the window's
    channels ``[c0, c1)``, stored order; None: all channels, one output) into ``outs``, from
    ONE read of the MS: every chunk is read with all its window's channels (``whole``;
    else only the one range's), the continuum subtracted where ``data.continuum`` says
    (spectral/uvcontsub.py), and each range cut from it. A range's part is the same
    whether it is written alone or with others (the same read, the same arithmetic)."""
    from htclean.imaging.spectral import uvcontsub

    data = settings["data"]
    if centre is not None and settings["image"].get("phase_centre") is None:
        settings = {**settings, "image": {**settings["image"], "phase_centre": list(centre)}}
    continuum = data.get("continuum") or {}
    cuts = list(ranges) if ranges is not None else [None]
    if len(outs) != len(cuts):
        raise InputError(f"{len(outs)} part files for {len(cuts)} channel ranges")
    linefree = continuum.get("linefree")
    read = None if (whole or linefree is not None) else cuts[0]
    geom, chunks = _source(ms, settings, rows, read)
    if linefree is not None:
        chunks = uvcontsub.subtracted(chunks, uvcontsub.window_frequencies(ms), linefree,
                                      int(continuum["fitorder"]), None, data["spw"])
    windows = uvcontsub.window_frequencies(ms) if read is None and ranges is not None else {}
    infos = [msread.describe(ms, field=data["field"], spw=data["spw"], channels=c)
             for c in cuts]
    if centre is not None:
        infos = [replace(i, phase_centre=(float(geom.ra), float(geom.dec))) for i in infos]
    groups = ([uvcontsub.cut(chunk, windows, c) if read is None else chunk for c in cuts]
              for chunk in chunks)
    return partfile.write_many(outs, groups, infos, data, (geom.ra, geom.dec))


def _weights(settings: dict[str, Any]) -> tuple[str, float | None]:
    w = settings["weighting"]
    kind, robust = w["type"], w.get("robust")
    if kind == "briggs" and robust is None:
        robust = 0.0
    weighting.check(kind, robust)
    return kind, robust


def part_density(ms: str | os.PathLike, settings: dict[str, Any], *,
                 rows: Sequence[int] | np.ndarray | None = None,
                 channels: tuple[int, int] | None = None) -> Partial:
    """The part's weight density: a Partial with image ``density`` (ny, nx) float64, the sum
    of the data weights gridded and the count of samples (see weighting.py)."""
    geom, chunks = _source(ms, settings, rows, channels, vis=False)
    grid = np.zeros(geom.shape, np.float64)
    wsum, nvis, nbad = 0.0, 0, 0
    for chunk in chunks:
        for piece in _slices(chunk):
            weighting.add_density(grid, piece, geom)
        wsum += float(chunk.weight.sum(dtype=np.float64))
        nvis += int(np.count_nonzero(chunk.weight))
        nbad += chunk.nbad
        del chunk
    return Partial({"density": grid}, wsum, nvis, nbad, geom)


# Stokes I samples per gridder call from a part file: each call pays the FFTs of every w-plane,
# so fewer calls are faster (50M samples at 4096^2: one call 15 CPU s, four 23); a residual job
# holds about 20 bytes a sample (data, model, weight), so this bounds it to ~0.7 GB + the grid
GROUP_VIS = 1 << 25
SLICE_ROWS = 32768  # rows weighted at a time: bounds the weighting's int64/float64 temporaries


def _slices(chunk: msread.VisChunk, rows: int = SLICE_ROWS) -> Iterator[msread.VisChunk]:
    """Row slices of a chunk (views)."""
    for r in range(0, max(len(chunk.uvw), 1), rows):
        yield msread.VisChunk(chunk.uvw[r:r + rows], chunk.freq, chunk.vis[r:r + rows],
                              chunk.weight[r:r + rows], 0, chunk.ddid)


def _imaging_weights(chunk: msread.VisChunk, kind: str, robust: float | None,
                     density: np.ndarray | None, geom: ImageGeometry,
                     params: gridding.GridParams, *, in_place: bool = False) -> np.ndarray:
    """weighting.apply of a chunk in the gridder's float type, computed SLICE_ROWS rows at a
    time (the same values; a fraction of the temporaries). in_place: written over the
    chunk's data weights where they are of that type and writable (the caller no longer
    needs them: a residual job then holds one weight array, not two)."""
    if kind == "natural":
        return chunk.weight.astype(params.real, copy=False)
    weight = chunk.weight
    out = weight if in_place and weight.dtype == params.real and weight.flags.writeable \
        and weight.flags.c_contiguous else np.empty(weight.shape, params.real)
    # Briggs f2 once per call, not per slice (apply names a missing density)
    f2 = weighting.briggs_f2(density, float(robust)) \
        if kind == "briggs" and density is not None and robust is not None else None
    for r, piece in zip(range(0, len(out), SLICE_ROWS), _slices(chunk), strict=False):
        out[r:r + SLICE_ROWS] = weighting.apply(piece, kind, robust, density, geom, f2=f2)
    return out


def _density_of(density: Partial | np.ndarray | None) -> np.ndarray | None:
    return density.images["density"] if isinstance(density, Partial) else density


def _terms(settings: dict[str, Any], ref_freq: float | None) -> tuple[int, float]:
    """(nterms, Taylor reference frequency): ``ref_freq`` is needed where nterms > 1 (one
    term has weight 1 at any reference frequency)."""
    nterms = taylor.check_nterms(settings["deconvolution"]["nterms"])
    if nterms > 1 and not ref_freq:
        raise InputError(f"deconvolution.nterms {nterms} needs the Taylor reference frequency "
                         "(image.reference_frequency)")
    return nterms, float(ref_freq or 1.0)


def _channel_sums(freq: np.ndarray, w: np.ndarray) -> list[list[float]]:
    sums = np.asarray(w, np.float64).sum(axis=0)
    return [[float(f), float(s)] for f, s in zip(freq, sums, strict=True)]


def part_psf_dirty(ms: str | os.PathLike, settings: dict[str, Any],
                   density: Partial | np.ndarray | None = None, *,
                   ref_freq: float | None = None, channel_weights: bool | None = None,
                   rows: Sequence[int] | np.ndarray | None = None,
                   channels: tuple[int, int] | None = None) -> Partial:
    """PSFs and dirty images of a part from one read, unnormalised (module docstring): the
    ``nterms`` dirty terms (ny, nx) and the ``2 nterms - 1`` PSF terms (pny, pnx) =
    ``image.psf_oversize`` x the image (``geometry.psf_geometry``: same cell and centre, the
    phase centre at pixel (pny // 2, pnx // 2)). The Partial's geom is the image's.
    density: the global weight density (uniform/Briggs only); ref_freq: the Taylor reference
    frequency (Hz; nterms > 1); channel_weights: carry the per-channel weight sums (default:
    where nterms > 1 or ``image.primary_beam``)."""
    nterms, ref = _terms(settings, ref_freq)
    if channel_weights is None:
        channel_weights = nterms > 1 or bool(settings["image"].get("primary_beam"))
    geom, chunks = _source(ms, settings, rows, channels)
    pgeom = psf_geometry(geom, settings["image"]["psf_oversize"])
    params = gridding.GridParams.from_settings(settings)
    kind, robust = _weights(settings)
    grid = _density_of(density)
    dirty = np.zeros((nterms, *geom.shape), params.real if nterms == 1 else np.float64)
    wsum, nvis, nbad, chan = 0.0, 0, 0, []
    bands: dict[bytes, tuple[np.ndarray, list, list]] = {}  # freq -> (freq, uvws, weights)
    for chunk in chunks:
        w = _imaging_weights(chunk, kind, robust, grid, geom, params, in_place=True)
        wt = taylor.taylor_weights(chunk.freq, ref, nterms)
        for t in range(nterms):
            vis = chunk.vis if t == 0 else chunk.vis * wt[t][None, :]
            dirty[t] += gridding.dirty(chunk.uvw, chunk.freq, vis, w, geom, params)
        band = bands.setdefault(chunk.freq.tobytes(), (chunk.freq, [], []))
        band[1].append(chunk.uvw)
        band[2].append(w)
        if channel_weights:
            chan = add_channel_weights(chan, _channel_sums(chunk.freq, w))
        wsum += float(w.sum(dtype=np.float64))
        nvis += int(np.count_nonzero(w))
        nbad += chunk.nbad
        del chunk, w
    # the PSFs need no visibilities: all rows of a band in one gridder call per term (one set
    # of FFTs for the part, not one per chunk), whole or in tiles of the image's size
    # (geometry.psf_tile)
    psfs = np.zeros((2 * nterms - 1, *pgeom.shape), params.real)
    tile = psf_tile(geom.shape, pgeom.shape)
    for freq, uvws, weights in bands.values():
        uvw, w = np.concatenate(uvws), np.concatenate(weights)
        uvws.clear()
        weights.clear()
        wt = taylor.taylor_weights(freq, ref, 2 * nterms - 1)
        for t in range(2 * nterms - 1):  # term 0: unit visibilities (None)
            vis = None if t == 0 else \
                np.broadcast_to(wt[t][None, :].astype(params.complex), w.shape)
            gridding.dirty(uvw, freq, vis, w, pgeom, params, tile=tile, add_to=psfs[t])
        del uvw, w
    images = dict(zip(term_names("psf", 2 * nterms - 1), psfs, strict=True))
    images.update(zip(term_names("dirty", nterms), dirty.astype(params.real, copy=False),
                      strict=True))
    meta: dict[str, Any] = {"nterms": nterms, "ref_freq": ref} if nterms > 1 else {}
    if channel_weights:
        meta["channel_weights"] = chan
    return Partial(images, wsum, nvis, nbad, geom, meta)


def model_images(model: Any, geom: ImageGeometry, nterms: int) -> np.ndarray:
    """A model as ``nterms`` images (nterms, ny, nx) in Jy/pixel: Taylor components
    (``images()``), a ComponentList (``to_image()``, one term) or an array ((ny, nx) for one
    term)."""
    if hasattr(model, "images"):
        image = model.images()
    elif hasattr(model, "to_image"):
        image = model.to_image()[None]
    else:
        image = np.asarray(model, np.float64)
        image = image[None] if image.ndim == 2 else image
    image = np.asarray(image, np.float64)
    if image.shape != (nterms, *geom.shape):
        raise InputError(f"the Taylor model is {image.shape}, the image needs "
                         f"{(nterms, *geom.shape)} ({nterms} Taylor terms)")
    return image


def _predictor(models: list[np.ndarray], geom: ImageGeometry, params: gridding.GridParams,
               ref: float) -> Callable[[msread.VisChunk], np.ndarray]:
    """The model visibilities of a chunk: one term's in the gridder's complex type, the Taylor
    sum of several in complex128 (taylor.predict_terms)."""
    if len(models) == 1:
        return lambda c: gridding.predict(models[0], c.uvw, c.freq, geom, params)
    return lambda c: taylor.predict_terms(models, c.uvw, c.freq, geom, params, ref_freq=ref)


def part_residual(ms: str | os.PathLike, settings: dict[str, Any], components: Any,
                  density: Partial | np.ndarray | None = None, *,
                  ref_freq: float | None = None,
                  rows: Sequence[int] | np.ndarray | None = None,
                  channels: tuple[int, int] | None = None) -> Partial:
    """Residual images of a part from one read: the ``nterms`` unnormalised Taylor-weighted
    ``dirty(V - predict(model))`` (module docstring). components: a ComponentList or Taylor
    components (or model images, Jy/pixel: ``model_images``); ref_freq as for
    ``part_psf_dirty``.

    From a part file in single precision, one term's visibilities are predicted first and the
    data subtracted in their array as it is read (partfile.read_residual_chunks): one
    visibility array per chunk, and the imaging weights in the data weights' own array."""
    nterms, ref = _terms(settings, ref_freq)
    geom, chunks = _source(ms, settings, rows, channels)
    params = gridding.GridParams.from_settings(settings)
    kind, robust = _weights(settings)
    grid = _density_of(density)
    # float32 in Fortran order: the gridder's transposed view of it is the array itself
    models = [np.asfortranarray(m, params.real)
              for m in model_images(components, geom, nterms)]
    empty = not any(np.any(m) for m in models)
    predict = _predictor(models, geom, params, ref)
    deferred = not empty and nterms == 1 and partfile.is_part_file(ms) and \
        np.dtype(params.complex) == np.complex64
    if deferred:
        chunks = partfile.read_residual_chunks(ms, partfile.read_header(ms), predict,
                                               GROUP_VIS)
    img = np.zeros((nterms, *geom.shape), params.real if nterms == 1 else np.float64)
    wsum, nvis, nbad = 0.0, 0, 0
    for chunk in chunks:
        w = _imaging_weights(chunk, kind, robust, grid, geom, params, in_place=True)
        vis = chunk.vis.astype(params.complex, copy=False)  # the chunk's own: changed in place
        if not empty and not deferred:
            model = predict(chunk)
            if model.dtype == vis.dtype:
                np.subtract(vis, model, out=vis)
            else:  # the Taylor sum (complex128)
                vis = vis - model
            del model
        wt = taylor.taylor_weights(chunk.freq, ref, nterms)
        for t in range(nterms):
            img[t] += gridding.dirty(chunk.uvw, chunk.freq, vis if t == 0 else
                                     vis * wt[t][None, :], w, geom, params)
        del vis
        wsum += float(w.sum(dtype=np.float64))
        nvis += int(np.count_nonzero(w))
        nbad += chunk.nbad
        del chunk, w
    images = dict(zip(term_names("residual", nterms), img.astype(params.real, copy=False),
                      strict=True))
    meta = {"nterms": nterms, "ref_freq": ref} if nterms > 1 else {}
    return Partial(images, wsum, nvis, nbad, geom, meta)

"""Per-part products: weight density, PSF + dirty, residual — each from ONE read of the part.

What the grid jobs call. A part is an MS (optionally restricted to rows / a channel range);
its products are unnormalised sums (``Partial``) that add up over parts exactly as the
one-process image would; ``normalise`` divides by the global weight sum at the end. Memory is
bounded by ``gridder.chunk_rows``: chunks are read, weighted and gridded one at a time (each
loop drops its chunk before the next is read, so only one is held).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from htclean.imaging import gridding, msread, partfile, weighting
from htclean.imaging.errors import InputError
from htclean.imaging.geometry import ImageGeometry, psf_geometry

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


def add_channel_weights(a: list, b: list) -> list[list[float]]:
    """Two lists of [frequency Hz, weight sum] added by frequency, ascending (multi-term MFS
    partials carry them: imaging/parts_taylor.py)."""
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
    image centre, ``gridder.chunk_rows`` rows at a time. Returns the part's header.

    centre: the run's phase centre (ra, dec) when it is not this MS's own (one of several
    MSs, no ``image.phase_centre``): the part is phased to it and records it as its MS's
    phase centre, so every part of the run has one image centre."""
    data = settings["data"]
    if centre is not None and settings["image"].get("phase_centre") is None:
        settings = {**settings, "image": {**settings["image"], "phase_centre": list(centre)}}
    geom, chunks = _source(ms, settings, rows, channels)
    info = msread.describe(ms, field=data["field"], spw=data["spw"], channels=channels)
    if centre is not None:
        info = replace(info, phase_centre=(float(geom.ra), float(geom.dec)))
    return partfile.write(out, chunks, info, data, (geom.ra, geom.dec))


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


def part_psf_dirty(ms: str | os.PathLike, settings: dict[str, Any],
                   density: Partial | np.ndarray | None = None, *,
                   rows: Sequence[int] | np.ndarray | None = None,
                   channels: tuple[int, int] | None = None) -> Partial:
    """PSF and dirty image of a part from one read, unnormalised: ``dirty`` (ny, nx) and
    ``psf`` (pny, pnx) = ``image.psf_oversize`` x the image (``geometry.psf_geometry``: same
    cell and centre, the phase centre at pixel (pny // 2, pnx // 2)). The Partial's geom is
    the image's. density: the global weight density (uniform/Briggs only)."""
    geom, chunks = _source(ms, settings, rows, channels)
    pgeom = psf_geometry(geom, settings["image"]["psf_oversize"])
    params = gridding.GridParams.from_settings(settings)
    kind, robust = _weights(settings)
    grid = _density_of(density)
    img = np.zeros(geom.shape, params.real)
    wsum, nvis, nbad = 0.0, 0, 0
    bands: dict[bytes, tuple[np.ndarray, list, list]] = {}  # freq -> (freq, uvws, weights)
    for chunk in chunks:
        w = _imaging_weights(chunk, kind, robust, grid, geom, params, in_place=True)
        img += gridding.dirty(chunk.uvw, chunk.freq, chunk.vis, w, geom, params)
        band = bands.setdefault(chunk.freq.tobytes(), (chunk.freq, [], []))
        band[1].append(chunk.uvw)
        band[2].append(w)
        wsum += float(w.sum(dtype=np.float64))
        nvis += int(np.count_nonzero(w))
        nbad += chunk.nbad
        del chunk, w
    # the PSF needs no visibilities: all rows of a band in one gridder call (one set of FFTs
    # for the part, not one per chunk), in tiles of the image's size (its memory)
    psf = np.zeros(pgeom.shape, params.real)
    for freq, uvws, weights in bands.values():
        uvw, w = np.concatenate(uvws), np.concatenate(weights)
        uvws.clear()
        weights.clear()
        gridding.dirty(uvw, freq, None, w, pgeom, params, tile=geom.shape, add_to=psf)
        del uvw, w
    return Partial({"psf": psf, "dirty": img}, wsum, nvis, nbad, geom)


def model_image(model: Any, geom: ImageGeometry) -> np.ndarray:
    """A model as an image (ny, nx) in Jy/pixel: a ComponentList (``to_image()``) or an array."""
    image = model.to_image() if hasattr(model, "to_image") else model
    image = np.asarray(image, np.float64)
    if image.shape != geom.shape:
        raise InputError(f"the model has shape {image.shape}, the image is {geom.shape}")
    return image


def part_residual(ms: str | os.PathLike, settings: dict[str, Any], components: Any,
                  density: Partial | np.ndarray | None = None, *,
                  rows: Sequence[int] | np.ndarray | None = None,
                  channels: tuple[int, int] | None = None) -> Partial:
    """Residual image of a part from one read: image ``residual`` (ny, nx), unnormalised
    ``dirty(V - predict(model))``. components: a ComponentList (or a model image, Jy/pixel).

    From a part file in single precision the model's visibilities are predicted first and the
    data subtracted in their array as it is read (partfile.read_residual_chunks): one
    visibility array per chunk, and the imaging weights in the data weights' own array."""
    geom, chunks = _source(ms, settings, rows, channels)
    params = gridding.GridParams.from_settings(settings)
    kind, robust = _weights(settings)
    grid = _density_of(density)
    # float32 in Fortran order: the gridder's transposed view of it is the array itself
    model = np.asfortranarray(model_image(components, geom), params.real)
    empty = not np.any(model)
    deferred = not empty and partfile.is_part_file(ms) and \
        np.dtype(params.complex) == np.complex64
    if deferred:
        chunks = partfile.read_residual_chunks(
            ms, partfile.read_header(ms),
            lambda c: gridding.predict(model, c.uvw, c.freq, geom, params), GROUP_VIS)
    img = np.zeros(geom.shape, params.real)
    wsum, nvis, nbad = 0.0, 0, 0
    for chunk in chunks:
        w = _imaging_weights(chunk, kind, robust, grid, geom, params, in_place=True)
        vis = chunk.vis.astype(params.complex, copy=False)  # the chunk's own: changed in place
        if not empty and not deferred:
            np.subtract(vis, gridding.predict(model, chunk.uvw, chunk.freq, geom, params),
                        out=vis)
        img += gridding.dirty(chunk.uvw, chunk.freq, vis, w, geom, params)
        del vis
        wsum += float(w.sum(dtype=np.float64))
        nvis += int(np.count_nonzero(w))
        nbad += chunk.nbad
        del chunk, w
    return Partial({"residual": img}, wsum, nvis, nbad, geom)


# --- the .npz files that carry partials between jobs ------------------------------------------


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

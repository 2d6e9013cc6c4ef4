"""The part file: a part's Stokes I visibilities, written once and read by every cycle.

A part is ONE file, ``R-part-NNN.vis.npz``: numpy's own ``.npz`` (a zip archive of ``.npy``
arrays, NEP 1), written uncompressed (ZIP_STORED, zip64). Why this format: it is numpy's,
so it needs no library beyond numpy, anyone can open it (``np.load``), each member is a plain
C-ordered array that ducc0 takes without a copy, members are read one at a time (a job holds
one chunk), the zip's CRC-32 checks every member as it is read (a truncated transfer is an
error, not a wrong image), and it is a file, as Pegasus and HTCondor want.

What it holds (what the imaging needs, nothing else): for each chunk ``cNNNNN`` of at most
``gridder.chunk_rows`` rows of one spectral window, ``cNNNNN-uvw`` (nrow, 3) float64 metres,
already rotated to the image's phase centre; ``cNNNNN-freq`` (nchan,) float64 Hz ascending;
``cNNNNN-vis`` (nrow, nchan) complex64 Stokes I; ``cNNNNN-weight`` (nrow, nchan) float32, the
data weight of that Stokes I with the flags folded in (0 = flagged), or, when every sample of
a row has the row's weight or 0 (an MS without WEIGHT_SPECTRUM), the same as
``cNNNNN-rowweight`` (nrow,) float32 and ``cNNNNN-flags`` (nrow, ceil(nchan / 8)) uint8, one
bit per sample (``np.packbits`` along the channels; 1 = weight 0). Stokes I and its weight
are formed once, by msread's ``polarization_rule``, when the part is written. ``header`` is a
JSON document (uint8): the format and version, the data settings it was made with
(``column``, ``field``, ``spw``, ``polarization_rule``, the phase centre), the band, date,
telescope and frame the image header needs, the chunk list and the count of non-finite samples.
A job given settings other than those the part was made with gets an InputError, never a
silently different image.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from htclean.imaging.errors import InputError
from htclean.imaging.ms.msread import MsInfo, VisChunk

FORMAT = "htclean-part"
VERSION = 1
SUFFIX = ".vis.npz"
DATA_KEYS = ("column", "field", "spw", "polarization_rule")


def is_part_file(path: str | os.PathLike) -> bool:
    """True when ``path`` is a regular file holding a zip archive (a part file or not)."""
    p = Path(path)
    return p.is_file() and zipfile.is_zipfile(p)


def _member(zf: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)


def write(path: str | os.PathLike, chunks: Iterable[VisChunk], info: MsInfo,
          data: dict[str, Any], centre: tuple[float, float]) -> dict[str, Any]:
    """Write ``chunks`` as a part file at ``path``, atomically; returns its header.

    info: the band, date, telescope and frame of the part (msread.describe); data: the
    ``data`` settings used to read it; centre: (ra, dec) radians the visibilities are phased to.
    """
    return write_many([path], ([c] for c in chunks), [info], data, centre)[0]


def write_many(paths: Sequence[str | os.PathLike], chunks: Iterable[Sequence[VisChunk]],
               infos: Sequence[MsInfo], data: dict[str, Any],
               centre: tuple[float, float]) -> list[dict[str, Any]]:
    """Write several part files from one stream: each item of ``chunks`` holds one chunk
    for each of ``paths`` (e.g. the channel ranges of one read), in order; ``infos`` their
    bands. Atomic per file; returns their headers."""
    headers = [_header(info, data, centre) for info in infos]
    targets = [Path(p) for p in paths]
    tmps = [t.with_name(f".{t.name}.{os.getpid()}.tmp") for t in targets]
    try:
        with contextlib.ExitStack() as stack:
            zfs = [stack.enter_context(zipfile.ZipFile(t, "w", zipfile.ZIP_STORED,
                                                       allowZip64=True)) for t in tmps]
            for group in chunks:
                for zf, header, chunk in zip(zfs, headers, group, strict=True):
                    _add_chunk(zf, header, chunk)
                del group
            for zf, header in zip(zfs, headers, strict=True):
                _member(zf, "header", np.frombuffer(json.dumps(header).encode(), np.uint8))
        for tmp, target in zip(tmps, targets, strict=True):
            os.replace(tmp, target)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
    return headers


def _header(info: MsInfo, data: dict[str, Any], centre: tuple[float, float]) -> dict[str, Any]:
    return {
        "format": FORMAT, "version": VERSION,
        "data": {k: data[k] for k in DATA_KEYS}, "centre": [float(c) for c in centre],
        "info": {"phase_centre": list(info.phase_centre), "frame": info.frame,
                 "freq_min": info.freq_min, "freq_max": info.freq_max,
                 "date_obs": info.date_obs, "telescope": info.telescope},
        "chunks": [], "nbad": 0, "rows": 0}


def _add_chunk(zf: zipfile.ZipFile, header: dict[str, Any], chunk: VisChunk) -> None:
    name = f"c{len(header['chunks']):05d}"
    _member(zf, f"{name}-uvw", np.asarray(chunk.uvw, np.float64))
    _member(zf, f"{name}-freq", np.asarray(chunk.freq, np.float64))
    _member(zf, f"{name}-vis", np.asarray(chunk.vis, np.complex64))
    _write_weight(zf, name, np.asarray(chunk.weight, np.float32))
    header["chunks"].append({"name": name, "ddid": int(chunk.ddid),
                             "rows": int(chunk.uvw.shape[0]),
                             "channels": int(chunk.freq.shape[0])})
    header["nbad"] += int(chunk.nbad)
    header["rows"] += int(chunk.uvw.shape[0])


def _write_weight(zf: zipfile.ZipFile, name: str, weight: np.ndarray) -> None:
    """The weights of a chunk: as a row weight and a flag bit per sample when every sample
    of a row has the row's weight or 0 (the common case: no WEIGHT_SPECTRUM), else in full."""
    row = weight.max(axis=1, initial=0.0)
    flagged = weight == 0
    if np.all(flagged | (weight == row[:, None])):
        _member(zf, f"{name}-rowweight", row)
        _member(zf, f"{name}-flags", np.packbits(flagged, axis=1))
    else:
        _member(zf, f"{name}-weight", weight)


def _read_weight(zf: zipfile.ZipFile, name: str, nchan: int, path: Path) -> np.ndarray:
    if f"{name}-rowweight.npy" in zf.NameToInfo:
        row = _read_member(zf, f"{name}-rowweight", path)
        flagged = np.unpackbits(_read_member(zf, f"{name}-flags", path), axis=1,
                                count=nchan).view(bool)
        return np.where(flagged, np.float32(0), row[:, None])
    return _read_member(zf, f"{name}-weight", path)


def bytes_read(path: str | os.PathLike, vis: bool = True) -> int:
    """Bytes of the part file that ``read_chunks`` reads (``vis`` False: its visibilities
    skipped): the members' data and headers, the zip's directory."""
    with zipfile.ZipFile(path) as zf:
        infos = [i for i in zf.infolist() if vis or not i.filename.endswith("-vis.npy")]
        return sum(i.compress_size + 30 + len(i.filename) + len(i.extra) for i in infos) + \
            46 * len(zf.infolist())


def _read_member(zf: zipfile.ZipFile, name: str, path: Path) -> np.ndarray:
    try:
        with zf.open(f"{name}.npy") as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except KeyError:
        raise InputError(f"{path}: part file has no member {name}") from None


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The header of a part file; InputError when ``path`` is not one."""
    p = Path(path)
    try:
        with zipfile.ZipFile(p) as zf:
            header = json.loads(bytes(_read_member(zf, "header", p)).decode())
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{p} is not a part file: {exc}") from None
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise InputError(f"{p} is not an {FORMAT} file of version {VERSION}")
    return header


def info(header: dict[str, Any], nrows: int | None = None) -> MsInfo:
    """The MsInfo the part was written with (for the image geometry and FITS header)."""
    i = header["info"]
    return MsInfo(tuple(i["phase_centre"]), i["frame"], float(i["freq_min"]),
                  float(i["freq_max"]), i["date_obs"], i["telescope"],
                  int(header["rows"] if nrows is None else nrows))


def check(header: dict[str, Any], data: dict[str, Any], centre: tuple[float, float],
          path: str | os.PathLike) -> None:
    """InputError unless the part was written with these data settings and phase centre."""
    for key in DATA_KEYS:
        if header["data"][key] != data[key]:
            raise InputError(f"{path}: the part was written with data.{key} = "
                             f"{header['data'][key]!r}, the configuration says {data[key]!r}; "
                             "partition the MS again")
    if not np.allclose(header["centre"], centre, rtol=0, atol=1e-12):
        raise InputError(f"{path}: the part is phased to {header['centre']} (radians), the "
                         f"image centre is {list(centre)}; partition the MS again")


def _groups(chunks: list[dict], max_vis: int | None) -> list[list[dict]]:
    """Consecutive chunks of one spectral window, joined while their samples stay within
    ``max_vis`` (None: every chunk alone)."""
    groups: list[list[dict]] = []
    size = 0
    for c in chunks:
        n = c["rows"] * c["channels"]
        last = groups[-1][-1] if groups else None
        if last is None or max_vis is None or size + n > max_vis or \
                (c["ddid"], c["channels"]) != (last["ddid"], last["channels"]):
            groups.append([])
            size = 0
        groups[-1].append(c)
        size += n
    return groups


def _read_into(zf: zipfile.ZipFile, name: str, out: np.ndarray, path: Path, *,
               subtract: bool = False) -> None:
    """Read the .npy member ``name`` straight into ``out`` (C-contiguous, same shape/dtype).
    subtract: ``out`` becomes the member minus ``out``, read a block of rows at a time (a few
    MB beside ``out``, not a second array of its size)."""
    with zf.open(f"{name}.npy") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
        if tuple(shape) != out.shape or fortran or np.dtype(dtype) != out.dtype:
            raise InputError(f"{path}: member {name} is {dtype}{shape}, not {out.dtype}"
                             f"{out.shape}")
        if not subtract:
            _fill(f, out.reshape(-1), name, path)
            return
        flat = out.reshape(-1)
        block = np.empty(min(flat.size, _BLOCK_BYTES // max(out.itemsize, 1)), out.dtype)
        for start in range(0, flat.size, block.size):
            part = flat[start:start + block.size]
            got = block[:part.size]
            _fill(f, got, name, path)
            np.subtract(got, part, out=part)


_BLOCK_BYTES = 1 << 23  # what a subtracting read holds beside its array


def _fill(f: Any, out: np.ndarray, name: str, path: Path) -> None:
    """Read exactly ``out.nbytes`` bytes of an open member into ``out`` (1-D, contiguous)."""
    view = memoryview(out.view(np.uint8))
    done = 0
    while done < len(view):
        got = f.readinto(view[done:])
        if not got:
            raise InputError(f"{path}: member {name} is truncated")
        done += got


def _read_group(zf: zipfile.ZipFile, group: list[dict], vis: bool, path: Path) -> VisChunk:
    nrow, nchan = sum(c["rows"] for c in group), group[0]["channels"]
    chunk = VisChunk(np.empty((nrow, 3)), _read_member(zf, f"{group[0]['name']}-freq", path),
                     np.empty((nrow, nchan), np.complex64) if vis else
                     np.broadcast_to(np.complex64(0), (nrow, nchan)),
                     np.empty((nrow, nchan), np.float32), 0, int(group[0]["ddid"]))
    r = 0
    for c in group:
        rows = slice(r, r + c["rows"])
        _read_into(zf, f"{c['name']}-uvw", chunk.uvw[rows], path)
        if vis:
            _read_into(zf, f"{c['name']}-vis", chunk.vis[rows], path)
        chunk.weight[rows] = _read_weight(zf, c["name"], nchan, path)
        r += c["rows"]
    return chunk


def read_chunks(path: str | os.PathLike, header: dict[str, Any] | None = None,
                vis: bool = True, max_vis: int | None = None) -> Iterator[VisChunk]:
    """The part's chunks, one at a time (complex64 vis, float32 weight); the first carries
    the part's count of non-finite samples in ``nbad``. vis False: the visibilities are not
    read (a read-only zero stands in for them; for the weight density, two thirds less I/O).
    max_vis: consecutive chunks of a spectral window are joined (read straight into one
    array) up to this many samples: fewer, larger gridder calls."""
    p = Path(path)
    header = read_header(p) if header is None else header
    try:
        with zipfile.ZipFile(p) as zf:
            for i, group in enumerate(_groups(header["chunks"], max_vis)):
                chunk = _read_group(zf, group, vis, p)
                chunk.nbad = int(header["nbad"]) if i == 0 else 0
                yield chunk
                del chunk
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{p}: unreadable part file ({exc})") from None


def read_residual_chunks(path: str | os.PathLike, header: dict[str, Any],
                         predict: Callable[[VisChunk], np.ndarray],
                         max_vis: int | None = None) -> Iterator[VisChunk]:
    """The part's chunks with ``vis`` = data - ``predict(chunk)``: the model's visibilities
    (complex64 (nrow, nchan), writable; called with the chunk's uvw, freq and weight) are
    predicted first and the data subtracted in their array as it is read, so a residual job
    holds one visibility array per chunk, not two. As ``read_chunks`` otherwise."""
    p = Path(path)
    with _reading(p):
        zf = zipfile.ZipFile(p)
    with zf:
        for i, group in enumerate(_groups(header["chunks"], max_vis)):
            with _reading(p):
                chunk = _read_group(zf, group, False, p)
            chunk.nbad = int(header["nbad"]) if i == 0 else 0
            model = predict(chunk)
            if model.shape != chunk.weight.shape or model.dtype != np.complex64:
                raise RuntimeError(f"predicted {model.dtype}{model.shape}, not complex64"
                                   f"{chunk.weight.shape}")
            r = 0
            for c in group:
                with _reading(p):
                    _read_into(zf, f"{c['name']}-vis", model[r:r + c["rows"]], p,
                               subtract=True)
                r += c["rows"]
            chunk.vis = model
            del model
            yield chunk
            del chunk


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """A part file that cannot be read is an InputError naming it."""
    try:
        yield
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: unreadable part file ({exc})") from None

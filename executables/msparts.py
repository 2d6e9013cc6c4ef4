"""Measurement Sets as files, and the selections that split one into parts.

A Measurement Set is a directory; as the workflow's input it travels as an uncompressed tar
(``OBS.ms.tar``) holding one top-level ``*.ms`` directory. ``unpacked`` opens either form
in a scratch directory that is removed afterwards. ``imaged_rows`` picks the rows the imaging
reads (the configured field and spectral window, cross-correlations): a CASA MS often holds
calibrators and other targets, which no part needs to carry. The splitters give, for each part,
the range of keys (time, baseline) or of channels it holds; every selected row or channel
belongs to exactly one part (the partition then writes each as a part file, imaging/ms/partfile.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from htclean.imaging.errors import InputError


def _table(path: str | os.PathLike, readonly: bool = True):
    from casacore.tables import table

    return table(str(path), readonly=readonly, ack=False)


def is_ms(path: str | os.PathLike) -> bool:
    """True when ``path`` is a directory holding a casacore table."""
    return (Path(path) / "table.dat").is_file()


def _safe_members(tar: tarfile.TarFile, where: str) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    for m in members:
        name = Path(m.name)
        if name.is_absolute() or ".." in name.parts:
            raise InputError(f"{where}: unsafe path in the tar: {m.name}")
        if not (m.isfile() or m.isdir()):
            raise InputError(f"{where}: the tar holds {m.name}, which is not a file or folder")
    return members


def _find_ms(root: Path, where: str) -> Path:
    tops = [p for p in root.iterdir() if p.is_dir()]
    if len(tops) == 1 and is_ms(tops[0]):
        return tops[0]
    if is_ms(root):
        return root
    raise InputError(f"{where}: does not hold one Measurement Set directory")


@contextlib.contextmanager
def unpacked(path: str | os.PathLike, scratch: str | os.PathLike = ".") -> Iterator[Path]:
    """Yield the MS directory of ``path`` (a ``.tar`` of one MS, or an MS directory).

    A tar is unpacked into a temporary directory under ``scratch`` that is removed on exit.
    Raises InputError when ``path`` is missing, not a tar or holds no MS.
    """
    p = Path(path)
    if p.is_dir():
        if not is_ms(p):
            raise InputError(f"{p}: is a directory but not a Measurement Set")
        yield p
        return
    if not p.is_file():
        raise InputError(f"no such Measurement Set or tar: {p}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", dir=scratch))
    try:
        try:
            with tarfile.open(p, "r:*") as tar:
                members = _safe_members(tar, str(p))
                tar.extractall(tmp, members=members)  # noqa: S202 (members checked above)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise InputError(f"{p}: not a readable tar of a Measurement Set ({exc})") from None
        yield _find_ms(tmp, str(p))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pack(ms: str | os.PathLike, tar_path: str | os.PathLike) -> Path:
    """Write the MS directory ``ms`` as an uncompressed tar at ``tar_path``, atomically.

    The tar holds one top-level directory named after ``tar_path`` without ``.tar``.
    """
    from htclean.executables.atomic import atomic_output

    out = Path(tar_path)
    arcname = out.name.removesuffix(".tar") if out.name.endswith(".tar") else out.name + ".ms"
    with atomic_output(out) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(str(ms), arcname=arcname)
    return out


# --- splitting -----------------------------------------------------------------------------


class TooFewUnits(InputError):
    """More parts asked for than there are units (timestamps, baselines, channels) to split."""

    def __init__(self, units: int, nparts: int, unit: str):
        super().__init__(f"cannot split {units} {unit}s into {nparts} parts without splitting "
                         f"a {unit}; use at most {units} parts on this axis")
        self.units, self.unit = units, unit


def balanced_cuts(counts: Sequence[int] | np.ndarray, nparts: int, unit: str) -> list[int]:
    """Cut a sequence of ``len(counts)`` units (timestamps, baselines) with ``counts`` rows
    each into ``nparts`` contiguous non-empty groups of about equal rows.

    Returns ``nparts + 1`` boundaries ``b`` (group k = units ``b[k]:b[k+1]``). TooFewUnits when
    there are fewer units than parts.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = len(counts)
    if nparts < 1:
        raise InputError(f"the number of parts must be at least 1, got {nparts}")
    if n < nparts:
        raise TooFewUnits(n, nparts, unit)
    cum = np.concatenate([[0], np.cumsum(counts)])
    total = cum[-1]
    cuts = [0]
    for k in range(1, nparts):
        target = total * k / nparts
        i = int(np.searchsorted(cum, target))
        if i > 0 and abs(cum[i - 1] - target) <= abs(cum[min(i, n)] - target):
            i -= 1
        i = max(i, cuts[-1] + 1)  # non-empty
        i = min(i, n - (nparts - k))  # leave one unit for each remaining part
        cuts.append(i)
    cuts.append(n)
    return cuts


def _row_keys(t, axis: str, start: int, n: int) -> np.ndarray:
    """The key that groups rows on ``axis``: TIME (float64 s) or the antenna pair (int64)."""
    if axis == "time":
        return t.getcol("TIME", startrow=start, nrow=n)
    a1 = t.getcol("ANTENNA1", startrow=start, nrow=n).astype(np.int64)
    a2 = t.getcol("ANTENNA2", startrow=start, nrow=n).astype(np.int64)
    return (a1 << 32) | a2


def imaged_rows(ms: str | os.PathLike, field: int, ddid: int | None,
                block_rows: int = 1000000) -> np.ndarray | None:
    """Ascending row numbers (int64) of the rows the imaging reads: FIELD_ID ``field``,
    DATA_DESC_ID ``ddid`` (None = any) and ANTENNA1 != ANTENNA2; None when that is every row.
    InputError when no row is selected."""
    t = _table(ms)
    try:
        found = []
        for start in range(0, t.nrows(), block_rows):
            n = min(block_rows, t.nrows() - start)
            keep = (t.getcol("FIELD_ID", start, n) == field) & (
                t.getcol("ANTENNA1", start, n) != t.getcol("ANTENNA2", start, n))
            if ddid is not None:
                keep &= t.getcol("DATA_DESC_ID", start, n) == ddid
            found.append(start + np.flatnonzero(keep))
        nrow = t.nrows()
    finally:
        t.close()
    rows = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    if len(rows) == 0:
        spw = "" if ddid is None else f" and spectral window (DATA_DESC_ID) {ddid}"
        raise InputError(f"{ms}: no cross-correlation rows of field {field}{spw}")
    return None if len(rows) == nrow else rows.astype(np.int64)


@contextlib.contextmanager
def _rows_of(ms: str | os.PathLike, rows: np.ndarray | None) -> Iterator:
    """The table of ``ms``, restricted to ``rows`` (ascending row numbers) when given."""
    t = _table(ms)
    try:
        if rows is None:
            yield t
        else:
            sel = t.selectrows(np.asarray(rows, dtype=np.int64))
            try:
                yield sel
            finally:
                sel.close()
    finally:
        t.close()


def key_ranges(ms: str | os.PathLike, axis: str, nparts: int, block_rows: int = 1000000,
               rows: np.ndarray | None = None) -> list[tuple[float, float]]:
    """For ``axis`` time or baseline: the inclusive key range ``(lo, hi)`` of each part.

    Time parts are contiguous time ranges, baseline parts groups of whole baselines (ordered
    by antenna pair), each of about equal rows; rows of one timestamp or baseline stay
    together. The key columns are read ``block_rows`` at a time. rows: only these rows
    (ascending row numbers; None = all) are counted.
    """
    with _rows_of(ms, rows) as t:
        keys: np.ndarray = np.zeros(0)
        counts = np.zeros(0, dtype=np.int64)
        for start in range(0, t.nrows(), block_rows):
            k, c = np.unique(_row_keys(t, axis, start, min(block_rows, t.nrows() - start)),
                             return_counts=True)
            keys, inv = np.unique(np.concatenate([keys, k]), return_inverse=True)
            counts = np.bincount(inv.ravel(), np.concatenate([counts, c]),
                                 minlength=len(keys)).astype(np.int64)
    unit = "timestamp" if axis == "time" else "baseline"
    cuts = balanced_cuts(counts, nparts, unit)
    return [(keys[cuts[k]], keys[cuts[k + 1] - 1]) for k in range(nparts)]


def rows_in_range(ms: str | os.PathLike, axis: str, lo: float, hi: float,
                  block_rows: int = 1000000, rows: np.ndarray | None = None) -> np.ndarray:
    """Ascending row numbers (int64) of ``ms`` whose ``axis`` key lies in ``[lo, hi]``, among
    ``rows`` (ascending row numbers; None = all)."""
    with _rows_of(ms, rows) as t:
        found = []
        for start in range(0, t.nrows(), block_rows):
            key = _row_keys(t, axis, start, min(block_rows, t.nrows() - start))
            found.append(start + np.flatnonzero((key >= lo) & (key <= hi)))
    picked = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    return picked if rows is None else np.asarray(rows, dtype=np.int64)[picked]


def time_range(ms: str | os.PathLike, block_rows: int = 1000000,
               rows: np.ndarray | None = None) -> tuple[float, float]:
    """(first, last) TIME of ``ms`` (of ``rows`` only, when given) in MJD seconds; (nan, nan)
    for no rows."""
    with _rows_of(ms, rows) as t:
        lo, hi = np.inf, -np.inf
        for start in range(0, t.nrows(), block_rows):
            tm = t.getcol("TIME", startrow=start, nrow=min(block_rows, t.nrows() - start))
            lo, hi = min(lo, float(tm.min())), max(hi, float(tm.max()))
    return (lo, hi) if lo <= hi else (float("nan"), float("nan"))


def split_channel(nchan: int, nparts: int) -> list[tuple[int, int]]:
    """Channel ranges ``[c0, c1)`` of each part, contiguous and of about equal width."""
    cuts = balanced_cuts(np.ones(nchan, dtype=np.int64), nparts, "channel")
    return [(cuts[k], cuts[k + 1]) for k in range(nparts)]


def channel_count(ms: str | os.PathLike) -> int:
    """The number of channels, the same in every spectral window (InputError otherwise)."""
    spw = _table(Path(ms) / "SPECTRAL_WINDOW")
    try:
        nchan = {int(n) for n in spw.getcol("NUM_CHAN")}
    finally:
        spw.close()
    if len(nchan) != 1:
        raise InputError(f"{ms}: spectral windows have different channel counts "
                         f"({sorted(nchan)}); partition along time or baseline instead")
    return nchan.pop()

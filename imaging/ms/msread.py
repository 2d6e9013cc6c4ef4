"""Reading Stokes I visibilities from a Measurement Set, a bounded number of rows at a time.

What is read: UVW, the configured data column, FLAG, FLAG_ROW, WEIGHT_SPECTRUM when the column
exists and holds values (else WEIGHT, the same for every channel), CHAN_FREQ of the row's
DATA_DESC_ID -> SPECTRAL_WINDOW, the correlation types of its POLARIZATION row, the field's
PHASE_DIR. Only the parallel hands are read from the data column (XX, YY = 9, 12 or RR, LL =
5, 8; a single-correlation I = 1 column is used as it is), with 2 or 4 correlations.

Stokes I and its weight, per (row, channel), by ``polarization_rule``. A hand is *usable*
when it is not flagged (FLAG, FLAG_ROW), its value and weight are finite and its weight > 0.

- ``available`` (default): I = the mean of the usable hands, weight = the sum of their weights.
  Both usable: I = (V1 + V2) / 2, weight w1 + w2; one usable: I = that hand, weight its own
  weight (half the total, as its noise is sqrt(2) higher); none: weight 0. With nothing
  flagged it equals ``tclean``.
- ``wsclean``: both hands must be usable, I = (V1 + V2) / 2, weight min(w1, w2) (WSClean 3.1,
  as measured in DESIGN.md).
- ``tclean``: both hands usable and, with 4 correlations, no correlation flagged;
  I = (V1 + V2) / 2, weight w1 + w2 (CASA tclean).

Non-finite values (NaN/Inf in the data or the weights) of an unflagged hand make it unusable
and are counted in ``VisChunk.nbad``. Flagged samples get weight 0 and visibility 0.

Autocorrelations (rows with ANTENNA1 == ANTENNA2, which CASA's simulator and many
telescopes write) are treated as flagged: tclean and WSClean image cross-correlations only,
and an unflagged autocorrelation would add its total power to every pixel.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from htclean.imaging import geometry
from htclean.imaging.errors import InputError

RULES = ("available", "wsclean", "tclean")
CORR_NAMES = {1: "I", 2: "Q", 3: "U", 4: "V", 5: "RR", 6: "RL", 7: "LR", 8: "LL",
              9: "XX", 10: "XY", 11: "YX", 12: "YY"}
_HAND_PAIRS = ((9, 12), (5, 8))


@dataclass
class VisChunk:
    """Stokes I of up to ``chunk_rows`` rows of one spectral window.

    uvw (nrow, 3) float64 metres (rotated to the requested phase centre); freq (nchan,)
    float64 Hz, ascending (a window stored with descending frequencies, as lower-sideband
    windows often are, is read in reverse channel order); vis (nrow, nchan) complex Jy
    (complex64 from a complex64 column); weight (nrow, nchan) float (float32 from float32
    weights), 0 where flagged or not finite; nbad: NaN/Inf samples of
    unflagged hands that were treated as flagged; ddid: the DATA_DESC_ID.
    """

    uvw: np.ndarray
    freq: np.ndarray
    vis: np.ndarray
    weight: np.ndarray
    nbad: int = 0
    ddid: int = 0


@dataclass(frozen=True)
class MsInfo:
    """Summary of an MS for one field: phase centre (ra, dec radians) and its frame (FK5 for
    J2000, or ICRS), band edges (Hz) of the selected spectral windows, start date (ISO UTC)
    and telescope name when the OBSERVATION table has them, and the row count."""

    phase_centre: tuple[float, float]
    frame: str
    freq_min: float
    freq_max: float
    date_obs: str | None
    telescope: str | None
    nrows: int


def _check_ms(ms: str | os.PathLike) -> str:
    path = os.fspath(ms)
    if not os.path.isfile(os.path.join(path, "table.dat")):
        raise InputError(f"{path} is not a Measurement Set (no table.dat in that directory)")
    return path


def _open(path: str):
    import casacore.tables as ct

    try:
        return ct.table(path, ack=False)
    except RuntimeError as exc:
        raise InputError(f"cannot open {path}: {str(exc).splitlines()[0]}") from None


def _subtable(main, name: str):
    import casacore.tables as ct

    return ct.table(main.getkeyword(name), ack=False)


def phase_centre(ms: str | os.PathLike, field: int = 0) -> tuple[float, float]:
    """(ra, dec) in radians of the field's PHASE_DIR (the 0th polynomial term)."""
    path = _check_ms(ms)
    with _open(path) as main, _subtable(main, "FIELD") as ft:
        return _field_centre(ft, field, path)


def _field_centre(ft, field: int, path: str) -> tuple[float, float]:
    if not 0 <= field < ft.nrows():
        raise InputError(f"{path} has no field {field} (FIELD has {ft.nrows()} rows)")
    d = np.asarray(ft.getcell("PHASE_DIR", field), float).reshape(-1, 2)[0]
    return float(d[0]), float(d[1])


def describe(ms: str | os.PathLike, field: int = 0, spw: int | None = None,
             channels: tuple[int, int] | None = None) -> MsInfo:
    """What the geometry and the FITS header need from ``ms`` for one field and spw
    (a DATA_DESC_ID; None = every one in DATA_DESCRIPTION); channels: only the channels
    ``[c0, c1)`` of each window count in the band (a channel part)."""
    path = _check_ms(ms)
    with ExitStack() as stack:
        main = stack.enter_context(_open(path))
        ft = stack.enter_context(_subtable(main, "FIELD"))
        dd = stack.enter_context(_subtable(main, "DATA_DESCRIPTION"))
        sw = stack.enter_context(_subtable(main, "SPECTRAL_WINDOW"))
        centre = _field_centre(ft, field, path)
        ref = ft.getcolkeywords("PHASE_DIR").get("MEASINFO", {}).get("Ref", "J2000")
        frame = "ICRS" if str(ref).upper() == "ICRS" else "FK5"
        ddids = _check_spw(dd, spw, path)
        lo, hi = np.inf, -np.inf
        for d in ddids:
            s = int(dd.getcell("SPECTRAL_WINDOW_ID", d))
            f = np.asarray(sw.getcell("CHAN_FREQ", s), float)
            width = np.abs(np.asarray(sw.getcell("CHAN_WIDTH", s), float)) \
                if "CHAN_WIDTH" in sw.colnames() else np.zeros_like(f)
            if channels is not None:
                f, width = f[channels[0]:channels[1]], width[channels[0]:channels[1]]
            lo, hi = min(lo, float(np.min(f - width / 2))), max(hi, float(np.max(f + width / 2)))
        date, telescope = _observation(main)
        return MsInfo(centre, frame, lo, hi, date, telescope, main.nrows())


def _observation(main) -> tuple[str | None, str | None]:
    if "OBSERVATION" not in main.getkeywords():
        return None, None
    with _subtable(main, "OBSERVATION") as ob:
        if ob.nrows() == 0:
            return None, None
        name = str(ob.getcell("TELESCOPE_NAME", 0)) or None
        start = float(np.asarray(ob.getcell("TIME_RANGE", 0)).ravel()[0])
    if start <= 0:
        return None, name
    from astropy.time import Time

    return Time(start / 86400.0, format="mjd", scale="utc").isot, name


def _check_spw(dd, spw: int | None, path: str) -> list[int]:
    n = dd.nrows()
    if n == 0:
        raise InputError(f"{path} has an empty DATA_DESCRIPTION table")
    if spw is None:
        return list(range(n))
    if not 0 <= spw < n:
        raise InputError(f"{path} has no spectral window (DATA_DESC_ID) {spw}; "
                         f"DATA_DESCRIPTION has {n} rows")
    return [spw]


def _hands(corr: Sequence[int], path: str, pol_id: int) -> tuple[int, ...]:
    """Indices of the correlations that make Stokes I: (i,) for I, else the two hands'
    (ascending; Stokes I is symmetric in them)."""
    corr = [int(c) for c in corr]
    if 1 in corr:
        return (corr.index(1),)
    for a, b in _HAND_PAIRS:
        if a in corr and b in corr:
            return tuple(sorted((corr.index(a), corr.index(b))))
    names = ", ".join(CORR_NAMES.get(c, str(c)) for c in corr)
    raise InputError(f"{path}: POLARIZATION row {pol_id} has correlations [{names}]; Stokes I "
                     "needs XX and YY, RR and LL, or I")


def stokes_i(data: np.ndarray, flag: np.ndarray, weight: np.ndarray, rule: str,
             flag_other: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Stokes I of the parallel hands by ``rule`` (see the module docstring).

    data (nrow, nchan, h) complex, flag (nrow, nchan, h) bool, weight (nrow, nchan, h) float,
    h = 1 (an I correlation) or 2 (the two hands); flag_other (nrow, nchan) bool: any other
    correlation flagged (used by ``tclean`` only). Returns vis (nrow, nchan) complex and weight
    (nrow, nchan) float in the data's precision (complex64 and float32 from an MS's DATA and
    WEIGHT; never coarser) and the count of non-finite unflagged samples.
    """
    if rule not in RULES:
        raise InputError(f"polarization_rule must be one of {', '.join(RULES)}; got {rule!r}")
    finite = np.isfinite(data) & np.isfinite(weight)
    nbad = int(np.count_nonzero(~finite & ~flag))
    ok = finite & ~flag & (weight > 0)
    del finite
    # in the data's own precision: a sum of two float32 values rounded once is the same
    # whether formed in float32 or float64, so this is what float64 would give, at half the memory
    d = np.where(ok, data, np.zeros((), np.result_type(data.dtype, np.complex64)))
    w = np.where(ok, weight, np.zeros((), np.result_type(weight.dtype, np.float32)))
    if data.shape[-1] == 1:
        return d[..., 0], w[..., 0], nbad
    if rule == "available":
        # the two hands added, not numpy's sum over an axis of 2 (the same a + b, 3x faster)
        vis = d[..., 0] + d[..., 1]
        vis[ok[..., 0] & ok[..., 1]] /= 2  # exact: one usable hand keeps its value, two their mean
        return vis, w[..., 0] + w[..., 1], nbad
    both = ok.all(axis=-1)
    if rule == "tclean" and flag_other is not None:
        both &= ~flag_other
    vis = d[..., 0] + d[..., 1]
    vis /= 2
    vis[~both] = 0
    wsum = np.minimum(w[..., 0], w[..., 1]) if rule == "wsclean" else w[..., 0] + w[..., 1]
    wsum[~both] = 0
    return vis, wsum, nbad


def _matching_ddids(base, field: int, ddids: list[int], chunk_rows: int) -> tuple[list[int], bool]:
    """DATA_DESC_IDs in ``ddids`` that rows of ``field`` use, and whether every row of the
    table is that field and one such ddid (then no row selection is needed)."""
    found: set[int] = set()
    everything = True
    for start in range(0, base.nrows(), chunk_rows):
        n = min(chunk_rows, base.nrows() - start)
        f = base.getcol("FIELD_ID", start, n)
        d = base.getcol("DATA_DESC_ID", start, n)
        sel = (f == field) & np.isin(d, ddids)
        everything &= bool(sel.all())
        found.update(int(x) for x in np.unique(d[sel]))
    return sorted(found), everything and len(found) == 1


def read_chunks(ms: str | os.PathLike, *, column: str = "DATA", field: int = 0,
                spw: int | None = None, polarization_rule: str = "available",
                chunk_rows: int = 200_000, phase_centre: tuple[float, float] | None = None,
                rows: Sequence[int] | np.ndarray | None = None,
                channels: tuple[int, int] | None = None) -> Iterator[VisChunk]:
    """Stokes I of ``ms`` for one field, ``chunk_rows`` rows at a time, one spw per chunk.

    spw: a DATA_DESC_ID or None for all; phase_centre: (ra, dec) radians to rotate the data
    to (None = the field's own); rows: main-table row numbers to restrict to (a part given as
    a row selection); channels: (start, stop) channel range of every spw. Memory is bounded by
    ``chunk_rows`` x channels. Raises InputError for a missing column, field, spw or an
    unsupported polarization setup.
    """
    path = _check_ms(ms)
    if polarization_rule not in RULES:
        raise InputError(f"polarization_rule must be one of {', '.join(RULES)}; "
                         f"got {polarization_rule!r}")
    if chunk_rows < 1:
        raise InputError(f"chunk_rows must be >= 1, got {chunk_rows}")
    with ExitStack() as stack:
        main = stack.enter_context(_open(path))
        if column not in main.colnames():
            raise InputError(f"{path} has no {column} column")
        ft = stack.enter_context(_subtable(main, "FIELD"))
        dd = stack.enter_context(_subtable(main, "DATA_DESCRIPTION"))
        sw = stack.enter_context(_subtable(main, "SPECTRAL_WINDOW"))
        pt = stack.enter_context(_subtable(main, "POLARIZATION"))
        centre = _field_centre(ft, field, path)
        shift = phase_centre is not None and tuple(map(float, phase_centre)) != centre
        base = main
        if rows is not None:
            base = stack.enter_context(main.selectrows(np.asarray(rows, dtype=np.int64)))
        wanted, whole = _matching_ddids(base, field, _check_spw(dd, spw, path), chunk_rows)
        for ddid in wanted:
            sel = base if whole else base.query(f"FIELD_ID=={field} AND DATA_DESC_ID=={ddid}")
            try:
                yield from _read_selection(sel, ddid, dd, sw, pt, path, column, polarization_rule,
                                           chunk_rows, channels,
                                           (centre, tuple(map(float, phase_centre)))
                                           if shift else None)
            finally:
                if sel is not base:
                    sel.close()


def _read_selection(sel, ddid: int, dd, sw, pt, path: str, column: str, rule: str,
                    chunk_rows: int, channels: tuple[int, int] | None,
                    rotate: tuple[tuple[float, float], tuple[float, float]] | None,
                    ) -> Iterator[VisChunk]:
    """Chunks of one (field, ddid) row selection."""
    spw_id = int(dd.getcell("SPECTRAL_WINDOW_ID", ddid))
    pol_id = int(dd.getcell("POLARIZATION_ID", ddid))
    freq = np.asarray(sw.getcell("CHAN_FREQ", spw_id), np.float64)
    corr = np.asarray(pt.getcell("CORR_TYPE", pol_id)).ravel()
    c0, c1 = _channel_range(channels, len(freq), path, spw_id)
    freq = freq[c0:c1]
    order = np.argsort(freq, kind="stable")  # the gridders need ascending frequencies
    ascending = bool(np.all(order == np.arange(len(freq))))
    freq = freq[order]
    reader = _ChunkReader(sel, column, _hands(corr, path, pol_id), len(corr), c0, c1, rule)
    for start in range(0, sel.nrows(), chunk_rows):
        uvw, vis, weight, nbad = reader.read(start, min(chunk_rows, sel.nrows() - start))
        if not ascending:
            vis, weight = vis[:, order], weight[:, order]
        if rotate is not None:
            uvw, vis = geometry.rephase(uvw, freq, vis, *rotate)
        yield VisChunk(uvw, freq, vis, weight, nbad, ddid)
        del uvw, vis, weight  # hold one chunk at a time, not this one while reading the next


def _channel_range(channels: tuple[int, int] | None, nchan: int, path: str,
                   spw_id: int) -> tuple[int, int]:
    if channels is None:
        return 0, nchan
    c0, c1 = int(channels[0]), int(channels[1])
    if not 0 <= c0 < c1 <= nchan:
        raise InputError(f"{path}: channel range {c0}:{c1} is outside spectral window {spw_id} "
                         f"({nchan} channels)")
    return c0, c1


class _ChunkReader:
    """Reads rows [start, start + n) of one (field, ddid) selection and forms Stokes I
    (autocorrelation rows flagged)."""

    def __init__(self, sel, column: str, hands: tuple[int, ...], ncorr: int, c0: int, c1: int,
                 rule: str):
        self.sel, self.column, self.hands, self.ncorr = sel, column, hands, ncorr
        self.c0, self.c1, self.rule = c0, c1, rule
        self.inc = [1, hands[-1] - hands[0]] if len(hands) == 2 else [1, 1]
        self.spectrum = ("WEIGHT_SPECTRUM" in sel.colnames() and sel.nrows() > 0
                         and sel.iscelldefined("WEIGHT_SPECTRUM", 0))
        self.other = rule == "tclean" and ncorr > len(hands)

    def _slice(self, name: str, start: int, n: int) -> np.ndarray:
        return self.sel.getcolslice(name, [self.c0, self.hands[0]], [self.c1 - 1, self.hands[-1]],
                                    self.inc, startrow=start, nrow=n)

    def read(self, start: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        uvw = self.sel.getcol("UVW", start, n).astype(np.float64)
        data = self._slice(self.column, start, n)
        drop = self.sel.getcol("FLAG_ROW", start, n) | (
            self.sel.getcol("ANTENNA1", start, n) == self.sel.getcol("ANTENNA2", start, n))
        flag = self._slice("FLAG", start, n) | drop[:, None, None]
        if self.spectrum:
            weight = self._slice("WEIGHT_SPECTRUM", start, n)
        else:
            w = self.sel.getcol("WEIGHT", start, n)[:, list(self.hands)]
            weight = np.broadcast_to(w[:, None, :], data.shape)
        other = None
        if self.other:
            full = self.sel.getcolslice("FLAG", [self.c0, 0], [self.c1 - 1, self.ncorr - 1],
                                        startrow=start, nrow=n)
            other = full.any(axis=-1)
        vis, wt, nbad = stokes_i(data, flag, weight, self.rule, other)
        return uvw, vis, wt, nbad

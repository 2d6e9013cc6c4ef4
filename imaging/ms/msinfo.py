"""What is in a MeasurementSet, and the image geometry it calls for (``htclean inspect``).

``describe(path)`` reads the subtables and scans the main table in row chunks (memory bounded):
rows, antennas, baselines, spectral windows, correlations, time range, fields, the longest
projected baseline (sqrt(u^2 + v^2), over all rows, flagged or not), flagged fraction and size.
A ``.tar`` of an MS is unpacked to a temporary directory and described the same way.

Suggestions: cell = synthesized beam / 4 with beam = 1 / (longest baseline in wavelengths at the
highest frequency), rounded down to two significant digits in arcsec; size = the primary-beam
FWHM at the lowest frequency (NRAO: 42 arcmin / nu[GHz] for 25 m dishes) in cells, rounded up to
an even number with no prime factor above 5 (fast FFTs).
"""

from __future__ import annotations

import math
import os
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from htclean.imaging.errors import InputError
from htclean.imaging.ms.mswrite import STOKES_NAMES
from htclean.imaging.simulation import vla

C_LIGHT = 299792458.0
_ASEC = math.pi / 180.0 / 3600.0
_MJD_EPOCH = datetime(1858, 11, 17, tzinfo=timezone.utc)
_REQUIRED = ("ANTENNA", "DATA_DESCRIPTION", "FIELD", "POLARIZATION", "SPECTRAL_WINDOW")
_DATA_COLUMNS = ("DATA", "CORRECTED_DATA", "MODEL_DATA", "FLOAT_DATA")
_CHUNK_SAMPLES = 8_000_000  # flags read at a time


@dataclass(frozen=True)
class SpectralWindow:
    """One spectral window used by the data: channel frequencies in Hz."""

    id: int
    nchan: int
    freq_min: float
    freq_max: float
    chan_width: float


@dataclass(frozen=True)
class Field:
    """One FIELD row: name and J2000 phase centre (rad)."""

    id: int
    name: str
    ra: float
    dec: float


@dataclass(frozen=True)
class MSInfo:
    """The summary of a MeasurementSet. Angles rad, frequencies Hz, times UTC (ISO 8601),
    sizes bytes; visibilities = sum over rows of nchan x ncorr."""

    path: str
    size_bytes: int
    rows: int
    visibilities: int
    telescope: str
    antennas: int
    baselines: int
    spectral_windows: tuple[SpectralWindow, ...]
    nchan_total: int
    freq_min: float
    freq_max: float
    correlations: tuple[str, ...]
    time_start: str
    time_end: str
    duration_s: float
    fields: tuple[Field, ...]
    longest_baseline_m: float
    longest_baseline_wavelengths: float
    flagged_fraction: float
    data_columns: tuple[str, ...]
    dish_diameter: float
    primary_beam_fwhm: float
    suggested_cell: float
    suggested_size: int

    def to_dict(self) -> dict:
        """Plain JSON-ready dict of every field."""
        return asdict(self)


def suggest_cell(longest_baseline_wavelengths: float) -> float:
    """Cell (rad): beam / 4 with beam = 1 / longest baseline (wavelengths), rounded down to two
    significant digits in arcsec."""
    if not longest_baseline_wavelengths > 0:
        raise InputError("no baselines with a non-zero uv length: cannot suggest a cell")
    asec = 0.25 / longest_baseline_wavelengths / _ASEC
    quantum = 10.0 ** (math.floor(math.log10(asec)) - 1)
    return round(math.floor(asec / quantum * (1 + 1e-12)) * quantum, 12) * _ASEC


def fft_size(n: int) -> int:
    """The smallest even integer >= n whose prime factors are 2, 3 and 5 only."""
    m = max(2, int(n) + int(n) % 2)
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 2


def suggest_size(cell: float, freq_min: float, dish_diameter: float = vla.DISH_DIAMETER) -> int:
    """Pixels across the primary-beam FWHM at ``freq_min`` (Hz), FFT-friendly, at least 16."""
    fwhm = vla.primary_beam_fwhm(freq_min, dish_diameter)
    return fft_size(max(16, math.ceil(fwhm / cell - 1e-9)))


def mjd_seconds_to_iso(seconds: float) -> str:
    """ISO 8601 UTC text of a casacore epoch (MJD seconds, UTC)."""
    moment = _MJD_EPOCH + timedelta(seconds=float(seconds))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def describe(path: str | os.PathLike) -> MSInfo:
    """Describe the MeasurementSet at ``path`` (a directory, or a tar archive holding one)."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise InputError(f"{p} does not exist")
    if os.path.isfile(p):
        if not tarfile.is_tarfile(p):
            raise InputError(f"{p} is not a Measurement Set (a file, and not a tar archive)")
        return _describe_tar(p)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(p) for f in files)
    return _describe_dir(p, p, size)


def _describe_tar(path: str) -> MSInfo:
    with tempfile.TemporaryDirectory(prefix="htclean-inspect-") as tmp:
        try:
            with tarfile.open(path) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise InputError(f"{path}: cannot unpack the tar archive: {exc}") from None
        if os.path.exists(os.path.join(tmp, "table.dat")):
            root = tmp
        else:
            roots = [os.path.join(tmp, d) for d in sorted(os.listdir(tmp))
                     if os.path.isfile(os.path.join(tmp, d, "table.dat"))]
            if len(roots) != 1:
                raise InputError(f"{path} does not hold one Measurement Set at its top level "
                                 f"(found {len(roots)})")
            root = roots[0]
        return _describe_dir(root, path, os.path.getsize(path))


def _open(path: str):
    import casacore.tables as ct

    try:
        return ct.table(path, readonly=True, ack=False)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise InputError(f"{path} cannot be opened as a casacore table: {reason}") from None


def _describe_dir(path: str, shown: str, size: int) -> MSInfo:
    if not os.path.isfile(os.path.join(path, "table.dat")):
        raise InputError(f"{shown} is not a Measurement Set (no table.dat)")
    for name in _REQUIRED:
        if not os.path.isfile(os.path.join(path, name, "table.dat")):
            raise InputError(f"{shown} is not a Measurement Set (no {name} subtable)")
    with _open(os.path.join(path, "ANTENNA")) as t:
        nant = t.nrows()
        diameters = t.getcol("DISH_DIAMETER") if nant else np.array([])
    with _open(os.path.join(path, "SPECTRAL_WINDOW")) as t:
        chan_freq = [np.atleast_1d(t.getcell("CHAN_FREQ", i)) for i in range(t.nrows())]
        chan_width = [np.atleast_1d(t.getcell("CHAN_WIDTH", i)) for i in range(t.nrows())]
    with _open(os.path.join(path, "POLARIZATION")) as t:
        corr_types = [np.atleast_1d(t.getcell("CORR_TYPE", i)) for i in range(t.nrows())]
    with _open(os.path.join(path, "DATA_DESCRIPTION")) as t:
        dd_spw = t.getcol("SPECTRAL_WINDOW_ID") if t.nrows() else np.array([], int)
        dd_pol = t.getcol("POLARIZATION_ID") if t.nrows() else np.array([], int)
    with _open(os.path.join(path, "FIELD")) as t:
        fields = tuple(Field(i, str(t.getcell("NAME", i)),
                             *(float(v) for v in np.asarray(t.getcell("PHASE_DIR", i))[0]))
                       for i in range(t.nrows()))
    telescope = ""
    if os.path.isfile(os.path.join(path, "OBSERVATION", "table.dat")):
        with _open(os.path.join(path, "OBSERVATION")) as t:
            telescope = str(t.getcell("TELESCOPE_NAME", 0)) if t.nrows() else ""

    with _open(path) as main:
        rows = main.nrows()
        if rows == 0:
            raise InputError(f"{shown} has no rows (no visibilities)")
        columns = tuple(c for c in _DATA_COLUMNS if c in main.colnames())
        stats = _scan(main, dd_spw, dd_pol, chan_freq, corr_types)

    used_spw = sorted({int(dd_spw[d]) for d in stats["ddids"]})
    spws = tuple(SpectralWindow(s, len(chan_freq[s]), float(chan_freq[s].min()),
                                float(chan_freq[s].max()), float(np.abs(chan_width[s]).mean()))
                 for s in used_spw)
    freq_min = min(w.freq_min for w in spws)
    freq_max = max(w.freq_max for w in spws)
    first_pol = int(dd_pol[min(stats["ddids"])])
    correlations = tuple(STOKES_NAMES.get(int(c), str(int(c))) for c in corr_types[first_pol])
    dish = float(np.median(diameters)) if len(diameters) and np.median(diameters) > 0 \
        else vla.DISH_DIAMETER
    cell = suggest_cell(stats["uv_wavelengths"])
    return MSInfo(
        path=shown, size_bytes=int(size), rows=rows, visibilities=stats["samples"],
        telescope=telescope, antennas=nant, baselines=stats["baselines"],
        spectral_windows=spws, nchan_total=sum(w.nchan for w in spws),
        freq_min=freq_min, freq_max=freq_max, correlations=correlations,
        time_start=mjd_seconds_to_iso(stats["t0"]), time_end=mjd_seconds_to_iso(stats["t1"]),
        duration_s=float(stats["t1"] - stats["t0"]), fields=fields,
        longest_baseline_m=stats["uv_m"], longest_baseline_wavelengths=stats["uv_wavelengths"],
        flagged_fraction=stats["flagged"] / stats["samples"] if stats["samples"] else 0.0,
        data_columns=columns, dish_diameter=dish,
        primary_beam_fwhm=vla.primary_beam_fwhm(freq_min, dish),
        suggested_cell=cell, suggested_size=suggest_size(cell, freq_min, dish))


def _scan(main, dd_spw, dd_pol, chan_freq, corr_types) -> dict:
    """One chunked pass over the main table, per DATA_DESC_ID (shapes differ between them)."""
    ddids = np.unique(main.getcol("DATA_DESC_ID"))
    out = {"ddids": [int(d) for d in ddids], "samples": 0, "flagged": 0, "uv_m": 0.0,
           "uv_wavelengths": 0.0, "t0": math.inf, "t1": -math.inf}
    pairs: set[int] = set()
    for d in ddids:
        table = main if len(ddids) == 1 else main.query(f"DATA_DESC_ID=={int(d)}")
        freq = chan_freq[int(dd_spw[d])]
        nsample = len(freq) * len(corr_types[int(dd_pol[d])])
        chunk = max(1, _CHUNK_SAMPLES // nsample)
        uv_max = 0.0
        for start in range(0, table.nrows(), chunk):
            n = min(chunk, table.nrows() - start)
            uvw = table.getcol("UVW", start, n)
            uv_max = max(uv_max, float(np.sqrt(uvw[:, 0] ** 2 + uvw[:, 1] ** 2).max()))
            time, interval = table.getcol("TIME", start, n), table.getcol("INTERVAL", start, n)
            out["t0"] = min(out["t0"], float((time - interval / 2).min()))
            out["t1"] = max(out["t1"], float((time + interval / 2).max()))
            a1, a2 = table.getcol("ANTENNA1", start, n), table.getcol("ANTENNA2", start, n)
            cross = a1 != a2
            pairs.update(np.unique(a1[cross].astype(np.int64) * 100000 + a2[cross]).tolist())
            flag = table.getcol("FLAG", start, n).reshape(n, -1)
            flag_row = table.getcol("FLAG_ROW", start, n)
            out["flagged"] += int(flag[~flag_row].sum()) + int(flag_row.sum()) * nsample
            out["samples"] += n * nsample
        out["uv_m"] = max(out["uv_m"], uv_max)
        out["uv_wavelengths"] = max(out["uv_wavelengths"], uv_max * float(freq.max()) / C_LIGHT)
        if table is not main:
            table.close()
    out["baselines"] = len(pairs)
    return out

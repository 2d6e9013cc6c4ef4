"""Simulate a VLA observation of known sources: a real MeasurementSet plus the truth.

Visibilities follow the MS convention of DESIGN.md (sky.py computes them),
``V = sum S (f/f_ref)^alpha P exp(+2 pi i (u l + v m + w (n - 1)))`` with (u, v, w) = UVW f / c,
times each Gaussian's visibility-plane taper; S includes a source's spectral line (sky.Line,
a Gaussian in frequency) when it has one. ``P`` is 1 unless ``SimulationSpec.primary_beam``
is on: then it is the VLA primary beam (primary_beam.py) at the source in each channel, the
source fluxes are intrinsic and the truth records the apparent ones too.
DATA = model + complex Gaussian noise of ``noise`` Jy rms in each of the real and imaginary parts
of every correlation; WEIGHT = 1/noise^2 and SIGMA = noise (1 and 1 when noise is 0). Parallel
hands carry Stokes I (RR = LL = I, XX = YY = I), cross hands 0 + noise.

Hour angles use the local *mean* sidereal time (astropy, UT1 from its bundled IERS-B table) at
the VLA longitude; the phase centre is J2000 and precession and nutation are ignored, so the
geometry is exact for the UVW it writes (what imaging uses), not an astrometric model.

Source positions are given as an offset (l, m) in direction cosines (east, north), as J2000
(ra, dec), or as a pixel offset from the centre pixel of the truth image geometry (FITS: x grows
to the WEST, y to the north, 0-based pixel (N/2, N/2) at the phase centre, SIN projection).
"""
# ruff: noqa: E741  (l, m: the standard names of the direction cosines)

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from htclean.imaging.errors import InputError
from htclean.imaging.ms import msinfo, mswrite
from htclean.imaging.simulation import vla
from htclean.imaging.simulation.disk import Disk
from htclean.imaging.simulation.sky import (  # noqa: F401  (re-exported: callers import them from here)
    C_LIGHT,
    Line,
    format_position,
    model_visibilities,
    parse_position,
    resolve_sources,
)

SIDEREAL_RATE = 1.002737909350795  # sidereal seconds per UT1 second
_ASEC = math.pi / 180.0 / 3600.0


@dataclass(frozen=True)
class Source:
    """One sky component. Give exactly one position: ``offset`` (l, m) direction cosines,
    ``radec`` (J2000, rad), or ``pixel_offset`` (dx, dy) pixels from the phase-centre pixel of
    the truth geometry. flux: Jy at the reference frequency; major/minor: Gaussian FWHM (rad);
    pa: position angle of the major axis, east of north (rad); line: a Gaussian spectral line
    (sky.Line) added to the continuum spectrum (flux 0: a line source alone); disk: a
    rotating disk of line emission centred on the source (disk.Disk), added likewise."""

    flux: float
    offset: tuple[float, float] | None = None
    radec: tuple[float, float] | None = None
    pixel_offset: tuple[float, float] | None = None
    spectral_index: float = 0.0
    shape: str = "point"
    major: float = 0.0
    minor: float = 0.0
    pa: float = 0.0
    name: str = ""
    line: Line | None = None
    disk: Disk | None = None

    def __post_init__(self):
        given = [p for p in (self.offset, self.radec, self.pixel_offset) if p is not None]
        label = f"source {self.name!r}" if self.name else "a source"
        if len(given) != 1:
            raise InputError(f"{label} needs exactly one of offset, position (RA/Dec) or "
                             f"pixel_offset; got {len(given)}")
        values = (self.flux, self.spectral_index, self.major, self.minor, self.pa, *given[0])
        if not all(math.isfinite(float(v)) for v in values):
            raise InputError(f"{label} has a value that is not a finite number")
        if self.shape not in ("point", "gaussian"):
            raise InputError(f"{label}: shape must be point or gaussian, got {self.shape!r}")
        if self.shape == "gaussian" and not self.major >= self.minor > 0:
            raise InputError(f"{label}: a Gaussian needs major >= minor > 0")
        if self.line is not None and not isinstance(self.line, Line):
            raise InputError(f"{label}: line must be a Line (peak, centre, fwhm)")
        if self.disk is not None and not isinstance(self.disk, Disk):
            raise InputError(f"{label}: disk must be a Disk (disk.py)")


# The demo sky: point sources at pixel centres, inside the half-power radius of the primary
# beam and inside the central 128 x 128 pixels of the truth image. Flat spectra, so an MFS
# CLEAN recovers the fluxes exactly.
DEMO_SOURCES = (
    Source(1.0, pixel_offset=(0, 0), name="S1"),
    Source(0.25, pixel_offset=(-37, 22), name="S2"),
    Source(0.08, pixel_offset=(41, 35), name="S3"),
    Source(0.03, pixel_offset=(18, -47), name="S4"),
    Source(0.012, pixel_offset=(-52, -29), name="S5"),
    Source(0.005, pixel_offset=(-11, 53), name="S6"),
    Source(0.04, pixel_offset=(55, -8), name="S7"),
    Source(0.007, pixel_offset=(-24, -55), name="S8"),
)


@dataclass(frozen=True)
class SimulationSpec:
    """Everything about a simulated observation; ``SimulationSpec()`` is the demo.

    ra, dec: J2000 phase centre (rad); date: UTC date (YYYY-MM-DD) of the transit; freq0: first
    channel centre (Hz); chan_width (Hz); integration (s); hour_angle_h: (start, end) hour
    angles in hours; noise: Jy rms per real/imaginary part of each visibility; flag_fraction:
    fraction of samples (row, channel, correlation) flagged at random; ref_freq: the sources'
    reference frequency (Hz; None = band centre); image_size, cell (rad): truth geometry
    (None = the suggested size and cell); primary_beam: attenuate the sources by the VLA
    primary beam (off: the demo's apparent fluxes); block_visibilities: samples per write block.
    """

    configuration: str = "D"
    ra: float = 150.0 * math.pi / 180.0
    dec: float = 40.0 * math.pi / 180.0
    date: str = "2024-03-20"
    freq0: float = 1.4e9
    nchan: int = 4
    chan_width: float = 16e6
    integration: float = 600.0
    hour_angle_h: tuple[float, float] = (-1.5, 1.5)
    correlations: tuple[str, ...] = ("RR", "LL")
    sources: tuple[Source, ...] = DEMO_SOURCES
    noise: float = 0.02
    seed: int = 1
    flag_fraction: float = 0.0
    ref_freq: float | None = None
    image_size: int | None = None
    cell: float | None = None
    field_name: str = "HTCLEAN_SIM"
    primary_beam: bool = False
    block_visibilities: int = field(default=4_000_000, compare=False)

    @classmethod
    def demo(cls) -> SimulationSpec:
        """The demo observation: VLA D, 3 h around transit, 4 x 16 MHz at 1.4 GHz, RR LL."""
        return cls()

    def __post_init__(self):
        object.__setattr__(self, "configuration", str(self.configuration).upper())
        object.__setattr__(self, "correlations", tuple(c.upper() for c in self.correlations))
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "hour_angle_h", tuple(float(h) for h in self.hour_angle_h))
        checks = [
            (self.configuration in vla.CONFIGURATIONS, "configuration must be A, B, C or D"),
            (-math.pi / 2 <= self.dec <= math.pi / 2, "dec must be within +-90 deg"),
            (self.freq0 > 0 and self.chan_width > 0, "frequency and channel width must be > 0"),
            (isinstance(self.nchan, int) and self.nchan >= 1, "nchan must be an integer >= 1"),
            (self.integration > 0, "integration time must be > 0"),
            (len(self.hour_angle_h) == 2 and -12 <= self.hour_angle_h[0] <= self.hour_angle_h[1]
             <= 12, "hour angle range must be start <= end within -12h..12h"),
            (self.correlations in mswrite.CORRELATION_SETS,
             "correlations must be one of " + ", ".join(
                 " ".join(s) for s in mswrite.CORRELATION_SETS)),
            (self.noise >= 0 and math.isfinite(self.noise), "noise must be >= 0"),
            (0 <= self.flag_fraction < 1, "flag fraction must be in [0, 1)"),
            (self.ref_freq is None or self.ref_freq > 0, "reference frequency must be > 0"),
            (self.image_size is None or (self.image_size >= 16 and self.image_size % 2 == 0),
             "image size must be even and >= 16"),
            (self.cell is None or self.cell > 0, "cell must be > 0"),
            (len(self.sources) > 0, "there must be at least one source"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)

    def frequencies(self) -> np.ndarray:
        """Channel centres (nchan,) float64 Hz."""
        return self.freq0 + self.chan_width * np.arange(self.nchan)

    def reference_frequency(self) -> float:
        freq = self.frequencies()
        return float(self.ref_freq) if self.ref_freq else float(0.5 * (freq[0] + freq[-1]))


# --- time and geometry --------------------------------------------------------------------


def _sidereal_hours(mjd_seconds: np.ndarray) -> np.ndarray:
    """Local mean sidereal time (hours) at the VLA of UTC times given in MJD seconds.

    UT1 comes from astropy's bundled IERS-B table, never downloaded; past its end astropy
    extrapolates (silently here: the simulated UVW and data stay consistent either way)."""
    import warnings

    from astropy.coordinates import Angle
    from astropy.time import Time
    from astropy.utils import iers

    try:
        with iers.conf.set_temp("auto_download", False), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = Time(np.asarray(mjd_seconds) / 86400.0, format="mjd", scale="utc")
            return np.asarray(t.sidereal_time("mean", longitude=Angle(vla.SITE_LONGITUDE,
                                                                      "rad")).hour)
    except (iers.IERSRangeError, ValueError) as exc:
        raise InputError(f"cannot compute sidereal time for the observation date: {exc}") from None


def observation_times(spec: SimulationSpec) -> tuple[np.ndarray, np.ndarray]:
    """Integration midpoints (ntime,) MJD seconds UTC, centred on the middle of the hour-angle
    range, and the phase centre's local hour angle (ntime,) rad at each."""
    import warnings

    from astropy.time import Time

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            day = Time(f"{spec.date}T00:00:00", format="isot", scale="utc").mjd * 86400.0
    except ValueError:
        raise InputError(f"date {spec.date!r} is not a date like 2024-03-20") from None
    h0, h1 = spec.hour_angle_h
    lst0 = _sidereal_hours(np.array([day]))[0]
    target = math.degrees(spec.ra) / 15.0 + 0.5 * (h0 + h1)
    mid = round(day + ((target - lst0) % 24.0) / SIDEREAL_RATE * 3600.0)
    ntime = max(1, round((h1 - h0) * 3600.0 / SIDEREAL_RATE / spec.integration))
    times = mid + (np.arange(ntime) - (ntime - 1) / 2.0) * spec.integration
    hour_angle = np.radians(_sidereal_hours(times) * 15.0) - spec.ra
    return times, (hour_angle + math.pi) % (2 * math.pi) - math.pi


def suggested_geometry(spec: SimulationSpec, hour_angle: np.ndarray) -> tuple[float, int]:
    """(cell rad, size) that ``htclean inspect`` will suggest for this observation."""
    _, _, positions = vla.antennas(spec.configuration)
    a1, a2 = vla.baseline_pairs(len(positions))
    uv_max = 0.0
    for start in range(0, len(hour_angle), 256):
        uvw = vla.uvw(positions, a1, a2, hour_angle[start:start + 256], spec.dec)
        uv_max = max(uv_max, float(np.sqrt(uvw[:, 0] ** 2 + uvw[:, 1] ** 2).max()))
    freq = spec.frequencies()
    cell = msinfo.suggest_cell(uv_max * freq[-1] / C_LIGHT)
    return cell, msinfo.suggest_size(cell, float(freq[0]), vla.DISH_DIAMETER)


# --- the simulator ------------------------------------------------------------------------


def _truth_document(spec: SimulationSpec, path: str, times: np.ndarray, size: int, cell: float,
                    suggested: tuple[float, int], sources: list[dict]) -> dict:
    nant = len(vla.CONFIGURATIONS[spec.configuration])
    rows = len(times) * nant * (nant - 1) // 2
    obs = {
        "telescope": vla.TELESCOPE_NAME, "configuration": spec.configuration,
        "date": spec.date, "time_start": float(times[0] - spec.integration / 2),
        "time_end": float(times[-1] + spec.integration / 2), "times": len(times),
        "integration": spec.integration, "hour_angle_h": list(spec.hour_angle_h),
        "freq0": spec.freq0, "nchan": spec.nchan, "chan_width": spec.chan_width,
        "correlations": list(spec.correlations), "noise": spec.noise, "seed": spec.seed,
        "flag_fraction": spec.flag_fraction, "rows": rows,
        "visibilities": rows * spec.nchan * len(spec.correlations),
    }
    return {
        "ms": os.path.basename(os.path.normpath(path)),
        "units": "angles rad (pa deg), flux (intrinsic) and apparent_flux Jy at "
                 "reference_frequency, frequencies Hz, "
                 "times MJD seconds UTC",
        "phase_centre": {"ra": spec.ra, "dec": spec.dec,
                         "position": format_position(spec.ra, spec.dec)},
        "reference_frequency": spec.reference_frequency(),
        "primary_beam": {"applied": bool(spec.primary_beam),
                         "model": "VLA, EVLA Memo 195 (Perley 2016) polynomial per band",
                         "pointing": "the phase centre"},
        "image": {"size": size, "cell": cell, "cell_asec": cell / _ASEC,
                  "convention": "FITS 0-based pixel (x, y): x grows to the west, y to the "
                                "north, phase centre at (size/2, size/2), SIN projection"},
        "suggested": {"cell": suggested[0], "size": suggested[1]},
        "observation": obs,
        "sources": sources,
    }


def _write_json(path: str, document: dict) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(document, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def simulate(path: str, spec: SimulationSpec, *, force: bool = False,
             command: Sequence[str] = ()) -> dict:
    """Write the MeasurementSet ``path`` and ``path + '.sources.json'``; return the truth.

    The MS is built under a temporary name beside ``path`` and renamed into place; an existing
    ``path`` is an InputError unless ``force``. ``command`` goes to the HISTORY subtable.
    """
    path = os.path.normpath(os.fspath(path))
    if os.path.lexists(path) and not force:
        raise InputError(f"{path} exists; use --force to overwrite it")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise InputError(f"directory {parent} does not exist")

    times, hour_angle = observation_times(spec)
    suggested = suggested_geometry(spec, hour_angle)
    size = spec.image_size or suggested[1]
    cell = spec.cell or suggested[0]
    sources = resolve_sources(spec, size, cell)
    truth = _truth_document(spec, path, times, size, cell, suggested, sources)

    tmp = os.path.join(parent, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_ms(tmp, spec, times, hour_angle, sources, truth, command)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if os.path.lexists(path):  # --force: move the old one aside, then remove it
        old = os.path.join(parent, f".{os.path.basename(path)}.old-{os.getpid()}")
        os.replace(path, old)
        os.replace(tmp, path)
        if os.path.isdir(old):
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.remove(old)
    else:
        os.replace(tmp, path)
    _write_json(path + ".sources.json", truth)
    return truth


def _write_ms(tmp: str, spec: SimulationSpec, times: np.ndarray, hour_angle: np.ndarray,
              sources: list[dict], truth: dict, command: Sequence[str]) -> None:
    names, stations, positions = vla.antennas(spec.configuration)
    a1, a2 = vla.baseline_pairs(len(names))
    nbl, ncorr, freq = len(a1), len(spec.correlations), spec.frequencies()
    nrows = truth["observation"]["rows"]
    parallel = [i for i, c in enumerate(spec.correlations) if c[0] == c[1]]
    sigma = spec.noise if spec.noise > 0 else 1.0
    noise_rng, flag_rng = (np.random.default_rng(s)
                           for s in np.random.SeedSequence(spec.seed).spawn(2))
    obs = truth["observation"]
    main = mswrite.create_main(tmp, nrows, spec.nchan, ncorr)
    try:
        per_time = nbl * spec.nchan * ncorr
        step = max(1, spec.block_visibilities // per_time)
        for t0 in range(0, len(times), step):
            t = slice(t0, min(t0 + step, len(times)))
            n = (t.stop - t.start) * nbl
            uvw = vla.uvw(positions, a1, a2, hour_angle[t], spec.dec)
            model = model_visibilities(uvw, freq, sources, truth["reference_frequency"],
                                       primary_beam=spec.primary_beam)
            data = np.zeros((n, spec.nchan, ncorr), np.complex128)
            data[:, :, parallel] = model[:, :, None]
            if spec.noise > 0:
                draw = noise_rng.standard_normal((n, spec.nchan, ncorr, 2))
                data += spec.noise * (draw[..., 0] + 1j * draw[..., 1])
            flag = (flag_rng.random((n, spec.nchan, ncorr)) < spec.flag_fraction
                    if spec.flag_fraction > 0 else np.zeros(data.shape, bool))
            mswrite.write_rows(
                main, t.start * nbl, time=np.repeat(times[t], nbl), interval=spec.integration,
                ant1=np.tile(a1, t.stop - t.start), ant2=np.tile(a2, t.stop - t.start),
                uvw=uvw, data=data, flag=flag, weight=np.full((n, ncorr), 1.0 / sigma**2),
                sigma=np.full((n, ncorr), sigma))
    finally:
        main.close()
    mswrite.write_antennas(tmp, names, stations, positions, vla.DISH_DIAMETER)
    mswrite.write_spectral_window(tmp, freq, spec.chan_width, f"{spec.nchan}CH-SIM")
    mswrite.write_polarization(tmp, spec.correlations)
    mswrite.write_feeds(tmp, len(names), "RL" if spec.correlations[0][0] in "RL" else "XY",
                        float(times[0]), obs["time_end"] - obs["time_start"])
    mswrite.write_field(tmp, spec.field_name, spec.ra, spec.dec, float(times[0]),
                        obs["time_end"] - obs["time_start"])
    message = (f"htclean simulate: VLA {spec.configuration}, {len(sources)} sources, "
               f"noise {spec.noise:g} Jy, seed {spec.seed}")
    mswrite.write_observation(tmp, vla.TELESCOPE_NAME, (obs["time_start"], obs["time_end"]),
                              "htclean-simulation", message, command)

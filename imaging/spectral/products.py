"""The products of a spectral-line cube: moment maps, a channel-map preview and a summary.

``write_moments`` reads the restored cube (as ``fitscube.write_cube`` writes it) and writes
``NAME-mom0.fits`` (integrated intensity, BUNIT ``Jy beam-1 km s-1``) and ``NAME-mom1.fits``
(intensity-weighted radio velocity, BUNIT ``km s-1``) through ``moments.moments``: a voxel
counts when it is above ``clip_sigma`` x its channel's robust noise (1.4826 MAD of the plane).
Both maps are images as ``fits.write_fits`` writes them ((1, 1, ny, nx) float32) with the
cube's sky axes, so the celestial WCS is the cube's; their FREQ axis is the cube's centre and
span, with the cube's SPECSYS and RESTFRQ (what the velocities refer to). CASA's immoments
writes ``Jy/beam.km/s``, which a strict FITS unit parser (astropy) reads as Jy / (beam km s):
the unit here is the FITS-standard spelling of Jy/beam x km/s.

``channel_preview`` (cubepreview.py) draws the channel maps and the brightest spectrum;
``cube_summary`` writes NAME-summary.json with one entry per channel (``channel_entry``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from htclean.imaging import fits, fitscube
from htclean.imaging.beams.beam import Beam
from htclean.imaging.errors import InputError
from htclean.imaging.noise import robust_sigma
from htclean.imaging.spectral import moments as mom
from htclean.imaging.spectral.cubepreview import channel_preview  # noqa: F401  (re-exported)

MOM0_UNIT = "Jy beam-1 km s-1"
MOM1_UNIT = "km s-1"
ASEC = math.pi / 180 / 3600
ROWS = 64  # write_moments works on this many image rows of every channel at a time
# NAME-summary.json: every channel entry has these keys (``channel_entry`` documents them)
SUMMARY_KEYS = ("channel", "frequency_hz", "velocity_kms", "beam", "noise_jy", "peak_jy",
                "cycles", "iterations")
SUMMARY_UNITS = {"frequency_hz": "Hz", "velocity_kms": "km/s, radio convention (null "
                 "without a rest frequency)", "beam": "bmaj_asec, bmin_asec arcsec FWHM, "
                 "bpa_deg deg East of North (null: nothing to fit)",
                 "noise_jy": "Jy/beam, 1.4826 MAD of the restored plane",
                 "peak_jy": "Jy/beam, the restored plane's largest pixel"}


def plane_noise(cube: np.ndarray) -> np.ndarray:
    """Robust noise (nchan,) of each plane of ``cube`` (nchan, ny, nx); inf for a plane with no
    finite pixel (a flagged channel written as NaN), so none of its voxels passes a clip."""
    return np.array([robust_sigma(p) if np.isfinite(p).any() else np.inf for p in cube])


def moment_beam(cube: fitscube.Cube) -> Beam | None:
    """The beam a moment map carries: the cube's common beam, else the largest-area beam of
    its per-channel beams (None when it has none)."""
    if cube.beam is not None:
        return cube.beam
    beams = [b for b in cube.beams or () if b is not None]
    return max(beams, key=lambda b: b.bmaj * b.bmin) if beams else None


def write_moments(image_cube: Path, out_dir: Path, name: str,
                  clip_sigma: float = 5.0) -> list[Path]:
    """Write ``out_dir/NAME-mom0.fits`` and ``NAME-mom1.fits`` of the cube ``image_cube``
    (module docstring) and return their paths. InputError when the cube has no RESTFRQ (a
    velocity needs ``image.rest_frequency``), fewer than 2 channels or a bad ``clip_sigma``."""
    cube = fitscube.read_cube(image_cube, dtype=np.float32)
    if cube.rest_freq is None:
        raise InputError(f"{image_cube}: no RESTFRQ in its header; moment maps are in radio "
                         "velocity and need the line's rest frequency (image.rest_frequency)")
    noise = plane_noise(cube.data)
    mom0, mom1 = np.empty((2, *cube.geom.shape), np.float32)
    for y in range(0, cube.geom.ny, ROWS):  # moments' float64 temporaries a block at a time
        m = mom.moments(cube.data[:, y:y + ROWS], cube.freq, cube.rest_freq, clip=clip_sigma,
                        noise=noise)
        mom0[y:y + ROWS], mom1[y:y + ROWS] = m.mom0, m.mom1
    beam = moment_beam(cube)
    history = [f"htclean moments of {Path(image_cube).name}: voxels above {clip_sigma:g} x "
               "the channel's robust noise", f"rest frequency {cube.rest_freq:.9g} Hz, radio "
               "velocity, moment 0 = sum S |dv|, moment 1 = sum S v |dv| / moment 0"]
    out = Path(out_dir)
    paths = [out / f"{name}-mom0.fits", out / f"{name}-mom1.fits"]
    for path, image, unit in zip(paths, (mom0, mom1), (MOM0_UNIT, MOM1_UNIT),
                                 strict=True):
        write_map(path, image, cube, beam=beam, bunit=unit, history=history)
    return paths


def write_map(path: Path, image: np.ndarray, cube: fitscube.Cube, *, beam: Beam | None,
              bunit: str, history: Sequence[str] = ()) -> None:
    """Write ``image`` (ny, nx) atomically as ``fits.write_fits`` writes an image, with the
    cube's geometry (its FREQ axis the cube's centre and span), SPECSYS and RESTFRQ."""
    from astropy.io import fits as afits

    if np.shape(image) != cube.geom.shape:
        raise InputError(f"map has shape {np.shape(image)}, the cube's planes {cube.geom.shape}")
    header = fits.header_for(cube.geom, beam=beam, bunit=bunit, history=history)
    header["SPECSYS"] = (cube.specsys, "spectral reference frame")
    if cube.rest_freq is not None:
        header["RESTFRQ"] = (float(cube.rest_freq), "rest frequency (Hz)")
    data = np.asarray(image, dtype=np.float32)[None, None]
    fits.write_hdus_atomic([afits.PrimaryHDU(data, header)], path)


def beam_entry(beam: Beam | dict | None) -> dict[str, float] | None:
    """A beam as the summary writes it: {bmaj_asec, bmin_asec, bpa_deg} (or None)."""
    if beam is None:
        return None
    if isinstance(beam, Beam):
        return {"bmaj_asec": beam.bmaj / ASEC, "bmin_asec": beam.bmin / ASEC,
                "bpa_deg": float(beam.bpa)}
    try:
        return {k: float(beam[k]) for k in ("bmaj_asec", "bmin_asec", "bpa_deg")}
    except (KeyError, TypeError, ValueError):
        raise InputError(f"a channel's beam must be a Beam, None or a dict with bmaj_asec, "
                         f"bmin_asec, bpa_deg; got {beam!r}") from None


def channel_entry(channel: int, frequency: float, *, rest_freq: float | None,
                  beam: Beam | dict | None, noise: float, peak: float, cycles: int,
                  iterations: int, **extra: Any) -> dict[str, Any]:
    """One channel of NAME-summary.json, with the keys ``SUMMARY_KEYS``:

    channel (0-based index in the cube), frequency_hz, velocity_kms (radio velocity about
    ``rest_freq``; None without one), beam (``beam_entry``), noise_jy (Jy/beam, robust),
    peak_jy (Jy/beam; noise and peak None where not finite: a flagged channel), cycles
    (major cycles run), iterations (CLEAN components subtracted);
    ``extra`` keys (e.g. stop_reason) are kept as given (JSON values)."""
    return {"channel": int(channel), "frequency_hz": float(frequency),
            "velocity_kms": _velocity(frequency, rest_freq),
            "beam": beam_entry(beam), "noise_jy": _number(noise), "peak_jy": _number(peak),
            "cycles": int(cycles), "iterations": int(iterations), **extra}


def _velocity(frequency: float, rest_freq: float | None) -> float | None:
    if rest_freq is None:
        return None
    return float(mom.radio_velocity(np.array([frequency]), rest_freq)[0])


def from_channel_summary(entry: dict[str, Any], rest_freq: float | None) -> dict[str, Any]:
    """An entry given as a channel's own mfs NAME-summary.json (restore's: ``image`` holds
    ``peak`` and ``robust_sigma``) with ``channel`` and ``frequency_hz`` added, completed:
    peak_jy and noise_jy from its image statistics, velocity_kms from ``rest_freq``. An
    entry that has every key of SUMMARY_KEYS is returned as it is."""
    stats = entry.get("image")
    if all(k in entry for k in SUMMARY_KEYS) or not isinstance(stats, dict):
        return entry
    out = dict(entry)
    out.setdefault("peak_jy", stats.get("peak"))
    out.setdefault("noise_jy", stats.get("robust_sigma"))
    if "velocity_kms" not in out and "frequency_hz" in out:
        out["velocity_kms"] = _velocity(float(out["frequency_hz"]), rest_freq)
    return out


def _checked(entry: Any, i: int, rest_freq: float | None) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise InputError(f"cube summary: channel entry {i} is not a dict: {entry!r}")
    entry = from_channel_summary(entry, rest_freq)
    missing = [k for k in SUMMARY_KEYS if k not in entry]
    if missing:
        raise InputError(f"cube summary: channel entry {i} lacks {', '.join(missing)}")
    out = dict(entry)
    out.update(channel=int(entry["channel"]), frequency_hz=float(entry["frequency_hz"]),
               velocity_kms=_number(entry["velocity_kms"]), beam=beam_entry(entry["beam"]),
               noise_jy=_number(entry["noise_jy"]), peak_jy=_number(entry["peak_jy"]),
               cycles=int(entry["cycles"]), iterations=int(entry["iterations"]))
    return out


def _number(value: Any) -> float | None:
    """A float, or None for None, NaN or inf (a flagged channel: JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def cube_summary(per_channel: Sequence[dict], path: Path, *,
                 rest_freq: float | None = None) -> Path:
    """Write NAME-summary.json of a cube atomically and return ``path``: ``{"name", "mode":
    "cube", "nchan", "rest_frequency_hz", "units", "channels": [entry per channel]}``, each
    entry with the keys ``SUMMARY_KEYS`` (``channel_entry``; numpy numbers become JSON
    numbers, a Beam becomes its dict), or a channel's mfs summary with channel and
    frequency_hz (``from_channel_summary``; ``rest_freq`` Hz gives it velocities). InputError
    naming the entry when a key is missing."""
    channels = [_checked(e, i, rest_freq) for i, e in enumerate(per_channel)]
    name = Path(path).name.removesuffix(".json").removesuffix("-summary")
    document = {"name": name, "mode": "cube", "nchan": len(channels),
                "rest_frequency_hz": None if rest_freq is None else float(rest_freq),
                "units": SUMMARY_UNITS, "channels": channels}
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
        os.replace(tmp, target)
    except ValueError as exc:
        raise InputError(f"cube summary: a value is not JSON ({exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def read_summary(path: Path) -> list[dict[str, Any]]:
    """The channel entries of a NAME-summary.json written by ``cube_summary``."""
    try:
        return list(json.loads(Path(path).read_text())["channels"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a cube summary: {exc}") from None

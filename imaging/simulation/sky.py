"""The simulated sky: source positions and truth, and the exact visibilities of the sources.

Visibilities follow the MS convention of DESIGN.md,
``V = sum S (f/f_ref)^alpha P(r, f) exp(+2 pi i (u l + v m + w (n - 1)))`` with (u, v, w) =
UVW f / c, times each Gaussian's visibility-plane taper. ``P`` is the VLA primary beam
(primary_beam.py, EVLA Memo 195) at the source's distance r from the phase centre (the pointing
centre) in each channel when the primary beam is on, else 1: fluxes are then apparent.
"""
# ruff: noqa: E741  (l, m: the standard names of the direction cosines)

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from htclean.imaging.beams import primary_beam
from htclean.imaging.errors import InputError
from htclean.imaging.geometry import lm_to_radec, radec_to_lm
from htclean.imaging.simulation import disk
from htclean.imaging.spectral.moments import C_KMS, radio_velocity

C_LIGHT = 299792458.0  # m/s
_GAUSS = math.pi**2 / (4.0 * math.log(2.0))  # FWHM^2 -> visibility taper exponent factor


@dataclass(frozen=True)
class Line:
    """A Gaussian spectral line: ``peak`` Jy at ``centre`` Hz, ``fwhm`` Hz; ``rest_frequency``
    (Hz, optional) only labels the truth with radio velocities (spectral.moments)."""

    peak: float
    centre: float
    fwhm: float
    rest_frequency: float | None = None

    def __post_init__(self):
        if not all(math.isfinite(float(v)) for v in (self.peak, self.centre, self.fwhm)):
            raise InputError("a line needs finite peak, centre and fwhm")
        if not (self.centre > 0 and self.fwhm > 0):
            raise InputError(f"a line needs centre > 0 Hz and fwhm > 0 Hz, got centre "
                             f"{self.centre!r}, fwhm {self.fwhm!r}")
        if self.rest_frequency is not None and not (math.isfinite(self.rest_frequency)
                                                    and self.rest_frequency > 0):
            raise InputError(f"a line's rest frequency must be > 0 Hz, got "
                             f"{self.rest_frequency!r}")

    def profile(self, freq: Any) -> np.ndarray:
        """The line's flux (nchan,) Jy at frequencies ``freq`` Hz."""
        f = np.asarray(freq, dtype=np.float64)
        return self.peak * np.exp(-4.0 * math.log(2.0) * ((f - self.centre) / self.fwhm) ** 2)

    def truth(self, freq: Any) -> dict:
        """The truth JSON's ``line``: peak, centre, fwhm, the flux per channel ``freq``, and,
        with a rest frequency, the centre's radio velocity and the FWHM in km/s."""
        out = {"peak": float(self.peak), "centre_frequency": float(self.centre),
               "fwhm": float(self.fwhm), "channel_flux": self.profile(freq).tolist()}
        if self.rest_frequency is not None:
            out.update(rest_frequency=float(self.rest_frequency),
                       velocity=float(radio_velocity(self.centre, self.rest_frequency)),
                       fwhm_kms=self.fwhm / self.rest_frequency * C_KMS)
        return out


def beam_attenuation(l: float, m: float, freq: Any) -> np.ndarray:
    """The VLA primary beam (nchan,) float64 at direction cosines (l, m) from the pointing
    centre in each channel ``freq`` (Hz)."""
    r = math.asin(min(1.0, math.hypot(l, m)))
    return np.array([float(primary_beam.radial(r, float(f))) for f in np.ravel(freq)])


def parse_position(text: str) -> tuple[float, float]:
    """J2000 (ra, dec) in rad from '10h00m00s +40d00m00s', '10:00:00 +40:00:00' or degrees."""
    from astropy.coordinates import SkyCoord

    try:
        c = SkyCoord(str(text), frame="icrs", unit=("hourangle", "deg"))
    except Exception:  # astropy raises several types for an unparsable position
        raise InputError(f"{text!r} is not a sky position like '10h00m00s +40d00m00s'") from None
    return float(c.ra.rad), float(c.dec.rad)


def format_position(ra: float, dec: float) -> str:
    """'hh:mm:ss.sss +dd:mm:ss.ss' of a J2000 position in rad."""
    from astropy.coordinates import Angle

    return (Angle(ra, "rad").wrap_at("360d").to_string("hourangle", sep=":", precision=3,
                                                       pad=True) + " "
            + Angle(dec, "rad").to_string("deg", sep=":", precision=2, alwayssign=True,
                                          pad=True))


def resolve_sources(spec: Any, size: int, cell: float) -> list[dict]:
    """The truth of every source: name, shape, flux (intrinsic, Jy at the reference frequency),
    spectral index, ra/dec (rad) and position text, l/m, FITS pixel x/y in the (size, cell)
    geometry, major/minor (rad FWHM), pa (deg); primary_beam (the beam at the reference
    frequency; 1 when ``spec.primary_beam`` is off), apparent_flux (flux x primary_beam) and
    intrinsic_flux (= flux); ``line`` and ``disk`` (disk.Disk.truth) per channel where the
    source has one."""
    centre = size / 2.0
    ref = spec.reference_frequency()
    beam = getattr(spec, "primary_beam", False)
    truth = []
    for i, s in enumerate(spec.sources):
        if s.pixel_offset is not None or s.offset is not None:
            if s.pixel_offset is not None:
                l, m = -s.pixel_offset[0] * cell, s.pixel_offset[1] * cell
            else:
                l, m = float(s.offset[0]), float(s.offset[1])
            if l * l + m * m >= 1:
                raise InputError(f"source {s.name or i + 1}: offset (l, m) = ({l:g}, {m:g}) is "
                                 "beyond the horizon of the phase centre")
            ra, dec = lm_to_radec(l, m, spec.ra, spec.dec)
        else:
            ra, dec = float(s.radec[0]), float(s.radec[1])
            l, m = radec_to_lm(ra, dec, spec.ra, spec.dec)
            if l * l + m * m >= 1:
                raise InputError(f"source {s.name or i + 1} is below the horizon of the field")
        truth.append({
            "name": s.name or f"S{i + 1}", "shape": s.shape, "flux": float(s.flux),
            "spectral_index": float(s.spectral_index), "ra": ra, "dec": dec,
            "position": format_position(ra, dec), "l": l, "m": m,
            "x": round(centre - l / cell, 9), "y": round(centre + m / cell, 9),
            "major": float(s.major), "minor": float(s.minor), "pa": math.degrees(s.pa),
        })
        pb = float(beam_attenuation(l, m, ref)[0]) if beam else 1.0
        truth[-1].update(primary_beam=pb, intrinsic_flux=float(s.flux),
                         apparent_flux=float(s.flux) * pb)
        if getattr(s, "line", None) is not None:
            freq = spec.frequencies()
            line = s.line.truth(freq)
            line["frequencies"] = freq.tolist()
            if beam:
                line["apparent_channel_flux"] = (s.line.profile(freq)
                                                 * beam_attenuation(l, m, freq)).tolist()
            truth[-1]["line"] = line
        if getattr(s, "disk", None) is not None:
            truth[-1]["disk"] = s.disk.truth(spec.frequencies(), l, m, cell, size,
                                             beam_attenuation if beam else None)
    return truth


def _phasor(tau: np.ndarray, freq: np.ndarray) -> np.ndarray:
    """exp(2 pi i tau f / c) as (n, nchan) complex128 for delays tau (n,) in metres; uniform
    channels use a running product along frequency (2 exponentials per row)."""
    k = 2.0 * math.pi / C_LIGHT
    step = np.diff(freq)
    if len(freq) > 2 and np.allclose(step, step[0], rtol=1e-12, atol=0):
        out = np.empty((len(tau), len(freq)), np.complex128)
        out[:, 0] = np.exp(1j * k * freq[0] * tau)
        out[:, 1:] = np.exp(1j * k * step[0] * tau)[:, None]
        return np.cumprod(out, axis=1, out=out)
    return np.exp(1j * k * np.outer(tau, freq))


def model_visibilities(uvw: np.ndarray, freq: np.ndarray, truth: Sequence[dict],
                       ref_freq: float, *, primary_beam: bool = False) -> np.ndarray:
    """Noise-free Stokes I visibilities (nrow, nchan) complex128 of the truth sources.

    uvw: (nrow, 3) metres; freq: (nchan,) Hz; truth: entries of ``resolve_sources`` (their
    intrinsic ``flux``); primary_beam: attenuate each source by the VLA primary beam at its
    position in each channel (``beam_attenuation``). A source's ``disk`` (disk.py) adds its
    elements as point sources.
    """
    vis = np.zeros((len(uvw), len(freq)), np.complex128)
    u, v, w = uvw[:, 0], uvw[:, 1], uvw[:, 2]
    for s in truth:
        l, m = s["l"], s["m"]
        n = math.sqrt(1.0 - l * l - m * m)
        term = _phasor(u * l + v * m + w * (n - 1.0), freq)
        spectrum = s["flux"] * (freq / ref_freq) ** s["spectral_index"]
        if s.get("line"):
            line = s["line"]
            spectrum = spectrum + Line(line["peak"], line["centre_frequency"],
                                       line["fwhm"]).profile(freq)
        if primary_beam:
            spectrum = spectrum * beam_attenuation(l, m, freq)
        term *= spectrum
        if s["shape"] == "gaussian":
            pa = math.radians(s["pa"])
            u_major = u * math.sin(pa) + v * math.cos(pa)
            u_minor = u * math.cos(pa) - v * math.sin(pa)
            q = _GAUSS * (s["major"] ** 2 * u_major**2 + s["minor"] ** 2 * u_minor**2)
            term *= np.exp(-np.outer(q, (freq / C_LIGHT) ** 2))
        vis += term
        if s.get("disk"):
            vis += disk.visibilities(uvw, freq, disk.from_truth(s["disk"]), l, m, _phasor,
                                     beam_attenuation if primary_beam else None)
    return vis



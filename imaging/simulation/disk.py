"""A rotating disk of line emission for the simulator: a thin uniform disk in solid-body
rotation, sampled as point components.

The disk is circular in its own plane (radius R on the sky along the major axis), tilted by
``inclination`` (0 face-on) so that it is an ellipse of axes R and R cos i with its major
axis at position angle ``pa`` (East of North; that half recedes). In solid-body rotation an
element at (x, y) R in the disk plane (x along the major axis) has the radio velocity
``velocity + rotation sin(i) x``: iso-velocity lines cross the major axis at right angles and
each channel's emission is a strip of the disk, so the per-channel flux centroid walks along
the major axis, from the approaching half (low velocity) to the receding half. Every element
has a Gaussian line of FWHM ``dispersion`` km/s, normalised in velocity so that the disk's
line integrates to ``flux`` Jy km/s; as ``sky.Line`` its flux density is sampled at the
channel centres (no channel averaging).

The disk is ``samples`` x ``samples`` cells of the disk plane across its diameter; the cells
whose centres lie inside the circle are the elements (equal flux). The truth per channel
(``Disk.truth``) is computed from the same elements as the visibilities, so it is exact for
the data; the elements approximate the continuous disk to about 1/samples of R.
"""
# ruff: noqa: E741  (l, m: the standard names of the direction cosines)

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from htclean.imaging.errors import InputError
from htclean.imaging.spectral.moments import radio_velocity

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class Disk:
    """A rotating disk (module docstring): flux Jy km/s (the whole line), velocity (systemic,
    radio, km/s), rest_frequency Hz, radius rad (on the sky), inclination rad in [0, 90 deg),
    pa rad (the receding major axis, East of North), rotation km/s (at the edge), dispersion
    km/s (FWHM of each element's line), samples (cells across the diameter)."""

    flux: float
    velocity: float
    rest_frequency: float
    radius: float
    inclination: float = math.radians(60.0)
    pa: float = 0.0
    rotation: float = 150.0
    dispersion: float = 20.0
    samples: int = 24

    def __post_init__(self) -> None:
        values = [float(getattr(self, f.name)) for f in fields(self)]
        if not all(math.isfinite(v) for v in values):
            raise InputError("a disk needs finite numbers for all of its parameters")
        checks = [(self.rest_frequency > 0, "rest_frequency must be > 0 Hz"),
                  (self.radius > 0, "radius must be > 0"),
                  (0 <= self.inclination < math.pi / 2, "inclination must be in [0, 90) deg"),
                  (self.dispersion > 0, "dispersion must be > 0 km/s"),
                  (self.rotation >= 0, "rotation must be >= 0 km/s"),
                  (isinstance(self.samples, int) and 2 <= self.samples <= 200,
                   "samples must be an integer in 2..200")]
        for ok, message in checks:
            if not ok:
                raise InputError(f"disk: {message}")

    def elements(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dl, dm, v): each element's offset (n,) from the disk centre in direction cosines
        (l to the East, m to the North) and its radio velocity (n,) km/s."""
        k = (np.arange(self.samples) + 0.5) / self.samples * 2.0 - 1.0
        x, y = np.meshgrid(k, k)
        inside = x * x + y * y <= 1.0
        x, y = x[inside], y[inside]
        a, b = x * self.radius, y * self.radius * math.cos(self.inclination)
        s, c = math.sin(self.pa), math.cos(self.pa)
        dl, dm = a * s + b * c, a * c - b * s  # major axis along (sin pa, cos pa)
        return dl, dm, self.velocity + self.rotation * math.sin(self.inclination) * x

    def spectra(self, freq: Any, velocity: np.ndarray | None = None) -> np.ndarray:
        """Each element's flux density (n, nchan) Jy at frequencies ``freq`` Hz
        (``velocity``: the elements' velocities, as ``elements`` returns them)."""
        v = self.elements()[2] if velocity is None else velocity
        chan = radio_velocity(np.asarray(freq, dtype=np.float64), self.rest_frequency)
        sigma = self.dispersion / FWHM_PER_SIGMA
        norm = self.flux / v.size / (math.sqrt(2.0 * math.pi) * sigma)
        return norm * np.exp(-0.5 * ((chan[None, :] - v[:, None]) / sigma) ** 2)

    def truth(self, freq: Any, l: float, m: float, cell: float, size: int,
              attenuation: Any = None) -> dict:
        """The truth JSON's ``disk`` of a disk centred at (l, m): its parameters (angles in
        rad), the elements' count, and per channel ``freq``: frequencies, velocities (km/s),
        channel_flux (Jy, the disk's total), and the flux centroid: centroid_l/m (direction
        cosines) and centroid_x/y (FITS 0-based pixels of the truth image ``size``, ``cell``;
        None where the channel has no flux). ``attenuation``: a function (l, m, freq) -> the
        primary beam (nchan,); with it, apparent_channel_flux and the centroid of the
        apparent flux."""
        dl, dm, v = self.elements()
        f = np.asarray(freq, dtype=np.float64)
        spectra = self.spectra(f, v)
        if attenuation is not None:
            spectra = spectra * np.array([attenuation(l + a, m + b, f) for a, b in zip(dl, dm,
                                                                                   strict=True)])
        total = spectra.sum(axis=0)
        seen = total > 1e-12 * max(float(total.max()), 1e-300)
        with np.errstate(invalid="ignore", divide="ignore"):
            cl = np.where(seen, l + (dl @ spectra) / total, np.nan)
            cm = np.where(seen, m + (dm @ spectra) / total, np.nan)
        out = {**asdict(self), "elements": int(v.size), "frequencies": f.tolist(),
               "velocities": radio_velocity(f, self.rest_frequency).tolist(),
               "channel_flux": self.spectra(f, v).sum(axis=0).tolist()}
        if attenuation is not None:
            out["apparent_channel_flux"] = total.tolist()
        centre = size / 2.0
        out.update({"centroid_l": _listed(cl), "centroid_m": _listed(cm),
                    "centroid_x": _listed(centre - cl / cell),
                    "centroid_y": _listed(centre + cm / cell)})
        return out


def _listed(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]


def from_truth(entry: dict) -> Disk:
    """The Disk of a truth JSON's ``disk`` entry."""
    return Disk(**{f.name: entry[f.name] for f in fields(Disk)})


def visibilities(uvw: np.ndarray, freq: np.ndarray, disk: Disk, l: float, m: float,
                 phasor: Any, attenuation: Any = None) -> np.ndarray:
    """Noise-free visibilities (nrow, nchan) complex128 of ``disk`` centred at (l, m): the sum
    of its elements as point sources; ``phasor(tau, freq)`` is sky._phasor, ``attenuation``
    the primary beam function (l, m, freq) -> (nchan,) or None."""
    dl, dm, vel = disk.elements()
    spectra = disk.spectra(freq, vel)
    vis = np.zeros((len(uvw), len(freq)), np.complex128)
    u, v, w = uvw[:, 0], uvw[:, 1], uvw[:, 2]
    for a, b, spectrum in zip(dl, dm, spectra, strict=True):
        el, em = l + a, m + b
        n = math.sqrt(1.0 - el * el - em * em)
        if attenuation is not None:
            spectrum = spectrum * attenuation(el, em, freq)
        vis += phasor(u * el + v * em + w * (n - 1.0), freq) * spectrum
    return vis

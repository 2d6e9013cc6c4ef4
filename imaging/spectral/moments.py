"""Moment maps of a cube: the velocity axis, per-channel noise, moment 0 and moment 1.

Velocities are radio-convention, v = c (1 - nu / nu_rest), in km/s (what CASA's immoments
and CARTA use for a FREQ axis with RESTFRQ). A voxel counts when it is above ``clip`` times
its channel's robust noise (``channel_noise``: 1.4826 MAD of the plane, noise.robust_sigma);
pixels with no such voxel are NaN in both maps.

    mom0 = sum S |dv|                 Jy/beam km/s
    mom1 = sum S v |dv| / mom0        km/s

|dv| is each channel's velocity width (np.gradient of the channel velocities: the channel
spacing for regular channels), so a mom0 is the integral of the spectrum over velocity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from htclean.imaging.errors import InputError
from htclean.imaging.noise import robust_sigma

C_KMS = 299792.458  # speed of light, km/s


@dataclass(frozen=True)
class Moments:
    """mom0 (ny, nx) Jy/beam km/s and mom1 (ny, nx) km/s (NaN where no voxel passed the clip),
    velocity (nchan,) km/s, noise (nchan,) Jy/beam (what the clip used), clip."""
    mom0: np.ndarray
    mom1: np.ndarray
    velocity: np.ndarray
    noise: np.ndarray
    clip: float


def radio_velocity(freq: np.ndarray, rest_freq: float) -> np.ndarray:
    """Radio-convention velocities (nchan,) km/s of frequencies ``freq`` Hz about
    ``rest_freq`` Hz: c (1 - nu / nu_rest); positive below the rest frequency."""
    if not (np.isfinite(rest_freq) and rest_freq > 0):
        raise InputError(f"image.rest_frequency must be a frequency > 0 Hz, got {rest_freq!r}")
    return C_KMS * (1.0 - np.asarray(freq, dtype=np.float64) / float(rest_freq))


def radio_frequency(velocity: float, rest_freq: float) -> float:
    """The frequency (Hz) of radio velocity ``velocity`` km/s: nu_rest (1 - v / c)."""
    return float(rest_freq) * (1.0 - float(velocity) / C_KMS)


def channel_widths(velocity: np.ndarray) -> np.ndarray:
    """|dv| (nchan,) km/s of each channel: |np.gradient(velocity)| (the spacing for regular
    channels; the mean of the two neighbouring spacings otherwise). One channel: InputError."""
    v = np.asarray(velocity, dtype=np.float64)
    if v.size < 2:
        raise InputError("moment maps need at least 2 channels")
    return np.abs(np.gradient(v))


def channel_noise(cube: np.ndarray) -> np.ndarray:
    """Robust noise (nchan,) of each plane of ``cube`` (nchan, ny, nx): noise.robust_sigma."""
    return np.array([robust_sigma(plane) for plane in np.asarray(cube)], dtype=np.float64)


def moments(cube: np.ndarray, freq: np.ndarray, rest_freq: float, *, clip: float = 3.0,
            noise: np.ndarray | None = None) -> Moments:
    """Moment 0 and 1 of ``cube`` (nchan, ny, nx) Jy/beam with channel frequencies ``freq``
    (nchan,) Hz (any order, distinct) and ``rest_freq`` Hz, over the voxels above ``clip`` x
    the channel's noise (``noise`` (nchan,) Jy/beam, or ``channel_noise(cube)`` when None).
    NaN voxels are left out."""
    c = np.asarray(cube)
    f = np.asarray(freq, dtype=np.float64)
    if c.ndim != 3 or f.shape != (c.shape[0],):
        raise InputError(f"a cube (nchan, ny, nx) with one frequency per channel is needed, "
                         f"got shape {c.shape} and {f.shape[0] if f.ndim else 0} frequencies")
    if not (np.isfinite(clip) and clip >= 0):
        raise InputError(f"the moment clip must be a number >= 0 (x noise), got {clip!r}")
    sigma = channel_noise(c) if noise is None else np.asarray(noise, dtype=np.float64)
    if sigma.shape != (c.shape[0],):
        raise InputError(f"need one noise value per channel ({c.shape[0]}), got {sigma.shape}")
    v = radio_velocity(f, rest_freq)
    dv = channel_widths(v)
    with np.errstate(invalid="ignore"):
        keep = c > (clip * sigma)[:, None, None]  # NaN voxels compare False
    s = np.where(keep, c, 0.0)
    mom0 = np.tensordot(dv, s, axes=1)
    first = np.tensordot(v * dv, s, axes=1)
    seen = keep.any(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mom1 = np.where(seen, first / mom0, np.nan)
    return Moments(mom0=np.where(seen, mom0, np.nan), mom1=mom1, velocity=v, noise=sigma,
                   clip=float(clip))

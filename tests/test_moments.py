"""Moment maps of a spectral cube against an analytic Gaussian line."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest

from htclean.imaging.errors import InputError
from htclean.imaging.spectral import moments as mom

REST = 1420.405752e6  # HI, Hz
NCHAN, NY, NX = 48, 64, 64
# 48 descending channels of 12 kHz (~2.5 km/s) below the rest frequency: velocities ascend
FREQ = REST - 0.6e6 - 12e3 * np.arange(NCHAN)


def line_cube(v0: float, sigma_v: float, noise: float, seed: int = 0):
    """A Gaussian blob (peak 1 Jy/beam, sigma 3 px, centre (20, 23)) whose spectrum is a
    Gaussian in velocity (centre v0, sigma sigma_v km/s), plus noise; returns (cube, blob)."""
    y, x = np.mgrid[:NY, :NX]
    blob = np.exp(-((x - 23) ** 2 + (y - 20) ** 2) / (2 * 3.0 ** 2))
    v = mom.radio_velocity(FREQ, REST)
    spectrum = np.exp(-(v - v0) ** 2 / (2 * sigma_v ** 2))
    rng = np.random.default_rng(seed)
    return spectrum[:, None, None] * blob + noise * rng.normal(size=(NCHAN, NY, NX)), blob


def test_radio_velocity_and_channel_widths():
    v = mom.radio_velocity(FREQ, REST)
    want = (FREQ * u.Hz).to(u.km / u.s, equivalencies=u.doppler_radio(REST * u.Hz)).value
    np.testing.assert_allclose(v, want, rtol=0, atol=1e-9)
    assert mom.radio_velocity([REST], REST)[0] == 0
    dv = mom.channel_widths(v)
    np.testing.assert_allclose(dv, 299792.458 * 12e3 / REST, rtol=1e-9)
    irregular = mom.channel_widths(np.array([0.0, 1.0, 3.0, 6.0]))
    np.testing.assert_allclose(irregular, [1.0, 1.5, 2.5, 3.0])


def test_moments_of_an_analytic_line():
    v = mom.radio_velocity(FREQ, REST)
    dv = abs(v[1] - v[0])
    v0 = v[20] + 0.37 * dv  # between channels
    sigma_v = 3 * dv
    cube, blob = line_cube(v0, sigma_v, noise=1e-3)
    m = mom.moments(cube, FREQ, REST, clip=3.0)
    # robust per channel; the blob biases the peak channels up a little
    assert np.median(m.noise) == pytest.approx(1e-3, rel=0.05)
    integral = np.sqrt(2 * np.pi) * sigma_v * blob  # Jy/beam km/s
    for y, x in [(20, 23), (20, 27), (17, 21)]:  # peak 1, 0.41, 0.48 Jy/beam
        assert m.mom0[y, x] == pytest.approx(integral[y, x], rel=0.01)
        assert abs(m.mom1[y, x] - v0) < 0.1 * dv
    # far from the blob only noise spikes pass the clip: nowhere near the line's moment 0
    assert np.nanmax(np.abs(m.mom0[:, :5])) < 0.02 * integral.max()


def test_noise_given_and_pixels_without_emission_are_nan():
    v = mom.radio_velocity(FREQ, REST)
    dv = abs(v[1] - v[0])
    cube, blob = line_cube(v[30], 2 * dv, noise=0.0)
    cube[:, 0, 0] = np.nan  # a blanked pixel
    m = mom.moments(cube, FREQ, REST, clip=5.0, noise=np.full(NCHAN, 1e-3))
    above = cube.max(axis=0) > 5e-3
    np.testing.assert_array_equal(np.isfinite(m.mom0), above)
    np.testing.assert_array_equal(np.isfinite(m.mom1), above)
    assert m.clip == 5.0 and m.noise.tolist() == [1e-3] * NCHAN
    # the wings below the 5e-3 clip (0.1 %) are left out
    assert m.mom0[20, 23] == pytest.approx(np.sqrt(2 * np.pi) * 2 * dv, rel=2e-3)
    assert m.mom1[20, 23] == pytest.approx(v[30], abs=1e-6)


def test_per_channel_noise_follows_each_channel():
    rng = np.random.default_rng(4)
    levels = np.linspace(1e-3, 5e-3, 6)
    cube = levels[:, None, None] * rng.normal(size=(6, 64, 64))
    cube[:, 30:34, 30:34] += 1.0  # a bright source the robust estimate ignores
    np.testing.assert_allclose(mom.channel_noise(cube), levels, rtol=0.05)


def test_bad_input():
    cube = np.zeros((4, 8, 8))
    with pytest.raises(InputError, match="one frequency per channel"):
        mom.moments(cube, FREQ[:3], REST)
    with pytest.raises(InputError, match="one frequency per channel"):
        mom.moments(cube[0], FREQ[:1], REST)
    with pytest.raises(InputError, match="rest_frequency"):
        mom.moments(cube, FREQ[:4], 0.0)
    with pytest.raises(InputError, match="clip"):
        mom.moments(cube, FREQ[:4], REST, clip=-1)
    with pytest.raises(InputError, match="one noise value per channel"):
        mom.moments(cube, FREQ[:4], REST, noise=[1.0])
    with pytest.raises(InputError, match="at least 2 channels"):
        mom.moments(cube[:1], FREQ[:1], REST, noise=[1.0])

"""The VLA primary beam (EVLA Memo 195 polynomials) and the simulator's beam attenuation.

Independent facts: the VLA's FWHM is about 42 arcmin / nu[GHz] (NRAO), the beam is 1 on axis,
falls monotonically to its first null and is circularly symmetric; the simulated visibilities
are checked against a direct DFT whose attenuation is computed here from the memo's formula
and the 1424 MHz row typed in by hand.
"""
# ruff: noqa: E741

from __future__ import annotations

import json
import math

import casacore.tables as ct
import numpy as np
import pytest

from htclean.imaging.beams import primary_beam as pb
from htclean.imaging.beams.vla_beam_coefficients import COEFFICIENTS
from htclean.imaging.errors import InputError
from htclean.imaging.simulation import vla
from htclean.imaging.simulation.simulate import SimulationSpec, Source, simulate

C = 299792458.0
ARCMIN = math.pi / 180 / 60
# EVLA Memo 195, L band, 1424 MHz: G = 1 + a2 x^2 + a4 x^4 + a6 x^6, x = r[arcmin] nu[GHz]
L1424 = (-1.462e-3, 8.23e-7, -1.83e-10)


def memo_1424(r: float, freq: float) -> float:
    x2 = (r / ARCMIN * freq / 1e9) ** 2
    return 1 + L1424[0] * x2 + L1424[1] * x2**2 + L1424[2] * x2**3


def test_fwhm_is_42_arcmin_over_nu_for_every_tabulated_frequency():
    for band, rows in COEFFICIENTS.items():
        if band == "P":  # the P-band feed's beam is wider than the 42'/nu rule
            continue
        for freq, _ in rows:
            fwhm = 2 * pb.half_power_radius(freq, band)
            assert fwhm == pytest.approx(vla.primary_beam_fwhm(freq), rel=0.04), (band, freq)


def test_one_on_axis_monotonic_to_the_first_null_and_zero_beyond():
    for band, rows in COEFFICIENTS.items():
        for freq, _ in rows:
            null = pb.first_null(freq, band)
            r = np.linspace(0, null, 400)
            g = pb.radial(r, freq, band)
            assert g[0] == 1.0
            assert (np.diff(g) < 0).all(), (band, freq)
            # the main lobe ends near zero (P band's quartics turn up at 3-14 % before any zero)
            assert g[-2] < (0.15 if band == "P" else 0.02), (band, freq)
            assert (pb.radial(np.linspace(1.0001 * null, 3 * null, 50), freq, band) == 0).all()


def test_value_matches_the_memo_formula_typed_by_hand():
    for r_arcmin in (3.0, 10.0, 15.0, 20.0):
        r = r_arcmin * ARCMIN
        assert float(pb.radial(r, 1.43e9)) == pytest.approx(memo_1424(r, 1.43e9), abs=1e-12)
    assert pb.band_of(1.43e9) == "L" and pb.band_of(3e9) == "S" and pb.band_of(33e9) == "Ka"
    # nearest tabulated frequency: 1.5e9 is nearer 1488 than 1552 MHz
    assert pb.coefficients(1.5e9) == pytest.approx((-1.455e-3, 7.92e-7, -1.63e-10))


def test_image_is_symmetric_and_peaks_at_the_centre():
    n, cell = 64, 40 * math.pi / 180 / 3600
    img = pb.weighted_beam((n, n), cell, [1.4e9])
    c = n // 2
    assert img[c, c] == 1.0 and img.max() == 1.0
    inner = img[1:, 1:]  # centred on (c-1, c-1): mirror and transpose symmetric
    np.testing.assert_allclose(inner, inner[::-1, :], atol=1e-12)
    np.testing.assert_allclose(inner, inner[:, ::-1], atol=1e-12)
    np.testing.assert_allclose(inner, inner.T, atol=1e-12)
    # a pixel at 15 arcmin along +m has the beam of 15 arcmin
    k = round(15 * ARCMIN / cell)
    assert img[c + k, c] == pytest.approx(memo_1424(math.asin(k * cell), 1.4e9), abs=1e-8)


def test_weighted_average_and_taylor_terms_over_a_band():
    n, cell = 48, 60 * math.pi / 180 / 3600
    freqs = np.linspace(1.0e9, 2.0e9, 9)
    weights = np.linspace(1.0, 3.0, 9)
    ref = 1.5e9
    avg = pb.weighted_beam((n, n), cell, freqs, weights)
    terms = pb.taylor_beam((n, n), cell, freqs, weights, ref_freq=ref, nterms=2)
    ys, xs = np.array([24, 30, 10, 40, 5]), np.array([24, 20, 33, 7, 44])
    ell, m = -(xs - n // 2) * cell, (ys - n // 2) * cell
    r = np.arcsin(np.hypot(ell, m))
    per_chan = np.array([[float(pb.radial(ri, f)) for f in freqs] for ri in r])
    direct = per_chan @ weights / weights.sum()
    np.testing.assert_allclose(avg[ys, xs], direct, atol=1e-7)
    x = (freqs - ref) / ref
    for i in range(len(r)):
        fit = np.polynomial.polynomial.polyfit(x, per_chan[i], 1, w=np.sqrt(weights))
        np.testing.assert_allclose(terms[:, ys[i], xs[i]], fit, atol=1e-7)
    assert terms[1, n // 2, n // 2] == pytest.approx(0.0, abs=1e-12)  # 1 at every frequency
    assert (terms[1][avg < 0.95] < 0).all()  # off axis the beam narrows with frequency


def test_correction_blanks_below_the_limit():
    beam = np.array([[1.0, 0.5], [0.2, 0.05]])
    image = np.array([[2.0, 1.0], [0.4, 0.1]])
    out = pb.pb_correct(image, beam, pb_limit=0.2)
    np.testing.assert_array_equal(out[:, :1], [[2.0], [2.0]])
    assert out[0, 1] == 2.0 and np.isnan(out[1, 1])
    taylor = np.stack([beam, np.full((2, 2), -0.1)])
    alpha = pb.pb_correct_alpha(np.full((2, 2), -0.7), taylor, pb_limit=0.4)
    assert alpha[0, 0] == pytest.approx(-0.6) and alpha[0, 1] == pytest.approx(-0.5)
    assert np.isnan(alpha[1]).all()


@pytest.mark.parametrize("call", [
    lambda: pb.band_of(600e6),
    lambda: pb.coefficients(1.4e9, band="W"),
    lambda: pb.pb_correct(np.ones(2), np.ones(2), pb_limit=0.0),
    lambda: pb.weighted_beam((8, 8), 1e-4, [1e9, 2e9], [1.0]),
    lambda: pb.weighted_beam((8, 8), 1e-4, [1e9], [0.0]),
])
def test_bad_inputs_are_input_errors(call):
    with pytest.raises(InputError):
        call()


def test_simulated_data_carry_the_beam(tmp_path):
    sources = (Source(1.0, offset=(0.0, 0.0), spectral_index=-0.7, name="centre"),
               Source(0.5, offset=(11 * ARCMIN, -10.5 * ARCMIN), name="half-power"),
               Source(0.3, offset=(-5 * ARCMIN, 3 * ARCMIN), spectral_index=0.4, name="inner"),
               Source(2.0, offset=(0.0, 40 * ARCMIN), name="beyond-null"))
    spec = SimulationSpec(integration=1800.0, hour_angle_h=(-0.5, 0.5), noise=0.0,
                          sources=sources, image_size=64, primary_beam=True)
    path = str(tmp_path / "pb.ms")
    truth = simulate(path, spec)
    assert truth["primary_beam"]["applied"] is True
    with ct.table(path, ack=False) as t:
        uvw, data = t.getcol("UVW"), t.getcol("DATA")[:, :, 0]
    with ct.table(f"{path}/SPECTRAL_WINDOW", ack=False) as t:
        freq = t.getcell("CHAN_FREQ", 0)
    ref = truth["reference_frequency"]
    expect = np.zeros(data.shape, complex)
    for s, src in zip(truth["sources"], sources, strict=True):
        l, m = src.offset
        r = math.asin(math.hypot(l, m))
        atten = np.array([max(0.0, memo_1424(r, f)) if r < 30 * ARCMIN else 0.0 for f in freq])
        assert s["apparent_flux"] == pytest.approx(src.flux * max(0.0, memo_1424(r, ref)),
                                                   rel=1e-9)
        assert s["intrinsic_flux"] == s["flux"] == src.flux
        n = math.sqrt(1 - l * l - m * m)
        phase = np.outer(uvw[:, 0] * l + uvw[:, 1] * m + uvw[:, 2] * (n - 1), freq / C)
        expect += src.flux * (freq / ref) ** src.spectral_index * atten * np.exp(2j * np.pi * phase)
    assert np.abs(data - expect).max() < 1e-6
    saved = json.loads(open(path + ".sources.json").read())
    assert saved["sources"][1]["primary_beam"] == pytest.approx(0.5, abs=0.06)
    assert saved["sources"][3]["apparent_flux"] == 0.0


def test_the_demo_simulation_has_no_beam():
    spec = SimulationSpec.demo()
    assert spec.primary_beam is False

"""Line sources in the simulator: a Gaussian profile in frequency on top of the continuum,
recorded per channel in the truth, in the DATA column, and recovered after uv-plane continuum
subtraction to within the noise."""

from __future__ import annotations

import json
import math

import casacore.tables as ct
import numpy as np
import pytest

from htclean.imaging.errors import InputError
from htclean.imaging.ms import msread
from htclean.imaging.simulation.simulate import Line, SimulationSpec, Source, simulate
from htclean.imaging.spectral import contsub
from htclean.imaging.spectral.channels import parse_channels
from htclean.workflows.cli import main

C = 299792458.0
ASEC = math.pi / 180 / 3600
REST = 1420.405752e6
NCHAN, WIDTH = 32, 48.828125e3  # ~10.3 km/s channels
FREQ0 = 1418.9e6
LINE = Line(peak=0.12, centre=FREQ0 + 15.4 * WIDTH, fwhm=4.0 * WIDTH, rest_frequency=REST)


def spec(noise: float) -> SimulationSpec:
    sources = (Source(0.5, pixel_offset=(0, 0), spectral_index=-0.7, name="cont"),
               Source(0.03, offset=(150 * ASEC, 90 * ASEC), line=LINE, name="galaxy"))
    return SimulationSpec(freq0=FREQ0, nchan=NCHAN, chan_width=WIDTH, integration=900.0,
                          hour_angle_h=(-1.0, 1.0), sources=sources, noise=noise,
                          image_size=64)


def line_flux(ms: str, truth: dict, linefree: str | None, fitorder: int = 0):
    """Per-channel flux at the line source's position: the weighted mean over rows of the
    continuum-subtracted Stokes I phased to that direction (the point-source estimate); and
    its standard error per channel. linefree None: no subtraction."""
    src = truth["sources"][1]
    ell, m = src["l"], src["m"]
    n = math.sqrt(1 - ell * ell - m * m)
    with ct.table(f"{ms}/SPECTRAL_WINDOW", ack=False) as t:
        spw_freq = t.getcell("CHAN_FREQ", 0)
    num = den = 0.0
    for chunk in msread.read_chunks(ms, column="DATA", field=0, spw=None,
                                    polarization_rule="available", chunk_rows=100_000):
        sub = chunk
        if linefree is not None:
            sub, unfitted = contsub.subtract_chunk(chunk, spw_freq, parse_channels(linefree, NCHAN),
                                                   fitorder=fitorder)
            assert unfitted == 0
        u, v, w = (chunk.uvw[:, i:i + 1] * chunk.freq / C for i in range(3))
        phase = np.exp(-2j * np.pi * (u * ell + v * m + w * (n - 1)))
        num = num + np.sum(sub.weight * (sub.vis * phase).real, axis=0)
        den = den + np.sum(sub.weight, axis=0)
    return num / den, 1 / np.sqrt(den)


def test_truth_and_data_carry_the_line(tmp_path):
    ms = str(tmp_path / "line.ms")
    truth = simulate(ms, spec(noise=0.0))
    assert truth == json.loads(open(ms + ".sources.json").read())
    cont, gal = truth["sources"]
    assert "line" not in cont
    line = gal["line"]
    freq = FREQ0 + WIDTH * np.arange(NCHAN)
    np.testing.assert_allclose(line["frequencies"], freq)
    want = 0.12 * np.exp(-4 * np.log(2) * ((freq - LINE.centre) / LINE.fwhm) ** 2)
    np.testing.assert_allclose(line["channel_flux"], want, rtol=1e-12)
    assert line["velocity"] == pytest.approx(C / 1e3 * (1 - LINE.centre / REST))
    assert line["fwhm_kms"] == pytest.approx(4 * WIDTH / REST * C / 1e3)
    # DATA = a direct DFT of the truth: each source's continuum plus its line per channel
    with ct.table(ms, ack=False) as t:
        uvw, data = t.getcol("UVW"), t.getcol("DATA")
    model = np.zeros(data.shape[:2], complex)
    ref = truth["reference_frequency"]
    for s in truth["sources"]:
        spectrum = s["flux"] * (freq / ref) ** s["spectral_index"]
        spectrum = spectrum + np.asarray(s.get("line", {}).get("channel_flux", 0.0))
        n = math.sqrt(1 - s["l"] ** 2 - s["m"] ** 2)
        tau = uvw[:, 0] * s["l"] + uvw[:, 1] * s["m"] + uvw[:, 2] * (n - 1)
        model += spectrum * np.exp(2j * np.pi * np.outer(tau, freq) / C)
    np.testing.assert_allclose(data[:, :, 0], model, atol=2e-6)  # complex64 column
    np.testing.assert_allclose(data[:, :, 1], model, atol=2e-6)


@pytest.mark.parametrize("fitorder", [0, 1])
def test_continuum_subtraction_recovers_the_line_per_channel(tmp_path, fitorder):
    ms = str(tmp_path / "noisy.ms")
    truth = simulate(ms, spec(noise=0.05))
    flux, err = line_flux(ms, truth, "0~7;24~31", fitorder)
    want = np.asarray(truth["sources"][1]["line"]["channel_flux"])
    # the check: within 2 % or 1 sigma, whichever is larger (3 sigma: 32 channels)
    tol = np.maximum(0.02 * want, 3 * err)
    assert np.all(np.abs(flux - want) <= tol), (flux - want) / err
    # the velocity centroid over the line channels, within 0.1 channel
    v = C / 1e3 * (1 - (FREQ0 + WIDTH * np.arange(NCHAN)) / REST)
    core = slice(10, 22)
    centroid = np.sum(flux[core] * v[core]) / np.sum(flux[core])
    exact = np.sum(want[core] * v[core]) / np.sum(want[core])
    assert abs(exact - truth["sources"][1]["line"]["velocity"]) < 0.01 * abs(v[1] - v[0])
    assert abs(centroid - exact) < 0.1 * abs(v[1] - v[0])
    # without the subtraction the source's own 30 mJy continuum (and the bright source's
    # sidelobes) stay on top of the line
    raw, _ = line_flux(ms, truth, None)
    assert np.all(np.abs(raw - want) > 5 * tol)


def test_line_validation_and_the_sources_file(tmp_path, capsys):
    with pytest.raises(InputError, match="fwhm > 0"):
        Line(peak=1.0, centre=1.4e9, fwhm=0.0)
    with pytest.raises(InputError, match="must be a Line"):
        Source(1.0, offset=(0, 0), line={"peak": 1})
    sky = tmp_path / "sky.yml"
    sky.write_text(
        "- {name: disk, flux: 0, offset: [1amin, 0amin],\n"
        "   line: {peak: 50mJy, centre: 100km/s, fwhm: 20km/s, rest_frequency: 1420.405752MHz}}\n"
        "- {name: maser, flux: 5mJy, offset: [0amin, 1amin],\n"
        "   line: {peak: 0.2, centre: 1.4195GHz, fwhm: 30kHz}}\n")
    out = str(tmp_path / "cli.ms")
    assert main(["simulate", out, "--sources", str(sky), "--freq", "1.4192GHz", "--nchan", "4",
                 "--chan-width", "100kHz", "--duration", "20min", "--noise", "0"]) == 0
    disk, maser = json.loads(open(out + ".sources.json").read())["sources"]
    assert disk["line"]["velocity"] == pytest.approx(100.0)
    assert disk["line"]["fwhm_kms"] == pytest.approx(20.0)
    assert disk["line"]["centre_frequency"] == pytest.approx(REST * (1 - 100e3 / C))
    assert maser["line"]["fwhm"] == 30e3 and "velocity" not in maser["line"]
    bad = tmp_path / "bad.yml"
    bad.write_text("- {flux: 0, offset: [0amin, 0amin], line: {peak: 1, centre: 1km/s, "
                   "fwhm: 1kHz}}\n")
    assert main(["simulate", str(tmp_path / "x.ms"), "--sources", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "source 1: line: centre '1km/s' is a velocity: give rest_frequency" in err
    assert err.count("\n") == 1

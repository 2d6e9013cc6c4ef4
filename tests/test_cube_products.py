"""Cube products on an analytic cube written by fitscube: moment maps against the analytic
integral and centroid, their WCS and units, the clip, the channel preview and the summary."""

from __future__ import annotations

import json
import math

import astropy.units as u
import matplotlib.image
import numpy as np
import pytest
from astropy.io import fits as afits
from astropy.wcs import WCS

from htclean.imaging import fitscube
from htclean.imaging.beams.beam import Beam
from htclean.imaging.errors import InputError
from htclean.imaging.geometry import ImageGeometry
from htclean.imaging.spectral import cubepreview, products
from htclean.imaging.spectral import moments as mom

ASEC = math.pi / 180 / 3600
REST = 1420.405752e6
NCHAN, NY, NX = 48, 64, 64
FREQ = REST - 0.6e6 - 12e3 * np.arange(NCHAN)  # descending: velocities ascend, ~2.5 km/s
GEOM = ImageGeometry(nx=NX, ny=NY, cell=5 * ASEC, ra=4.0124, dec=0.0870, freq=FREQ.mean(),
                     bandwidth=NCHAN * 12e3, date_obs="2024-03-20T09:00:00", telescope="VLA")
BEAMS = [Beam(20 * ASEC, 15 * ASEC, 10.0 + c / 10) for c in range(NCHAN)]
NOISE = 1e-3
VEL = mom.radio_velocity(FREQ, REST)
DV = abs(VEL[1] - VEL[0])
V0, SIGMA_V = VEL[20] + 0.37 * DV, 3 * DV  # between channels


def analytic(noise: float = NOISE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(cube, blob): a Gaussian blob (peak 1 Jy/beam, sigma 3 px, centre x 23, y 20) with a
    Gaussian spectrum in velocity (V0, SIGMA_V), plus Gaussian noise."""
    y, x = np.mgrid[:NY, :NX]
    blob = np.exp(-((x - 23) ** 2 + (y - 20) ** 2) / (2 * 3.0 ** 2))
    spectrum = np.exp(-(VEL - V0) ** 2 / (2 * SIGMA_V ** 2))
    rng = np.random.default_rng(seed)
    return spectrum[:, None, None] * blob + noise * rng.normal(size=(NCHAN, NY, NX)), blob


@pytest.fixture(scope="module")
def cube_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cube") / "line-image.fits"
    fitscube.write_cube(path, analytic()[0], GEOM, FREQ, specsys="LSRK", rest_freq=REST,
                        beams=BEAMS)
    return path


def test_moments_match_the_analytic_line(cube_file, tmp_path):
    paths = products.write_moments(cube_file, tmp_path, "line")
    assert paths == [tmp_path / "line-mom0.fits", tmp_path / "line-mom1.fits"]
    with afits.open(paths[0]) as h0, afits.open(paths[1]) as h1:
        mom0, mom1 = h0[0].data[0, 0], h1[0].data[0, 0]
        assert u.Unit(h0[0].header["BUNIT"], format="fits") == u.Jy / u.beam * u.km / u.s
        assert u.Unit(h1[0].header["BUNIT"], format="fits") == u.km / u.s
        largest = BEAMS[-1]  # the per-plane beams grow with channel: the largest one
        assert h0[0].header["BMAJ"] == pytest.approx(math.degrees(largest.bmaj), rel=1e-6)
    blob = analytic()[1]
    integral = math.sqrt(2 * math.pi) * SIGMA_V * blob  # Jy/beam km/s
    for y, x in [(20, 23), (20, 27), (17, 21), (23, 23)]:  # 1, 0.41, 0.48, 0.61 Jy/beam
        assert mom0[y, x] == pytest.approx(integral[y, x], rel=0.01)
        assert abs(mom1[y, x] - V0) < 0.1 * DV
    assert not list(tmp_path.glob(".*tmp"))


def test_moment_maps_carry_the_cubes_celestial_wcs(cube_file, tmp_path):
    cube_wcs = WCS(afits.getheader(cube_file)).celestial
    for path in products.write_moments(cube_file, tmp_path, "line"):
        header = afits.getheader(path)
        assert header["NAXIS1"] == NX and header["NAXIS2"] == NY
        got = WCS(header).celestial
        assert got.wcs.compare(cube_wcs.wcs, tolerance=1e-12), (got, cube_wcs)
        assert got.world_axis_physical_types == cube_wcs.world_axis_physical_types
        np.testing.assert_allclose(got.pixel_to_world_values(5.0, 60.0),
                                   cube_wcs.pixel_to_world_values(5.0, 60.0), rtol=1e-12)


def test_the_clip_is_applied(cube_file, tmp_path):
    """Away from the blob only > 5 sigma noise passes: nearly every pixel is NaN, and the
    moment 0 at the line equals the sum of the voxels above the clip, not of all voxels."""
    mom0 = afits.getdata(products.write_moments(cube_file, tmp_path, "c")[0])[0, 0]
    data = fitscube.read_cube(cube_file, dtype=np.float32).data
    sigma = mom.channel_noise(data)
    assert np.median(sigma) == pytest.approx(NOISE, rel=0.05)
    assert np.isnan(mom0[:, 40:]).mean() > 0.99  # ignoring the clip: none NaN
    y, x = 20, 27
    keep = data[:, y, x] > 5 * sigma
    assert 0 < keep.sum() < NCHAN - 10
    clipped = float(np.sum(data[keep, y, x] * DV))
    everything = float(np.sum(data[:, y, x] * DV))
    assert mom0[y, x] == pytest.approx(clipped, rel=1e-5)
    assert abs(everything - clipped) > 20 * 1e-5 * clipped  # the test can tell them apart
    loose = afits.getdata(products.write_moments(cube_file, tmp_path, "l", clip_sigma=0.0)[0])
    assert np.isfinite(loose[0, 0, :, 40:]).mean() > 0.99


def test_moments_by_blocks_of_rows_equal_the_whole(cube_file, tmp_path, monkeypatch):
    whole = [afits.getdata(p) for p in products.write_moments(cube_file, tmp_path, "w")]
    monkeypatch.setattr(products, "ROWS", 7)  # 64 rows: 9 blocks, the last one short
    blocks = [afits.getdata(p) for p in products.write_moments(cube_file, tmp_path, "b")]
    for a, b in zip(whole, blocks, strict=True):
        np.testing.assert_array_equal(a, b)


def test_moments_need_a_rest_frequency(tmp_path):
    path = tmp_path / "norest.fits"
    fitscube.write_cube(path, analytic()[0], GEOM, FREQ)
    with pytest.raises(InputError, match="no RESTFRQ.*image.rest_frequency"):
        products.write_moments(path, tmp_path, "x")
    assert not list(tmp_path.glob("x-*"))


def test_channel_preview_is_written_and_readable(cube_file, tmp_path):
    png = products.channel_preview(cube_file, tmp_path / "line-channels.png")
    assert png == tmp_path / "line-channels.png"
    pixels = matplotlib.image.imread(png)
    assert pixels.ndim == 3 and pixels.shape[0] > 400 and pixels.shape[1] > 600
    assert pixels[..., :3].std() > 0.05  # drawn, not blank
    assert not list(tmp_path.glob(".*tmp"))
    # a cube without a rest frequency is labelled in frequency
    plain = tmp_path / "plain.fits"
    fitscube.write_cube(plain, analytic()[0][:6], GEOM, FREQ[:6])
    assert products.channel_preview(plain, tmp_path / "plain.png").stat().st_size > 0


def test_preview_channels_follow_the_line():
    noise = np.full(NCHAN, NOISE)
    spectrum = np.exp(-(VEL - V0) ** 2 / (2 * SIGMA_V ** 2))  # above 3 noise in 12..28
    chosen = cubepreview.preview_channels(spectrum, noise)
    line = np.flatnonzero(spectrum > 3 * NOISE)
    assert line.size > cubepreview.PANELS  # strided over the line's span, ends included
    assert len(chosen) == cubepreview.PANELS and np.all(np.diff(chosen) > 0)
    assert (chosen[0], chosen[-1]) == (line[0], line[-1])
    narrow = np.where(np.abs(np.arange(NCHAN) - 30) <= 2, 1.0, 0.0)
    chosen = cubepreview.preview_channels(narrow, noise)
    assert list(chosen) == list(range(24, 36))  # 28..32 with the panels around them
    spiked = narrow.copy()
    spiked[3] = 4 * NOISE  # a noise spike far from the line does not widen it
    assert list(cubepreview.preview_channels(spiked, noise)) == list(range(24, 36))
    flat = cubepreview.preview_channels(np.zeros(NCHAN), noise)
    assert flat[0] == 0 and flat[-1] == NCHAN - 1 and len(flat) == cubepreview.PANELS
    assert list(cubepreview.preview_channels(np.zeros(5), np.ones(5))) == [0, 1, 2, 3, 4]


def test_summary_round_trips(tmp_path):
    entries = [products.channel_entry(c, FREQ[c], rest_freq=REST, beam=BEAMS[c],
                                      noise=np.float32(1e-3 + c * 1e-6),
                                      peak=np.float64(0.5 + c), cycles=3, iterations=120 + c)
               for c in range(4)]
    entries.append(products.channel_entry(4, FREQ[4], rest_freq=REST, beam=None,
                                          noise=float("nan"), peak=float("nan"), cycles=0,
                                          iterations=0, stop_reason="flagged"))
    path = products.cube_summary(entries, tmp_path / "line-summary.json")
    assert path == tmp_path / "line-summary.json"
    got = products.read_summary(path)
    assert got == json.loads(json.dumps(entries))
    assert [set(products.SUMMARY_KEYS) <= set(e) for e in got] == [True] * 5
    assert got[0]["velocity_kms"] == pytest.approx(VEL[0], abs=1e-9)
    assert got[1]["beam"]["bmaj_asec"] == pytest.approx(20.0)
    assert got[4]["noise_jy"] is None and got[4]["stop_reason"] == "flagged"
    document = json.loads(path.read_text())
    assert document["nchan"] == 5 and "noise_jy" in document["units"]
    (tmp_path / "again").mkdir()
    again = products.cube_summary(got, tmp_path / "again" / "line-summary.json")
    assert again.read_text() == path.read_text()
    with pytest.raises(InputError, match="channel entry 1 lacks peak_jy, cycles"):
        products.cube_summary([entries[0], {k: v for k, v in entries[1].items()
                                            if k not in ("peak_jy", "cycles")}],
                              tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()


def test_summary_takes_each_channels_own_mfs_summary(tmp_path):
    """htclean-cube passes each channel's restore summary with channel and frequency_hz."""
    mfs = {"name": "line-ch0003", "beam": {"bmaj_asec": 20.0, "bmin_asec": 15.0, "bpa_deg": 10.0},
           "image": {"peak": 0.5, "min": -0.01, "rms": 0.02, "robust_sigma": 0.001},
           "residual": {"peak": 0.004}, "cycles": 3, "iterations": 140,
           "stop_reason": "threshold"}
    entries = [{"channel": 3, "frequency_hz": FREQ[3], **mfs}]
    path = products.cube_summary(entries, tmp_path / "line-summary.json", rest_freq=REST)
    document = json.loads(path.read_text())
    assert (document["name"], document["mode"], document["rest_frequency_hz"]) == \
        ("line", "cube", REST)
    (got,) = document["channels"]
    assert (got["peak_jy"], got["noise_jy"]) == (0.5, 0.001)
    assert got["velocity_kms"] == pytest.approx(VEL[3], abs=1e-9)
    assert got["stop_reason"] == "threshold" and got["residual"] == {"peak": 0.004}
    without = products.cube_summary(entries, tmp_path / "plain-summary.json")
    assert products.read_summary(without)[0]["velocity_kms"] is None
    del entries[0]["cycles"]
    with pytest.raises(InputError, match="channel entry 0 lacks cycles"):
        products.cube_summary(entries, tmp_path / "bad-summary.json")


def test_the_line_pixel_is_not_the_brighter_continuum():
    cube = analytic()[0]
    cube[:, 50, 10] += 3.0  # a flat continuum source, brighter than the line's peak of 1
    c, y, x, excess = cubepreview.line_pixel(cube)
    assert (y, x) == (20, 23) and abs(c - 20) <= 1 and excess == pytest.approx(1.0, abs=0.02)

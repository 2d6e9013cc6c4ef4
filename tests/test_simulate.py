"""The VLA simulator: MS structure, exact visibilities, UVW geometry, truth, noise, flags, CLI.

The reference computations here are written independently of
htclean.imaging.simulation.simulate: the DFT from the truth JSON, and UVW from the ANTENNA
positions with astropy's sidereal time.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace

import casacore.tables as ct
import numpy as np
import pytest

from htclean.imaging.errors import InputError
from htclean.imaging.simulation import vla
from htclean.imaging.simulation.simulate import SimulationSpec, Source, simulate
from htclean.workflows.cli import main

C = 299792458.0
ASEC = math.pi / 180 / 3600
SUBTABLES = ("ANTENNA", "DATA_DESCRIPTION", "FEED", "FIELD", "FLAG_CMD", "HISTORY",
             "OBSERVATION", "POINTING", "POLARIZATION", "PROCESSOR", "SOURCE",
             "SPECTRAL_WINDOW", "STATE")


def _mixed_spec(**changes) -> SimulationSpec:
    """C configuration, 4 correlations, a Gaussian, a spectral index, every position kind."""
    sources = (
        Source(0.8, radec=(math.radians(150.02), math.radians(40.05)), spectral_index=-0.7,
               name="by-radec"),
        Source(0.3, offset=(90 * ASEC, -140 * ASEC), shape="gaussian", major=40 * ASEC,
               minor=15 * ASEC, pa=math.radians(30), name="gauss"),
        Source(0.05, pixel_offset=(-17, 9), spectral_index=1.2, name="by-pixel"),
    )
    spec = SimulationSpec(configuration="C", nchan=8, chan_width=32e6, integration=900.0,
                          hour_angle_h=(-2.0, 0.5), correlations=("XX", "XY", "YX", "YY"),
                          sources=sources, noise=0.0, ref_freq=1.5e9, image_size=96)
    return replace(spec, **changes)


@pytest.fixture(scope="module")
def mixed_ms(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("mixed") / "mixed.ms")
    return path, simulate(path, _mixed_spec())


def _columns(path, *names):
    with ct.table(path, ack=False) as t:
        return [t.getcol(n) for n in names]


def test_every_subtable_opens_with_the_right_content(mixed_ms):
    path, truth = mixed_ms
    with ct.table(path, ack=False) as t:
        assert t.getkeyword("MS_VERSION") == 2.0
        for name in SUBTABLES:
            assert t.getkeyword(name).startswith("Table:"), name
            with ct.table(os.path.join(path, name), ack=False) as sub:
                sub.colnames()  # opens and reads its description
        assert {"DATA", "FLAG", "WEIGHT", "SIGMA", "UVW", "FLAG_ROW"} <= set(t.colnames())
        assert t.getcolkeywords("UVW")["MEASINFO"]["Ref"] == "J2000"
        assert t.nrows() == truth["observation"]["rows"] == 10 * 351
    names, stations, positions = vla.antennas("C")
    with ct.table(os.path.join(path, "ANTENNA"), ack=False) as t:
        assert t.getcol("STATION") == stations and t.getcol("NAME") == names
        np.testing.assert_array_equal(t.getcol("POSITION"), positions)
        assert np.all(t.getcol("DISH_DIAMETER") == 25.0)
    with ct.table(os.path.join(path, "SPECTRAL_WINDOW"), ack=False) as t:
        np.testing.assert_allclose(t.getcell("CHAN_FREQ", 0), 1.4e9 + 32e6 * np.arange(8))
    with ct.table(os.path.join(path, "POLARIZATION"), ack=False) as t:
        assert list(t.getcell("CORR_TYPE", 0)) == [9, 10, 11, 12]
        assert t.getcell("CORR_PRODUCT", 0).tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    with ct.table(os.path.join(path, "FEED"), ack=False) as t:
        assert t.nrows() == 27 and list(t.getcell("POLARIZATION_TYPE", 0)) == ["X", "Y"]
    with ct.table(os.path.join(path, "FIELD"), ack=False) as t:
        np.testing.assert_allclose(t.getcell("PHASE_DIR", 0)[0],
                                   [truth["phase_centre"]["ra"], truth["phase_centre"]["dec"]])
    with ct.table(os.path.join(path, "OBSERVATION"), ack=False) as t:
        assert t.getcell("TELESCOPE_NAME", 0) == "VLA"
    for name in ("DATA_DESCRIPTION", "STATE", "PROCESSOR", "HISTORY", "SOURCE"):
        with ct.table(os.path.join(path, name), ack=False) as t:
            assert t.nrows() == 1, name


def test_rows_are_time_ordered_cross_correlations(mixed_ms):
    time, a1, a2, interval = _columns(mixed_ms[0], "TIME", "ANTENNA1", "ANTENNA2", "INTERVAL")
    assert np.all(np.diff(time) >= 0) and np.all(a1 < a2)
    assert np.all(interval == 900.0)
    first = slice(0, 351)
    assert np.all(time[first] == time[0])
    pairs = [(i, j) for i in range(27) for j in range(i + 1, 27)]
    assert list(zip(a1[first], a2[first], strict=True)) == pairs


def _dft(truth, uvw, freq):
    """Independent model: sum S (f/f0)^a exp(+2 pi i (u l + v m + w (n - 1))) x taper."""
    ra0, dec0 = truth["phase_centre"]["ra"], truth["phase_centre"]["dec"]
    f0 = truth["reference_frequency"]
    vis = np.zeros((len(uvw), len(freq)), complex)
    for s in truth["sources"]:
        dra = s["ra"] - ra0
        el = np.cos(s["dec"]) * np.sin(dra)
        em = np.sin(s["dec"]) * np.cos(dec0) - np.cos(s["dec"]) * np.sin(dec0) * np.cos(dra)
        en = np.sqrt(1 - el**2 - em**2)
        for c, f in enumerate(freq):
            u, v, w = (uvw * f / C).T
            amp = s["flux"] * (f / f0) ** s["spectral_index"]
            if s["shape"] == "gaussian":
                pa = np.radians(s["pa"])
                along = u * np.sin(pa) + v * np.cos(pa)
                across = u * np.cos(pa) - v * np.sin(pa)
                amp = amp * np.exp(-np.pi**2 / (4 * np.log(2)) * (
                    (s["major"] * along) ** 2 + (s["minor"] * across) ** 2))
            vis[:, c] += amp * np.exp(2j * np.pi * (u * el + v * em + w * (en - 1)))
    return vis


def test_data_equals_a_direct_dft_of_the_truth(mixed_ms):
    path, truth = mixed_ms
    uvw, data, flag = _columns(path, "UVW", "DATA", "FLAG")
    with ct.table(os.path.join(path, "SPECTRAL_WINDOW"), ack=False) as t:
        freq = t.getcell("CHAN_FREQ", 0)
    model = _dft(truth, uvw, freq)
    scale = np.abs(model).max()
    for c in (0, 3):  # XX, YY carry Stokes I
        assert np.abs(data[:, :, c] - model).max() < 1e-6 * scale
    assert np.abs(data[:, :, 1:3]).max() == 0.0  # cross hands: unpolarized, no noise
    assert not flag.any()
    assert abs(np.abs(model[:, 0]).max() - 1.15) < 0.05  # sanity: the sources are all in it


def test_uvw_equals_the_baseline_geometry(mixed_ms):
    from astropy.coordinates import EarthLocation, Longitude
    from astropy.time import Time
    from astropy.utils import iers

    path, truth = mixed_ms
    uvw, time, a1, a2 = _columns(path, "UVW", "TIME", "ANTENNA1", "ANTENNA2")
    (xyz,) = _columns(os.path.join(path, "ANTENNA"), "POSITION")
    with ct.table(os.path.join(path, "FIELD"), ack=False) as t:
        ra, dec = t.getcell("PHASE_DIR", 0)[0]
    site = EarthLocation.from_geocentric(-1601185.365, -5041977.547, 3554875.870, unit="m")
    with iers.conf.set_temp("auto_download", False):
        lst = Time(time / 86400, format="mjd", scale="utc").sidereal_time(
            "mean", longitude=site.lon)
    hour_angle = (lst - Longitude(ra, "rad")).rad
    # Thompson, Moran & Swenson eq. 4.1 with the Greenwich hour angle on ITRF baselines;
    # CASA's sign: the baseline of a row is position(ANTENNA1) - position(ANTENNA2).
    hg = hour_angle - site.lon.rad  # GST - RA = (LST - RA) - east longitude
    bx, by, bz = (xyz[a1] - xyz[a2]).T
    u = np.sin(hg) * bx + np.cos(hg) * by
    v = -np.sin(dec) * np.cos(hg) * bx + np.sin(dec) * np.sin(hg) * by + np.cos(dec) * bz
    w = np.cos(dec) * np.cos(hg) * bx - np.cos(dec) * np.sin(hg) * by + np.sin(dec) * bz
    assert np.abs(uvw - np.stack([u, v, w], axis=1)).max() < 1e-3  # metres
    ha_h = (hour_angle + np.pi) % (2 * np.pi) - np.pi
    ha_h = np.degrees(ha_h) / 15
    assert -2.0 <= ha_h.min() < -1.8 and 0.3 < ha_h.max() <= 0.5  # the requested range


def test_truth_pixels_follow_the_fits_convention(mixed_ms):
    from astropy.wcs import WCS

    _, truth = mixed_ms
    n, cell = truth["image"]["size"], truth["image"]["cell"]
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.crval = [math.degrees(truth["phase_centre"]["ra"]),
                     math.degrees(truth["phase_centre"]["dec"])]
    wcs.wcs.crpix = [n / 2 + 1, n / 2 + 1]
    wcs.wcs.cdelt = [-math.degrees(cell), math.degrees(cell)]
    for s in truth["sources"]:
        x, y = wcs.world_to_pixel_values(math.degrees(s["ra"]), math.degrees(s["dec"]))
        assert abs(x - s["x"]) < 1e-6 and abs(y - s["y"]) < 1e-6, s["name"]
        assert (s["l"] > 0) == (s["x"] < n / 2)  # east is on the left
    by_pixel = {s["name"]: s for s in truth["sources"]}["by-pixel"]
    assert (by_pixel["x"], by_pixel["y"]) == pytest.approx((n / 2 - 17, n / 2 + 9), abs=1e-9)
    assert by_pixel["l"] == pytest.approx(17 * cell)


def test_demo_sources_sit_on_pixel_centres_inside_the_half_power_beam(small_ms):
    _, truth = small_ms
    n, cell = truth["image"]["size"], truth["image"]["cell"]
    assert cell == pytest.approx(10 * ASEC) and n == 128
    fluxes = sorted(s["flux"] for s in truth["sources"])
    assert len(fluxes) == 6 and fluxes[0] >= 0.005 and fluxes[-1] <= 1.0
    half_power = math.radians(42 / 60) * (1e9 / 1.4e9) / 2
    for s in truth["sources"]:
        assert s["x"] == pytest.approx(round(s["x"]), abs=1e-9)
        assert s["y"] == pytest.approx(round(s["y"]), abs=1e-9)
        assert 0 <= s["x"] < n and 0 <= s["y"] < n
        assert math.hypot(s["l"], s["m"]) < half_power


def test_noise_weights_and_sigma_match_the_requested_noise(small_ms, clean_ms):
    noisy, clean = _columns(small_ms.path, "DATA")[0], _columns(clean_ms.path, "DATA")[0]
    residual = (noisy - clean).ravel()
    assert np.std(residual.real) == pytest.approx(0.02, rel=0.03)
    assert np.std(residual.imag) == pytest.approx(0.02, rel=0.03)
    assert abs(np.mean(residual)) < 0.02 * 5 / math.sqrt(residual.size)
    weight, sigma = _columns(small_ms.path, "WEIGHT", "SIGMA")
    np.testing.assert_allclose(weight, 1 / 0.02**2, rtol=1e-6)
    np.testing.assert_allclose(sigma, 0.02, rtol=1e-6)
    weight, sigma = _columns(clean_ms.path, "WEIGHT", "SIGMA")
    assert np.all(weight == 1.0) and np.all(sigma == 1.0)


def test_the_seed_makes_it_reproducible_and_flags_follow_the_fraction(tmp_path):
    spec = replace(SimulationSpec.demo(), integration=1800.0, nchan=8, flag_fraction=0.3,
                   block_visibilities=5000)
    a = simulate(str(tmp_path / "a.ms"), spec)
    simulate(str(tmp_path / "b.ms"), replace(spec, block_visibilities=10**7))
    simulate(str(tmp_path / "c.ms"), replace(spec, seed=2))
    data_a, flag_a, flag_row = _columns(str(tmp_path / "a.ms"), "DATA", "FLAG", "FLAG_ROW")
    data_b, flag_b = _columns(str(tmp_path / "b.ms"), "DATA", "FLAG")
    data_c, = _columns(str(tmp_path / "c.ms"), "DATA")
    assert a["observation"]["rows"] == 6 * 351
    np.testing.assert_array_equal(data_a, data_b)  # independent of the write blocks
    np.testing.assert_array_equal(flag_a, flag_b)
    assert not np.array_equal(data_a, data_c)
    assert flag_a.mean() == pytest.approx(0.3, abs=0.01)
    np.testing.assert_array_equal(flag_row, flag_a.all(axis=(1, 2)))
    assert sorted(os.listdir(tmp_path)) == ["a.ms", "a.ms.sources.json", "b.ms",
                                            "b.ms.sources.json", "c.ms", "c.ms.sources.json"]


@pytest.mark.parametrize("changes, message", [
    ({"configuration": "E"}, "configuration"),
    ({"correlations": ("RR", "XX")}, "correlations"),
    ({"noise": -1.0}, "noise"),
    ({"flag_fraction": 1.0}, "flag fraction"),
    ({"hour_angle_h": (2.0, 1.0)}, "hour angle"),
    ({"image_size": 101}, "image size"),
    ({"nchan": 0}, "nchan"),
    ({"sources": ()}, "at least one source"),
])
def test_bad_specifications_are_one_line_input_errors(changes, message):
    with pytest.raises(InputError, match=message):
        replace(SimulationSpec.demo(), **changes)


@pytest.mark.parametrize("kwargs, message", [
    ({"flux": 1.0}, "exactly one of"),
    ({"flux": 1.0, "offset": (0, 0), "pixel_offset": (1, 1)}, "exactly one of"),
    ({"flux": 1.0, "offset": (0, 0), "shape": "disk"}, "shape"),
    ({"flux": 1.0, "offset": (0, 0), "shape": "gaussian", "major": 1e-5, "minor": 2e-5},
     "major >= minor"),
    ({"flux": float("nan"), "offset": (0, 0)}, "finite"),
])
def test_bad_sources_are_input_errors(kwargs, message):
    with pytest.raises(InputError, match=message):
        Source(**kwargs)


def test_cli_writes_the_ms_and_truth_and_refuses_to_overwrite(tmp_path, capsys):
    sources = tmp_path / "sky.yml"
    sources.write_text(
        "sources:\n"
        "  - {name: a, flux: 50mJy, offset: [2amin, -1amin]}\n"
        "  - {name: b, flux: 0.2, position: '10h00m30s +40d04m00s', spectral_index: -0.7}\n"
        "  - {name: c, flux: 10mJy, pixel_offset: [12, -30], shape: gaussian,\n"
        "     major: 30asec, minor: 15asec, pa: 45deg}\n")
    out = str(tmp_path / "cli.ms")
    args = ["simulate", out, "--configuration", "b", "--nchan", "2", "--duration", "20min",
            "--integration", "5min", "--correlations", "RR,RL,LR,LL", "--sources", str(sources),
            "--noise", "1mJy", "--cell", "2asec", "--image-size", "64", "--freq", "3GHz"]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    truth = json.loads((tmp_path / "cli.ms.sources.json").read_text())
    obs = truth["observation"]
    assert (obs["configuration"], obs["nchan"], obs["times"]) == ("B", 2, 4)
    assert obs["correlations"] == ["RR", "RL", "LR", "LL"] and obs["noise"] == 0.001
    assert truth["image"]["size"] == 64 and truth["image"]["cell_asec"] == pytest.approx(2.0)
    a, b, c = truth["sources"]
    assert (a["l"], a["m"]) == pytest.approx((120 * ASEC, -60 * ASEC))
    assert b["position"].startswith("10:00:30.000 +40:04:00")
    assert (c["x"], c["y"], c["shape"], c["pa"]) == pytest.approx((44, 2, "gaussian", 45.0))
    assert c["major"] == pytest.approx(30 * ASEC) and c["minor"] == pytest.approx(15 * ASEC)
    with ct.table(os.path.join(out, "HISTORY"), ack=False) as t:
        assert list(t.getcell("CLI_COMMAND", 0))[:3] == ["htclean", "simulate", out]

    assert main(args) == 2
    assert "exists; use --force" in capsys.readouterr().err
    assert main([*args, "--force", "--nchan", "3"]) == 0
    assert json.loads((tmp_path / "cli.ms.sources.json").read_text())["observation"]["nchan"] == 3
    assert sorted(os.listdir(tmp_path)) == ["cli.ms", "cli.ms.sources.json", "sky.yml"]


@pytest.mark.parametrize("text, message", [
    ("[{flux: 1Jy}]", "source 1: a source needs exactly one"),
    ("[{flux: 1, offset: [1, 2]}]", "source 1: offset: expected an angle with a unit"),
    ("[{flux: 1, offset: [1asec, 2asec], colour: red}]", "unknown key"),
    ("[{offset: [1asec, 2asec]}]", "flux is missing"),
    ("[{flux: 1, position: 'nowhere'}]", "not a sky position"),
    ("sources: 3", "non-empty list"),
    ("[{flux: 1", "not valid JSON/YAML"),
])
def test_cli_reports_a_bad_sources_file_in_one_line(tmp_path, capsys, text, message):
    sources = tmp_path / "bad.yml"
    sources.write_text(text)
    assert main(["simulate", str(tmp_path / "x.ms"), "--sources", str(sources)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("htclean simulate: error:")
    assert not (tmp_path / "x.ms").exists()


def test_cli_primary_beam_and_reference_frequency(tmp_path, capsys):
    """--primary-beam attenuates the sources by the VLA beam (the truth says so and lists the
    apparent flux); --ref-freq is where the fluxes are given."""
    sky = tmp_path / "sky.yml"
    sky.write_text("- {name: on, flux: 1.0, offset: [0asec, 0asec], spectral_index: -1}\n"
                   "- {name: off, flux: 1.0, offset: [10amin, 0amin]}\n")
    out = str(tmp_path / "pb.ms")
    assert main(["simulate", out, "--sources", str(sky), "--primary-beam", "--ref-freq",
                 "1.5GHz", "--nchan", "2", "--duration", "20min", "--noise", "0"]) == 0
    truth = json.loads((tmp_path / "pb.ms.sources.json").read_text())
    assert truth["primary_beam"]["applied"] and truth["reference_frequency"] == 1.5e9
    on, off = truth["sources"]
    assert on["apparent_flux"] == pytest.approx(1.0)
    assert 0.4 < off["apparent_flux"] < 0.9 and off["intrinsic_flux"] == 1.0
    with ct.table(os.path.join(out, "HISTORY"), ack=False) as t:
        assert "--primary-beam=True" in " ".join(t.getcell("CLI_COMMAND", 0))

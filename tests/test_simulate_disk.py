"""A rotating disk of line emission in the simulator: the truth's per-channel flux centroid
walks along the major axis as solid-body rotation says, and the data carry it (the centroid
of each channel's CLEAN components follows the truth)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from htclean.imaging.deconvolution.clean import CleanParams, minor_cycle
from htclean.imaging.errors import InputError
from htclean.imaging.ms import partials, parts
from htclean.imaging.simulation.disk import Disk
from htclean.imaging.simulation.simulate import SimulationSpec, Source, simulate
from htclean.imaging.spectral.moments import radio_velocity
from htclean.workflows import config
from htclean.workflows.cli import main

ASEC = math.pi / 180 / 3600
REST = 1420.405752e6
NCHAN, WIDTH, FREQ0 = 16, 100e3, 1418.0e6
FREQ = FREQ0 + WIDTH * np.arange(NCHAN)
VSYS = float(radio_velocity(FREQ0 + 7.5 * WIDTH, REST))
PA, INCL = math.radians(30.0), math.radians(60.0)
DISK = Disk(flux=20.0, velocity=VSYS, rest_frequency=REST, radius=150 * ASEC, inclination=INCL,
            pa=PA, rotation=150.0, dispersion=40.0, samples=16)
SIZE, CELL = 128, 10 * ASEC


def spec() -> SimulationSpec:
    sources = (Source(0.0, offset=(60 * ASEC, -30 * ASEC), disk=DISK, name="disk"),)
    return SimulationSpec(freq0=FREQ0, nchan=NCHAN, chan_width=WIDTH, sources=sources,
                          noise=0.0, image_size=SIZE, cell=CELL)


@pytest.fixture(scope="module")
def observation(tmp_path_factory):
    ms = str(tmp_path_factory.mktemp("disk") / "disk.ms")
    return ms, simulate(ms, spec())


def continuous_centroid(v: float) -> float:
    """E[x | v] of the continuous model (x in R along the major axis): a uniform disk seen at
    inclination i has x distributed as sqrt(1 - x^2); each x emits at VSYS + V x."""
    x = np.linspace(-1, 1, 200001)
    sigma = DISK.dispersion / (2 * math.sqrt(2 * math.log(2)))
    w = np.sqrt(1 - x * x) * np.exp(-0.5 * ((v - VSYS - 150 * math.sin(INCL) * x) / sigma) ** 2)
    return float(np.sum(x * w) / np.sum(w))


def test_truth_centroid_walks_along_the_major_axis(observation):
    ms, truth = observation
    assert truth == json.loads(open(ms + ".sources.json").read())
    src = truth["sources"][0]
    d = src["disk"]
    assert d["elements"] == DISK.elements()[0].size and d["velocity"] == VSYS
    flux = np.asarray(d["channel_flux"])
    dv = abs(d["velocities"][1] - d["velocities"][0])
    assert flux.sum() * dv == pytest.approx(DISK.flux, rel=0.01)  # the line's integral
    major, minor = np.array([math.sin(PA), math.cos(PA)]), np.array([math.cos(PA), -math.sin(PA)])
    along, velocity = [], []
    for c in np.flatnonzero(flux > 0.05 * flux.max()):
        off = np.array([d["centroid_l"][c] - src["l"], d["centroid_m"][c] - src["m"]])
        assert abs(off @ minor) < 1e-3 * DISK.radius  # on the major axis
        along.append(off @ major / DISK.radius)
        velocity.append(d["velocities"][c])
        assert along[-1] == pytest.approx(continuous_centroid(velocity[-1]), abs=0.03)
        # pixels: x grows to the West, y to the North
        assert d["centroid_x"][c] == pytest.approx(SIZE / 2 - d["centroid_l"][c] / CELL)
        assert d["centroid_y"][c] == pytest.approx(SIZE / 2 + d["centroid_m"][c] / CELL)
    # the receding half (along +pa) at high velocity; velocities fall with channel here
    order = np.argsort(velocity)
    assert np.all(np.diff(np.asarray(along)[order]) > 0)
    assert along[order[0]] < -0.5 and along[order[-1]] > 0.5


def test_the_data_carry_the_moving_centroid(observation):
    ms, truth = observation
    d = truth["sources"][0]["disk"]
    raw = {"data": {"ms": ms}, "image": {"size": SIZE, "scale": f"{CELL / ASEC!r}asec"},
           "weighting": {"type": "natural"}}
    settings = config.parse(config.resolve(raw))
    flux = np.asarray(d["channel_flux"])
    params = CleanParams(niter=5000, gain=0.1, mgain=1.0)
    for c in np.flatnonzero(flux > 0.2 * flux.max()):
        images = partials.normalise(parts.part_psf_dirty(ms, settings, channels=(c, c + 1)))
        peak = float(images["dirty"].max())
        comps = minor_cycle(images["dirty"], images["psf"], params, iterations_done=0,
                            threshold=0.01 * peak).components
        f = comps.flux
        x, y = np.sum(f * comps.x) / f.sum(), np.sum(f * comps.y) / f.sum()
        assert f.sum() == pytest.approx(flux[c], rel=0.03)
        assert x == pytest.approx(d["centroid_x"][c], abs=0.1), c  # pixels; it walks ~25 px
        assert y == pytest.approx(d["centroid_y"][c], abs=0.1), c


def test_disk_validation_and_the_sources_file(tmp_path, capsys):
    with pytest.raises(InputError, match="inclination"):
        Disk(flux=1.0, velocity=0.0, rest_frequency=REST, radius=ASEC, inclination=math.pi / 2)
    with pytest.raises(InputError, match="must be a Disk"):
        Source(0.0, offset=(0, 0), disk={"flux": 1})
    sky = tmp_path / "sky.yml"
    sky.write_text(
        "- {name: galaxy, flux: 0, offset: [1amin, 0amin],\n"
        "   disk: {flux: 5, velocity: 100km/s, rest_frequency: 1420.405752MHz, radius: 1amin,\n"
        "          inclination: 45deg, pa: 30, rotation: 120km/s, dispersion: 15km/s}}\n")
    out = str(tmp_path / "cli.ms")
    assert main(["simulate", out, "--sources", str(sky), "--freq", "1.4196GHz", "--nchan", "4",
                 "--chan-width", "100kHz", "--duration", "20min", "--noise", "0"]) == 0
    disk = json.loads(open(out + ".sources.json").read())["sources"][0]["disk"]
    assert disk["velocity"] == 100.0 and disk["radius"] == pytest.approx(60 * ASEC)
    assert disk["pa"] == pytest.approx(math.radians(30)) and disk["samples"] == 24
    assert disk["inclination"] == pytest.approx(math.radians(45)) and disk["dispersion"] == 15
    assert len(disk["centroid_x"]) == 4
    bad = tmp_path / "bad.yml"
    bad.write_text("- {flux: 0, offset: [0amin, 0amin], disk: {flux: 1, velocity: 1GHz, "
                   "rest_frequency: 1.4GHz, radius: 1amin}}\n")
    assert main(["simulate", str(tmp_path / "x.ms"), "--sources", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "source 1: disk: velocity '1GHz' is not a velocity" in err

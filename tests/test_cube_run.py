"""Cubes run by the embedded engine on a simulated line observation (tests/test_simulate_lines.py):
the line appears in the right channels after uv-plane continuum subtraction, and every output
channel is the mfs image of its own MS channels, product for product, bit for bit."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_simulate_lines import LINE, REST, spec

from htclean.imaging.fits import read_fits
from htclean.imaging.fitscube import read_cube
from htclean.imaging.noise import robust_sigma
from htclean.imaging.simulation.simulate import simulate
from htclean.imaging.spectral.stack import common_beam, restore_plane
from htclean.workflows import cli

KINDS = ("image", "model", "residual", "psf", "dirty")
SCALE = 15.0  # arcsec: the line source (150", 90") falls on a pixel
CONTINUUM = {"linefree": "0~7;24~31", "fitorder": 1}


@pytest.fixture(scope="module")
def obs(tmp_path_factory) -> tuple[Path, dict]:
    ms = tmp_path_factory.mktemp("cube") / "line.ms"
    return ms, simulate(str(ms), spec(noise=0.05))


def run(where: Path, ms: Path | list[Path], name: str, image: dict, **sections) -> Path:
    cfg = {"data": {"ms": [str(m) for m in ms] if isinstance(ms, list) else str(ms)},
           "image": {"name": name, "size": 64, "scale": f"{SCALE}asec", **image},
           "gridder": {"threads": 1, "device": "cpu"},
           "deconvolution": {"niter": 300, "auto_threshold": 3.0, "max_cycles": 6},
           "execution": {"request_memory": "1GB"}}
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    where.mkdir(parents=True, exist_ok=True)
    (where / f"{name}.yml").write_text(yaml.safe_dump(cfg))
    assert cli.main(["run", str(where / f"{name}.yml"), "-o", str(where / name)]) == 0
    return where / name / "outputs"


def assert_same(cube: Path, g: int, mfs: Path, name: str, cube_name: str) -> None:
    """Output channel ``g`` of a cube equals the mfs run's products bit for bit (so to 1e-6
    of the peak), both as the channel's own files and as the cube's plane."""
    for kind in KINDS:
        want, geom, _ = read_fits(mfs / f"{name}-{kind}.fits", np.float32)
        own, own_geom, _ = read_fits(cube / f"{cube_name}-{g:04d}-{kind}.fits", np.float32)
        plane = read_cube(cube / f"{cube_name}-{kind}.fits", np.float32).data[g]
        assert own_geom.freq == geom.freq
        assert float(np.max(np.abs(want))) > 0, kind
        for got in (own, plane):
            assert np.array_equal(got, want), kind


@pytest.fixture(scope="module")
def line_cube(obs, tmp_path_factory) -> Path:
    ms, _ = obs
    return run(tmp_path_factory.mktemp("runs"), ms, "line",
               {"mode": "cube", "start": 12, "nchan": 8, "rest_frequency": "1420.405752MHz"},
               data={"continuum": CONTINUUM}, partition={"parts": 2})


def test_the_line_appears_in_its_channels(obs, line_cube):
    ms, truth = obs
    cube = read_cube(line_cube / "line-image.fits")
    residual = read_cube(line_cube / "line-residual.fits")
    assert cube.data.shape == (8, 64, 64)
    assert cube.specsys == "TOPOCENT" and cube.rest_freq == pytest.approx(REST)
    freq = np.asarray(truth["sources"][1]["line"]["frequencies"])[12:20]
    np.testing.assert_allclose(cube.freq, freq, rtol=1e-12)
    assert cube.beams is not None and all(b is not None for b in cube.beams)
    gal = truth["sources"][1]
    x = round(32 - gal["l"] / math.radians(SCALE / 3600))
    y = round(32 + gal["m"] / math.radians(SCALE / 3600))
    want = np.asarray(gal["line"]["channel_flux"])[12:20]
    got = cube.data[:, y - 1:y + 2, x - 1:x + 2].max(axis=(1, 2))
    sigma = np.array([robust_sigma(p) for p in residual.data])
    assert np.all(np.abs(got - want) < 5 * sigma + 0.05 * want), (got, want, sigma)
    assert int(np.argmax(got)) == int(np.argmax(want))
    strong = want > 10 * sigma
    assert strong.sum() >= 3 and np.all(got[strong] > 10 * sigma[strong])
    # the 0.5 Jy continuum source at the centre is gone: only noise is left there
    assert np.all(np.abs(cube.data[:, 32, 32]) < 5 * sigma)
    assert LINE.centre == pytest.approx(freq[int(np.argmax(want))], abs=LINE.fwhm / 4)
    summary = json.loads((line_cube / "line-summary.json").read_text())
    assert len(summary["channels"]) == 8
    # the products module (imaging/spectral/products.py): moments and the channel maps
    assert all((line_cube / f"line-{p}").is_file() for p in ("mom0.fits", "mom1.fits",
                                                            "channels.png"))
    assert all(c["cycles"] >= 1 for c in summary["channels"] if c["channel"] in (3, 4))


def test_a_channel_is_the_mfs_image_of_that_channel(obs, line_cube, tmp_path):
    """A one-channel group (width 1) equals the mfs run of that MS channel: dirty, PSF, model,
    residual and image, with the same continuum subtraction (fitted over the whole window)."""
    ms, _ = obs
    mfs = run(tmp_path, ms, "one", {"start": 15, "nchan": 1}, data={"continuum": CONTINUUM},
              partition={"parts": 2})
    assert_same(line_cube, 3, mfs, "one", "line")


def test_a_channel_group_is_the_mfs_image_of_its_channels(obs, tmp_path):
    """A 4-channel group, Briggs weighting (its own weight density), restored with one common
    beam: equals the mfs run of its channels; the common beam holds every channel's beam."""
    ms, _ = obs
    cube = run(tmp_path, ms, "wide", {"mode": "cube", "start": 12, "nchan": 8, "width": 4},
               weighting={"type": "briggs", "robust": 0.0}, restore={"common_beam": True})
    mfs = run(tmp_path, ms, "four", {"start": 16, "nchan": 4},
              weighting={"type": "briggs", "robust": 0.0})
    for kind in KINDS[1:]:  # the cube's image plane is restored with the common beam
        want = read_fits(mfs / f"four-{kind}.fits")[0]
        got = read_cube(cube / f"wide-{kind}.fits").data[1]
        assert float(np.max(np.abs(got - want))) <= 1e-6 * float(np.max(np.abs(want)))
    for kind in KINDS:  # the channel's own files: bit for bit
        want = read_fits(mfs / f"four-{kind}.fits", np.float32)[0]
        own = read_fits(cube / f"wide-0001-{kind}.fits", np.float32)[0]
        assert np.array_equal(own, want), kind
    image = read_cube(cube / "wide-image.fits")
    assert image.beams is None and image.beam is not None
    from htclean.imaging.beams.beam import Beam

    beams = []
    for g in range(2):
        h = read_fits(cube / f"wide-{g:04d}-image.fits")[2]
        beams.append(Beam(math.radians(h["BMAJ"]), math.radians(h["BMIN"]), h["BPA"]))
    common = common_beam(beams)
    assert image.beam.bmaj == pytest.approx(common.bmaj, rel=1e-6)
    assert common.bmaj * common.bmin >= max(b.bmaj * b.bmin for b in beams)
    model = read_cube(cube / "wide-model.fits").data[1]
    residual = read_cube(cube / "wide-residual.fits").data[1]
    again = restore_plane(model, residual, common, image.geom.cell)
    assert float(np.max(np.abs(image.data[1] - again))) <= 1e-5 * float(np.max(again))


def test_the_cube_job_calls_the_products_module_where_there_is_one(line_cube, tmp_path,
                                                                   monkeypatch):
    """With imaging/spectral/products.py (a stand-in here) the cube job writes the moments,
    the channel preview and the summary through it, the files names.cube_products declares."""
    import importlib.machinery
    import types

    from htclean.executables import cube as cube_job
    from htclean.workflows import names

    calls: dict = {}

    def write_moments(image_cube, out_dir, name, clip_sigma=5.0):  # in a forked child
        (Path(out_dir) / "moments.json").write_text(
            json.dumps(read_cube(image_cube).data.shape))
        out = [Path(out_dir) / f"{name}-mom{k}.fits" for k in (0, 1)]
        for p in out:
            p.write_bytes(b"x")
        return out

    def channel_preview(image_cube, png):
        Path(png).write_bytes(b"png")
        return Path(png)

    def cube_summary(per_channel, path, rest_freq=None):
        calls["summary"] = per_channel
        Path(path).write_text(json.dumps({"channels": len(per_channel)}))
        return Path(path)

    fake = types.ModuleType(names.PRODUCTS_MODULE)
    fake.__spec__ = importlib.machinery.ModuleSpec(names.PRODUCTS_MODULE, None)
    fake.write_moments, fake.channel_preview, fake.cube_summary = \
        write_moments, channel_preview, cube_summary
    monkeypatch.setitem(__import__("sys").modules, names.PRODUCTS_MODULE, fake)
    run_dir = line_cube.parent
    monkeypatch.chdir(tmp_path)
    prefixes = [f"line-{g:04d}" for g in range(8)]
    for p in prefixes:
        for f in line_cube.glob(f"{p}-*"):
            (tmp_path / f.name).symlink_to(f)
    cube = read_cube(line_cube / "line-image.fits")
    status = cube_job.main(["--config", str(run_dir / "config.yml"), "--record", "r.json",
                            "--name", "out", "--channels", *prefixes, "--frequencies",
                            *map(repr, cube.freq.tolist()), "--width", "48828.125",
                            "--specsys", "TOPOCENT"])
    assert status == 0
    made = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out-"))
    assert made == sorted(names.cube_products("out", REST, True))
    assert json.loads((tmp_path / "moments.json").read_text()) == [8, 64, 64]
    assert len(calls["summary"]) == 8
    assert calls["summary"][3]["frequency_hz"] == cube.freq[3]
    np.testing.assert_array_equal(read_cube(tmp_path / "out-image.fits").data, cube.data)


def test_a_flagged_channel_is_a_blank_plane(obs, tmp_path):
    """An output channel whose MS channels are all flagged gets no workflow (the plan finds
    it): its planes are NaN, its BEAMS row zeros; the others are imaged as ever."""
    import shutil

    import casacore.tables as ct

    from htclean.workflows import config

    ms = tmp_path / "flagged.ms"
    shutil.copytree(obs[0], ms)
    with ct.table(str(ms), readonly=False, ack=False) as t:
        flag = t.getcol("FLAG")
        flag[:, 26:28, :] = True
        t.putcol("FLAG", flag)
    out = run(tmp_path, ms, "flagged", {"mode": "cube", "start": 24, "width": 2})
    resolved = config.read_yaml(out.parent / "config.yml")
    assert resolved["output"]["blank_channels"] == [1] and resolved["image"]["nchan"] == 8
    assert not (out / "flagged-0001-image.fits").exists()
    image = read_cube(out / "flagged-image.fits")
    assert image.beams[1] is None and all(image.beams[g] is not None for g in (0, 2, 3))
    for kind in KINDS:
        data = read_cube(out / f"flagged-{kind}.fits").data
        assert np.all(np.isnan(data[1])) and all(np.any(data[g]) for g in (0, 2, 3)), kind
    summary = json.loads((out / "flagged-summary.json").read_text())
    assert summary["channels"][1]["blank"] is True
    # what the plan filled in (image.nchan, output.blank_channels) does not block a resume
    assert cli.main(["run", str(tmp_path / "flagged.yml"), "-o", str(out.parent),
                     "--resume"]) == 0


def test_a_cube_over_two_ms_with_the_same_channels(obs, tmp_path):
    """Two MSs whose channels coincide (here the same observation twice, so every weight
    doubles and the normalised images stay the same) make one cube, equal to the one MS's."""
    import shutil

    ms = obs[0]
    twin = tmp_path / "twin.ms"
    shutil.copytree(ms, twin)
    image = {"mode": "cube", "start": 14, "nchan": 4, "width": 2}
    both = run(tmp_path, [ms, twin], "both", image, partition={"parts": 2})
    one = run(tmp_path, ms, "alone", image)
    for kind in ("image", "psf", "dirty", "residual"):
        a = read_cube(both / f"both-{kind}.fits").data
        b = read_cube(one / f"alone-{kind}.fits").data
        assert float(np.max(np.abs(a - b))) <= 1e-6 * float(np.max(np.abs(b))), kind


def test_the_cube_demo(tmp_path, capsys):
    """`htclean demo --cube DIR`: the HI disk comes out per channel with the continuum gone,
    the moment maps show its rotation, and every product is written."""
    out = tmp_path / "demo"
    assert cli.main(["demo", "--cube", str(out)]) == 0
    assert f"htclean demo --cube: done in {out}" in capsys.readouterr().out
    products = out / "run" / "outputs"
    for name in [*(f"cube-{k}.fits" for k in KINDS), "cube-mom0.fits", "cube-mom1.fits",
                 "cube-channels.png", "cube-summary.json"]:
        assert (products / name).is_file(), name
    cube = read_cube(products / "cube-image.fits")
    truth = json.loads((out / "cube.ms.sources.json").read_text())
    continuum, disk = truth["sources"]
    # the 0.3 Jy continuum source at the phase centre (pixel 64, 64) is subtracted in the uv
    # plane: within 5 sigma of each channel's noise in every plane
    noise = np.array([robust_sigma(plane) for plane in cube.data])
    assert np.all(np.abs(cube.data[:, 64, 64]) < 5 * noise), cube.data[:, 64, 64] / noise
    # the disk rotates: its first moment changes by over 150 km/s across it, receding half
    # at the higher velocity, and its line fills channels in the cube's middle
    mom1 = read_fits(products / "cube-mom1.fits")[0]
    finite = mom1[np.isfinite(mom1)]
    assert finite.size > 20 and np.ptp(finite) > 150, np.ptp(finite)
    peaks = cube.data.max(axis=(1, 2)) / noise
    assert peaks[0] < 6 and peaks[-1] < 6 and peaks[len(peaks) // 2] > 30, peaks
    assert continuum["name"] == "continuum" and "disk" in disk

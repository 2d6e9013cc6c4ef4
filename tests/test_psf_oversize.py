"""The PSF at ``image.psf_oversize`` x the image: its shape and WCS through the jobs, the crop
the user gets, the request_disk estimates, and why it matters (an exact, positive definite
PSF operator, so deep cleans on a simulated VLA field converge to the threshold)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tinyms
import yaml
from astropy.wcs import WCS

from htclean.executables import deconvolve, gather, grid, restore
from htclean.imaging import fits, reference
from htclean.imaging.beams.beam import fit_clean_beam
from htclean.imaging.deconvolution import loop
from htclean.imaging.deconvolution.clean import CleanParams, minor_cycle
from htclean.imaging.deconvolution.components import ComponentList
from htclean.imaging.errors import InputError
from htclean.imaging.geometry import (
    PSF_ONE_CALL_PX,
    ImageGeometry,
    crop_centre,
    psf_geometry,
    psf_shape,
    psf_tile,
)
from htclean.imaging.ms import partials, parts
from htclean.workflows import config, graph, requests, serialize
from htclean.workflows.context import RunContext
from htclean.workflows.plan import plan

N = 64  # the image size of the executable tests (a tiny MS at 2 arcsec)
MAINS = {"grid": grid.main, "gather": gather.main, "deconvolve": deconvolve.main,
         "restore": restore.main}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ms") / "tiny.ms"
    tinyms.write_ms(str(path), tinyms.TinyObs(nchan=4, ntime=10, noise=0.01))
    return path


def run(name: str, args: list[str], cwd: Path, monkeypatch) -> int:
    monkeypatch.chdir(cwd)
    return MAINS[name](["--config", "R-config.yml", *args])


def write_config(where: Path, ms: Path, oversize: float | None, **deconvolution) -> dict:
    """R-config.yml in ``where`` (oversize None: the default); returns the parsed settings."""
    image = {"size": N, "scale": "2asec"}
    if oversize is not None:
        image["psf_oversize"] = oversize
    raw = {"data": {"ms": str(ms)}, "image": image, "output": {"run_id": "R"},
           "gridder": {"epsilon": 1e-7, "precision": "double", "threads": 1},
           "deconvolution": {"niter": 300, "auto_threshold": 3, **deconvolution}}
    (where / "R-config.yml").write_text(yaml.safe_dump(raw))
    return config.parse(config.resolve(raw))


def grid_and_gather(tiny: Path, where: Path, monkeypatch) -> None:
    """i.npz (the psf-dirty partial), R-psf.fits and R-dirty.fits in ``where``."""
    assert run("grid", ["--mode", "psf-dirty", "--part", str(tiny), "--output", "i.npz"],
               where, monkeypatch) == 0
    assert run("gather", ["--inputs", "i.npz", "--psf-fits", "R-psf.fits", "--image-fits",
                          "R-dirty.fits"], where, monkeypatch) == 0


def clean_and_restore(where: Path, monkeypatch) -> None:
    """One minor cycle on R-dirty.fits with R-psf.fits, then restore as ``t``."""
    assert run("deconvolve", ["--cycle", "1", "--psf", "R-psf.fits", "--residual",
                              "R-dirty.fits", "--output-model", "m.json", "--output-state",
                              "s.json"], where, monkeypatch) == 0
    assert run("restore", ["--psf", "R-psf.fits", "--dirty", "R-dirty.fits", "--residual",
                           "R-dirty.fits", "--model", "m.json", "--state", "s.json", "--name",
                           "t"], where, monkeypatch) == 0


# --- shapes, WCS and the crop --------------------------------------------------------------


def test_psf_shape_rule_is_the_configurations():
    for n, over in [(64, 2.0), (64, 1.0), (100, 1.5), (96, 1.1), (2, 4.0), (512, 1.3)]:
        assert psf_shape(n, n + 2, over) == config.psf_shape(n, n + 2, over)
        pnx, pny = psf_shape(n, n + 2, over)
        assert pnx % 2 == 0 == pny % 2 and pnx >= n * over and pny >= (n + 2) * over
    geom = ImageGeometry(nx=64, ny=48, cell=2 * tinyms.ASEC, ra=1.0, dec=0.5, freq=1.4e9)
    big = psf_geometry(geom, 2.0)
    assert (big.nx, big.ny) == (128, 96)
    assert (big.cell, big.ra, big.dec, big.freq) == (geom.cell, geom.ra, geom.dec, geom.freq)
    assert big.pixel_to_lm(64 + 5, 48 - 3) == geom.pixel_to_lm(32 + 5, 24 - 3)


def test_psf_is_gridded_whole_up_to_2048_squared_pixels_then_in_image_tiles():
    """geometry.psf_tile: one gridder call for a PSF of at most 2048^2 pixels (3M samples
    at 1e-3: half the CPU of four tiles), tiles of the image's size above (their memory);
    request_memory counts the whole PSF's grids where it is gridded whole."""
    assert PSF_ONE_CALL_PX == 2048 * 2048
    assert psf_tile((1024, 1024), (2048, 2048)) is None
    assert psf_tile((512, 1024), (1024, 2048)) is None
    assert psf_tile((1026, 1024), (2052, 2048)) == (1026, 1024)
    assert psf_tile((4096, 4096), (8192, 8192)) == (4096, 4096)

    def grid_job(n: int, oversize: float) -> int:
        pn = psf_shape(n, n, oversize)[0]
        s = requests.Sizes(n * n, pn * pn, 1, 4, 2)
        return requests.grid_bytes(s, 0, residual=False) - requests.grid_bytes(
            requests.Sizes(n * n, n * n, 1, 4, 2), 0, residual=False)

    grids = 2 * (requests.OVERSAMPLED * 2 * 4 + 4)  # two streams' grids, bytes a pixel
    more = 2048**2 - 1024**2  # the 2x PSF's pixels beyond the image's
    assert grid_job(1024, 2.0) == grids * more + 4 * more  # its grids and its pixels
    assert grid_job(2048, 2.0) == 4 * (4096**2 - 2048**2)  # tiles: only the PSF's pixels


def test_psf_geometry_and_crop_refuse_bad_input():
    geom = ImageGeometry(nx=64, ny=64, cell=2 * tinyms.ASEC, ra=1.0, dec=0.5, freq=1.4e9)
    with pytest.raises(InputError, match="psf_oversize"):
        psf_geometry(geom, 0.5)
    wide = ImageGeometry(nx=64, ny=64, cell=0.02, ra=1.0, dec=0.5, freq=1.4e9)
    with pytest.raises(InputError, match="psf_oversize.*hemisphere"):
        psf_geometry(wide, 2.0)
    with pytest.raises(InputError, match="crop"):
        crop_centre(np.zeros((32, 32)), (48, 48))
    big = np.arange(12 * 16).reshape(12, 16)
    assert crop_centre(big, (4, 6))[2, 3] == big[6, 8]


def test_psf_partial_and_fits_are_oversize_and_crop_to_the_image_psf(tiny, tmp_path,
                                                                      monkeypatch):
    settings = write_config(tmp_path, tiny, 2.0)
    grid_and_gather(tiny, tmp_path, monkeypatch)
    partial = partials.load_partial(tmp_path / "i.npz")
    assert partial.images["psf"].shape == (2 * N, 2 * N)
    assert partial.images["dirty"].shape == (N, N) == partial.geom.shape
    psf, pgeom, h = fits.read_fits(tmp_path / "R-psf.fits")
    dirty, geom, hd = fits.read_fits(tmp_path / "R-dirty.fits")
    assert psf.shape == (2 * N, 2 * N) and dirty.shape == (N, N)
    assert (h["CRPIX1"], h["CRPIX2"]) == (N + 1, N + 1)  # psf_n / 2 + 1
    assert (h["CRVAL1"], h["CRVAL2"], h["CDELT1"]) == (hd["CRVAL1"], hd["CRVAL2"], hd["CDELT1"])
    assert psf[N, N] == pytest.approx(1.0, abs=1e-6) and np.abs(psf).max() <= psf[N, N]
    # the same pixel offset from the centre is the same sky position in both files
    psf_wcs, img_wcs = WCS(h).celestial, WCS(hd).celestial
    for dx, dy in [(0, 0), (17, -9), (-31, 30)]:
        a = psf_wcs.pixel_to_world(N + dx, N + dy)
        b = img_wcs.pixel_to_world(N // 2 + dx, N // 2 + dy)
        assert a.separation(b).arcsec < 1e-6
    # its central crop is the PSF gridded at the image size (same gridder)
    settings["image"]["psf_oversize"] = 1.0
    small = partials.normalise(parts.part_psf_dirty(tiny, settings))["psf"]
    assert small.shape == (N, N)
    assert np.abs(crop_centre(psf, (N, N)) - small).max() <= 1e-6 * small.max()
    # the dirty image does not depend on the PSF's size
    assert np.abs(dirty - partials.normalise(parts.part_psf_dirty(tiny, settings))["dirty"]).max() \
        <= 1e-6 * np.abs(dirty).max()


def test_restored_psf_has_the_image_size(tiny, tmp_path, monkeypatch):
    write_config(tmp_path, tiny, None)  # the default: 2
    grid_and_gather(tiny, tmp_path, monkeypatch)
    clean_and_restore(tmp_path, monkeypatch)
    full, _, _ = fits.read_fits(tmp_path / "R-psf.fits")
    psf, geom, h = fits.read_fits(tmp_path / "t-psf.fits")
    image, igeom, _ = fits.read_fits(tmp_path / "t-image.fits")
    assert full.shape == (2 * N, 2 * N) and psf.shape == image.shape == (N, N)
    assert (h["CRPIX1"], h["CRPIX2"]) == (N / 2 + 1, N / 2 + 1)
    assert (geom.cell, geom.ra, geom.dec) == (igeom.cell, igeom.ra, igeom.dec)
    np.testing.assert_array_equal(psf, crop_centre(full, (N, N)))
    assert psf[N // 2, N // 2] == pytest.approx(1.0, abs=1e-6)
    beam = fit_clean_beam(crop_centre(full, (N, N)), geom.cell)  # the main lobe is the same
    assert h["BMAJ"] == pytest.approx(np.degrees(beam.bmaj), rel=1e-6)
    assert h["BMIN"] == pytest.approx(np.degrees(beam.bmin), rel=1e-6)
    assert (tmp_path / "t-psf.png").read_bytes()[:4] == b"\x89PNG"


def test_psf_oversize_1_still_works(tiny, tmp_path, monkeypatch):
    settings = write_config(tmp_path, tiny, 1.0)
    grid_and_gather(tiny, tmp_path, monkeypatch)
    assert partials.load_partial(tmp_path / "i.npz").images["psf"].shape == (N, N)
    clean_and_restore(tmp_path, monkeypatch)
    full, _, h = fits.read_fits(tmp_path / "R-psf.fits")
    psf, _, _ = fits.read_fits(tmp_path / "t-psf.fits")
    assert full.shape == (N, N) and h["CRPIX1"] == N / 2 + 1
    np.testing.assert_array_equal(psf, full)
    state = json.loads((tmp_path / "s.json").read_text())
    assert state["iterations"] > 0 and state["peak_end"] < state["peak_start"]
    out = reference.image_ms(tiny, settings)
    assert out.psf.shape == out.psf_full.shape == (N, N)
    np.testing.assert_array_equal(out.psf, out.psf_full)


def test_jobs_refuse_a_psf_of_the_wrong_size(tiny, tmp_path, monkeypatch, capsys):
    write_config(tmp_path, tiny, 1.0)
    grid_and_gather(tiny, tmp_path, monkeypatch)  # R-psf.fits at the image size
    write_config(tmp_path, tiny, 2.0)
    code = run("deconvolve", ["--cycle", "1", "--psf", "R-psf.fits", "--residual",
                              "R-dirty.fits", "--output-model", "m.json", "--output-state",
                              "s.json"], tmp_path, monkeypatch)
    assert code == 2 and "psf_oversize 2 needs 128x128" in capsys.readouterr().err
    code = run("gather", ["--inputs", "i.npz", "--output", "g.npz"], tmp_path, monkeypatch)
    assert code == 2 and "psf_oversize 2 needs 128x128" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "g.npz").exists()


def test_reference_uses_the_big_psf_and_returns_its_crop(tiny):
    settings = tinyms.settings_for(str(tiny), cell=2 * tinyms.ASEC, size=N,
                                   deconvolution={"niter": 200, "auto_threshold": 3})
    out = reference.image_ms(tiny, settings)
    assert out.psf_full.shape == (2 * N, 2 * N) and out.psf.shape == (N, N)
    np.testing.assert_array_equal(out.psf, crop_centre(out.psf_full, (N, N)))
    beam = fit_clean_beam(out.psf, out.geom.cell)
    assert (out.beam.bmaj, out.beam.bmin) == pytest.approx((beam.bmaj, beam.bmin), rel=1e-9)


# --- request_disk ---------------------------------------------------------------------------


def test_request_disk_counts_the_larger_psf(tmp_path):
    """The PSF partials and R-psf.fits are oversize^2 x the image: the gather root (the next
    job) and the minor cycle (a deconvolve job, or the next job running it) and restore jobs
    that read them ask for that much more disk."""
    size, nparts = 1024, 4

    def disks(oversize: float) -> tuple[dict[str, int], RunContext]:
        sub = tmp_path / f"x{oversize:g}"
        sub.mkdir()
        raw = {"data": {"ms": "osdf:///ospool/ap40/data/u/obs.ms.tar", "size": "1GB",
                        "rows": 1000},
               "image": {"size": size, "scale": "2asec", "psf_oversize": oversize},
               "partition": {"parts": nparts, "fan_in": 4}, "output": {"run_id": "run1"},
               "execution": {"site": "ospool", "staging": "osdf:///ospool/ap40/data/u/s"}}
        (sub / "c.yml").write_text(yaml.safe_dump(raw))
        result = plan(sub / "c.yml", sub / "plan")
        resolved = config.read_yaml(result.files["config.yml"])
        ctx = RunContext.from_config(resolved, config.parse(resolved))
        docs = [yaml.safe_load(result.files["workflow.yml"].read_text()),
                serialize.as_dict(graph.cycle_workflow(ctx, 1)[0]),
                serialize.as_dict(graph.final_workflow(ctx, 1)[0])]
        return {j["id"]: int(j["profiles"]["condor"]["request_disk"]) for d in docs
                for j in d["jobs"] if j["type"] == "job"}, ctx

    one, ctx1 = disks(1.0)
    two, ctx2 = disks(2.0)
    pixels = size * size
    assert graph.image_partial_bytes(ctx2) - graph.image_partial_bytes(ctx1) == 3 * pixels * 4
    assert graph.psf_fits_bytes(ctx1) == ctx1.fits_bytes()
    assert graph.psf_fits_bytes(ctx2) - ctx2.fits_bytes() == 3 * pixels * 8
    kib = 1024
    # request_disk = 2 x inputs + margin (KiB, rounded up): the root reads 4 PSF partials
    assert two["next-c00"] - one["next-c00"] == \
        pytest.approx(2 * nparts * 3 * pixels * 4 / kib, abs=1)
    # the minor cycle reads R-psf.fits: the deconvolve job, or the next job that runs it
    minor = "next-c01" if ctx2.minor_cycle_in_next else "deconvolve-c01"
    for job in (minor, "restore"):
        assert two[job] - one[job] == pytest.approx(2 * 3 * pixels * 8 / kib, abs=1)
    assert two["residual-c01-p000"] == one["residual-c01-p000"]  # no PSF there


# --- why: the operator and a deep clean on a simulated VLA field ----------------------------


def psf_operator(psf: np.ndarray, n: int) -> np.ndarray:
    """The (n^2, n^2) matrix of 'subtract a unit component at pixel j, read pixel i' that
    the minor cycle applies with ``psf`` (zero beyond its edges)."""
    c = psf.shape[0] // 2
    ys, xs = np.divmod(np.arange(n * n), n)
    iy, ix = c + ys[:, None] - ys[None, :], c + xs[:, None] - xs[None, :]
    inside = (iy >= 0) & (iy < psf.shape[0]) & (ix >= 0) & (ix < psf.shape[1])
    return np.where(inside, psf[np.clip(iy, 0, psf.shape[0] - 1),
                                np.clip(ix, 0, psf.shape[1] - 1)], 0.0)


def test_twice_the_image_psf_operator_is_positive_definite(small_ms):
    """With the PSF at 2x the image every offset is exact: the operator is symmetric positive
    semi-definite (the w-term leaves 1e-4 asymmetry); cropped to the image it is not."""
    n = 32
    settings = tinyms.settings_for(small_ms.path, cell=small_ms.truth["image"]["cell"],
                                   size=n, chunk_rows=20000)
    big = partials.normalise(parts.part_psf_dirty(small_ms.path, settings))["psf"]
    assert big.shape == (2 * n, 2 * n)
    for psf, exact in ((big, True), (crop_centre(big, (n, n)), False)):
        a = psf_operator(psf, n)
        asym = np.abs(a - a.T).max()
        eig = np.linalg.eigvalsh(0.5 * (a + a.T))
        if exact:
            assert asym < 1e-3 and eig[0] > -1e-6 * eig[-1]
        else:
            assert asym > 0.05 and eig[0] < -0.1


def deep_clean(ms: str, truth: dict, algorithm: str, oversize: float) -> dict:
    """The major/minor loop (as the workflow runs it) cleaning into the noise: mgain 0.99,
    a threshold of 0.03 mJy (the image noise is ~0.08 mJy). Returns the true residual peak
    after each major cycle, the minor cycles' own residuals' error, the last decision."""
    settings = tinyms.settings_for(
        ms, cell=truth["image"]["cell"], size=truth["image"]["size"], chunk_rows=20000,
        image={"psf_oversize": oversize},
        deconvolution={"algorithm": algorithm, "niter": 40000, "gain": 0.1, "mgain": 0.99,
                       "threshold": "0.03mJy", "max_cycles": 6})
    first = partials.normalise(parts.part_psf_dirty(ms, settings))
    psf, residual = first["psf"], first["dirty"]
    params, limits = CleanParams.from_settings(settings), loop.LoopLimits.from_settings(settings)
    model = ComponentList.empty(*residual.shape[::-1])
    peaks = [float(np.abs(residual).max())]
    decision = loop.decide(loop.LoopState(0, 0, peaks[0], params.cycle_threshold(residual)),
                           limits)
    errors, iterations, cycle = [], 0, 0
    while decision.go_on:
        minor = minor_cycle(residual, psf, params, iterations_done=iterations,
                            threshold=decision.threshold)
        model = model.merge(minor.components)
        iterations += minor.iterations
        cycle += 1
        residual = partials.normalise(parts.part_residual(ms, settings, model))["residual"]
        errors.append(float(np.abs(residual - minor.residual).max()))
        peaks.append(float(np.abs(residual).max()))
        decision = loop.decide(loop.LoopState(
            cycle, iterations, peaks[-1], params.cycle_threshold(residual), minor.peak_start,
            minor.stop_reason, minor.iterations), limits)
    return {"peaks": peaks, "errors": errors, "decision": decision}


@pytest.mark.parametrize("algorithm", ["hogbom", "clark"])
def test_deep_clean_with_twice_the_image_psf_reaches_the_threshold(small_ms, algorithm):
    out = deep_clean(small_ms.path, small_ms.truth, algorithm, 2.0)
    peaks, threshold = out["peaks"], 3e-5
    assert out["decision"].reason == "threshold" and len(peaks) <= 5
    assert all(b < a for a, b in zip(peaks, peaks[1:], strict=False))
    assert peaks[-1] <= 1.2 * threshold
    # each minor cycle's residual is the true one: the subtraction is exact
    assert max(out["errors"]) <= 1e-3 * peaks[0]


def test_deep_clean_with_the_image_sized_psf_drifts_and_the_loop_is_not_fooled(small_ms):
    """The truncated PSF's residual drifts from the true one (here 1e-2 of the peak), so its
    minor cycles believe they reached the threshold while the true residual is far above it;
    the loop tests the re-made residual, so it does not stop there on 'threshold'."""
    out = deep_clean(small_ms.path, small_ms.truth, "hogbom", 1.0)
    assert max(out["errors"]) > 5e-3 * out["peaks"][0]
    if out["decision"].reason == "threshold":
        assert out["peaks"][-1] <= (1 + loop.THRESHOLD_TOLERANCE) * out["decision"].threshold
    else:
        assert out["decision"].reason in ("max_cycles", "diverged", "no-progress")

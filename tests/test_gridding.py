"""Gridding against a direct DFT: dirty image, PSF, predict, orientation, dispatch."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest
import tinyms

from htclean.imaging.deconvolution.components import ComponentList
from htclean.imaging.errors import InputError
from htclean.imaging.geometry import ImageGeometry, lm_to_radec, psf_geometry
from htclean.imaging.gridding import gridding
from htclean.imaging.ms import msread, partials, parts

ASEC = tinyms.ASEC
EXACT = gridding.GridParams(wgridding=True, epsilon=1e-7, precision="double", threads=1,
                            device="cpu")


def _data(obs: tinyms.TinyObs):
    rng = np.random.default_rng(obs.seed)
    uvw, _, _, _ = tinyms._uvw(obs, rng)
    freq = obs.freq0 + np.arange(obs.nchan) * obs.dfreq
    vis = tinyms.model_vis(uvw, freq, obs.sources)
    weight = rng.uniform(0.5, 2.0, vis.shape)
    weight[rng.random(vis.shape) < 0.1] = 0.0
    return uvw, freq, vis, weight


@pytest.mark.parametrize("wide", [False, True], ids=["narrow", "wide-field"])
def test_dirty_and_psf_equal_direct_dft(wide):
    # wide: 40 asec cells on a compact array, so the w term and n - 1 matter (1e-4 of the peak)
    cell = 40 * ASEC if wide else 1.5 * ASEC
    obs = tinyms.TinyObs(extent_m=60.0 if wide else 3000.0,
                         sources=[(12 * cell, 9 * cell, 1.0), (-20 * cell, -5 * cell, 0.4)])
    uvw, freq, vis, weight = _data(obs)
    geom = ImageGeometry(64, 48, cell, 1.0, 0.5, freq[0])
    img = gridding.dirty(uvw, freq, vis, weight, geom, EXACT)
    ref = tinyms.dft_dirty(uvw, freq, vis, weight, 64, 48, cell)
    assert img.shape == (48, 64) and img.dtype == np.float64
    assert np.abs(img - ref).max() <= 1e-6 * np.abs(ref).max()
    psf = gridding.dirty(uvw, freq, np.ones_like(vis), weight, geom, EXACT)
    ref_psf = tinyms.dft_dirty(uvw, freq, np.ones_like(vis), weight, 64, 48, cell)
    assert np.abs(psf - ref_psf).max() <= 1e-6 * ref_psf.max()
    assert psf[24, 32] == pytest.approx(weight.sum(), rel=1e-7)
    if wide:  # without w-gridding the image differs measurably from the true DFT
        flat = gridding.GridParams(wgridding=False, epsilon=1e-7, threads=1, device="cpu")
        assert np.abs(gridding.dirty(uvw, freq, vis, weight, geom, flat) - ref).max() \
            > 1e-4 * np.abs(ref).max()


def test_simulated_vla_dirty_and_psf_equal_direct_dft(clean_ms):
    """The simulator's VLA MS (real antenna positions, long w) through the whole read path."""
    truth = clean_ms.truth
    cell, size = truth["image"]["cell"], truth["image"]["size"]
    settings = tinyms.settings_for(clean_ms.path, cell=cell, size=size, chunk_rows=2000)
    out = parts.part_psf_dirty(clean_ms.path, settings)
    img = partials.normalise(out)
    chunks = list(msread.read_chunks(clean_ms.path))
    uvw = np.concatenate([c.uvw for c in chunks])
    vis = np.concatenate([c.vis for c in chunks])
    weight = np.concatenate([c.weight for c in chunks])
    rng = np.random.default_rng(5)
    xs = np.concatenate([[int(s["x"]) for s in truth["sources"]], rng.integers(0, size, 300)])
    ys = np.concatenate([[int(s["y"]) for s in truth["sources"]], rng.integers(0, size, 300)])
    # the PSF is image.psf_oversize (2) x the image: its pixels (2 xs, 2 ys) sample it all
    geoms = {"dirty": out.geom, "psf": psf_geometry(out.geom, 2.0)}
    for name, values, k in (("dirty", vis, 1), ("psf", np.ones_like(vis), 2)):
        ll, mm = geoms[name].pixel_to_lm(k * xs, k * ys)
        ref = tinyms.dft_at(uvw, chunks[0].freq, values, weight, ll, mm) / weight.sum()
        got = img[name][k * ys, k * xs]
        assert np.abs(got - ref).max() <= 1e-6 * np.abs(img[name]).max(), name
    brightest = max(truth["sources"], key=lambda s: s["flux"])
    y, x = np.unravel_index(np.argmax(img["dirty"]), img["dirty"].shape)
    assert (x, y) == (brightest["x"], brightest["y"])


def test_predict_of_components_equals_direct_dft():
    obs = tinyms.TinyObs()
    uvw, freq, _, _ = _data(obs)
    geom = ImageGeometry(64, 64, 2 * ASEC, 1.0, 0.5, freq[0])
    comps = ComponentList.from_arrays([32, 10, 50], [32, 40, 7], [1.0, -0.3, 0.25],
                                      [0, 0, 0], 64, 64)
    model = comps.to_image()
    vis = gridding.predict(model, uvw, freq, geom, EXACT)
    ref = tinyms.dft_predict(model, uvw, freq, geom.cell)
    assert vis.shape == (len(uvw), len(freq)) and vis.dtype == np.complex128
    assert np.abs(vis - ref).max() <= 1e-6 * np.abs(ref).max()


def test_predict_is_the_adjoint_of_dirty():
    uvw, freq, _, _ = _data(tinyms.TinyObs())
    geom = ImageGeometry(32, 32, 3 * ASEC, 1.0, 0.5, freq[0])
    rng = np.random.default_rng(3)
    image = rng.standard_normal(geom.shape)
    vis = rng.standard_normal((len(uvw), len(freq))) + 1j * rng.standard_normal((len(uvw), 4))
    lhs = np.vdot(gridding.predict(image, uvw, freq, geom, EXACT), vis).real
    rhs = np.sum(image * gridding.dirty(uvw, freq, vis, None, geom, EXACT))
    assert lhs == pytest.approx(rhs, rel=1e-6)


def test_single_precision_is_close_to_double():
    uvw, freq, vis, weight = _data(tinyms.TinyObs())
    geom = ImageGeometry(64, 64, 1.5 * ASEC, 1.0, 0.5, freq[0])
    single = gridding.GridParams(epsilon=1e-5, precision="single", threads=2, device="cpu")
    a = gridding.dirty(uvw, freq, vis, weight, geom, single)
    b = gridding.dirty(uvw, freq, vis, weight, geom, EXACT)
    assert a.dtype == np.float32 and b.dtype == np.float64  # no copy to float64
    assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()
    # the PSF's unit visibilities need no array
    psf = gridding.dirty(uvw, freq, None, weight, geom, single)
    ones = gridding.dirty(uvw, freq, np.ones_like(vis), weight, geom, EXACT)
    assert np.abs(psf - ones).max() <= 1e-5 * np.abs(ones).max()


@pytest.mark.parametrize("threads", [2, 3])
def test_gridding_streams_repeat_their_bits_and_equal_one_stream(threads):
    """The plan's thread count of |w| streams: every row in exactly one, each a contiguous
    |w| range; the image repeats its bits call after call (ducc0's own threads do not) and
    equals the one-stream image to single-precision rounding."""
    uvw, freq, vis, weight = _data(tinyms.TinyObs(ntime=40))
    masks = gridding.w_streams(uvw, threads)
    assert len(masks) == threads
    assert np.array_equal(sum(m[:, 0].astype(int) for m in masks), np.ones(len(uvw), int))
    w = np.abs(uvw[:, 2])
    ranges = [(w[m[:, 0] == 1].min(), w[m[:, 0] == 1].max()) for m in masks]
    assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    geom = ImageGeometry(64, 64, 1.5 * ASEC, 1.0, 0.5, freq[0])
    streams = gridding.GridParams(epsilon=1e-5, precision="single", threads=threads)
    one = gridding.GridParams(epsilon=1e-5, precision="single", threads=1)
    images = [gridding.dirty(uvw, freq, vis, weight, geom, streams) for _ in range(4)]
    assert all(np.array_equal(images[0], im) for im in images[1:])
    single = gridding.dirty(uvw, freq, vis, weight, geom, one)
    assert np.abs(images[0] - single).max() <= 1e-6 * np.abs(single).max()


@pytest.mark.parametrize("precision,epsilon", [("double", 1e-7), ("single", 1e-5)])
def test_tiled_psf_is_the_psf(precision, epsilon):
    """A PSF gridded as tiles (ducc0 shifted to each tile's centre) is the PSF gridded whole:
    non-square, uneven tile counts, both precisions."""
    uvw, freq, vis, weight = _data(tinyms.TinyObs())
    geom = ImageGeometry(96, 64, 1.5 * ASEC, 1.0, 0.5, freq[0])
    params = gridding.GridParams(epsilon=epsilon, precision=precision, threads=1, device="cpu")
    whole = gridding.dirty(uvw, freq, None, weight, geom, params)
    tiled = gridding.dirty(uvw, freq, None, weight, geom, params, tile=(40, 30))
    assert tiled.shape == whole.shape == (64, 96)
    assert np.abs(tiled - whole).max() <= 2 * epsilon * np.abs(whole).max()
    assert np.unravel_index(np.argmax(tiled), tiled.shape) == (32, 48)


def test_source_east_of_centre_is_at_smaller_x_and_north_at_larger_y(tmp_path):
    ra0, dec0 = 1.2, 0.6
    cell = 2 * ASEC
    # a source 10 pixels east (RA larger) and 6 pixels north of the phase centre
    ra, dec = lm_to_radec(10 * cell, 6 * cell, ra0, dec0)
    ell, m = tinyms.lm_of(ra, dec, ra0, dec0)
    ms = str(tmp_path / "east.ms")
    tinyms.write_ms(ms, tinyms.TinyObs(ra=ra0, dec=dec0, sources=[(ell, m, 1.0)]))
    settings = tinyms.settings_for(ms, cell=cell)
    dirty = partials.normalise(parts.part_psf_dirty(ms, settings))["dirty"]
    y, x = np.unravel_index(np.argmax(dirty), dirty.shape)
    assert (x, y) == (32 - 10, 32 + 6)
    assert dirty[y, x] == pytest.approx(1.0, abs=1e-5)


def test_image_phase_centre_shift_rephases_exactly(tmp_path):
    """image.phase_centre: the image is a SIN projection about the new centre (uvw rotated)."""
    ra0, dec0, cell = 1.2, 0.6, 2 * ASEC
    src = lm_to_radec(-30 * cell, 14 * cell, ra0, dec0)
    ms = str(tmp_path / "shift.ms")
    tinyms.write_ms(ms, tinyms.TinyObs(ra=ra0, dec=dec0,
                                       sources=[(*tinyms.lm_of(*src, ra0, dec0), 1.0)]))
    centre = lm_to_radec(-25 * cell, 10 * cell, ra0, dec0)
    settings = tinyms.settings_for(ms, cell=cell, phase_centre=list(centre))
    out = parts.part_psf_dirty(ms, settings)
    assert (out.geom.ra, out.geom.dec) == centre
    dirty = partials.normalise(out)["dirty"]
    # the source, 5 pixels east and 4 north of the new centre in its own projection
    ell, m = tinyms.lm_of(*src, *centre)
    assert (ell / cell, m / cell) == pytest.approx((-5, 4), abs=0.05)
    y, x = np.unravel_index(np.argmax(dirty), dirty.shape)
    assert (x, y) == (32 + 5, 32 + 4)
    # against the DFT of the original data at each new pixel's sky position, which is
    # independent of how the data were rotated
    truth = tinyms.write_ms(str(tmp_path / "copy.ms"), tinyms.TinyObs(
        ra=ra0, dec=dec0, sources=[(*tinyms.lm_of(*src, ra0, dec0), 1.0)]))
    ys, xs = np.mgrid[20:44, 20:44]
    lm = [tinyms.lm_of(*lm_to_radec(-(x - 32) * cell, (y - 32) * cell, *centre), ra0, dec0)
          for x, y in zip(xs.ravel(), ys.ravel(), strict=True)]
    ll, mm = (np.array(v).reshape(xs.shape) for v in zip(*lm, strict=True))
    vis = truth["vis"][0]
    ref = tinyms.dft_at(truth["uvw"], truth["freq"][0], vis, np.ones(vis.shape), ll, mm)
    assert np.abs(dirty[20:44, 20:44] - ref / vis.size).max() <= 1e-6


def test_grid_params_from_settings_and_errors(tmp_path):
    p = gridding.GridParams.from_settings(tinyms.settings_for(str(tmp_path / "x.ms")))
    assert p.threads >= 1 and p.device in gridding.DEVICES
    with pytest.raises(InputError, match="epsilon"):
        gridding.GridParams(epsilon=1e-7, precision="single")
    with pytest.raises(InputError, match="device"):
        gridding.GridParams(device="tpu")
    with pytest.raises(InputError, match="threads"):
        gridding.GridParams(threads=0)
    geom = ImageGeometry(32, 32, ASEC, 0.0, 0.0, 1e9)
    with pytest.raises(InputError, match="vis has shape"):
        gridding.dirty(np.zeros((5, 3)), np.ones(2), np.zeros((5, 3), complex), None, geom,
                       EXACT)
    with pytest.raises(InputError, match="model image"):
        gridding.predict(np.zeros((16, 16)), np.zeros((5, 3)), np.ones(2), geom, EXACT)


def test_cpu_device_never_imports_cupy():
    code = ("import sys, numpy as np\n"
            "from htclean.imaging.gridding import gridding\n"
            "from htclean.imaging.geometry import ImageGeometry\n"
            "assert gridding.resolve_device('cpu') == 'cpu'\n"
            "g = ImageGeometry(32, 32, 1e-5, 0.0, 0.0, 1e9)\n"
            "p = gridding.GridParams(device='cpu')\n"
            "gridding.dirty(np.zeros((3, 3)), np.full(1, 1e9), np.ones((3, 1), complex), None,"
            " g, p)\n"
            "assert 'cupy' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_gpu_device_dispatches_to_gpu_gridding(monkeypatch):
    calls = []
    fake = types.ModuleType("htclean.imaging.gpu.gpu_gridding")
    fake.dirty = lambda *a: calls.append("dirty") or np.zeros((32, 32))
    fake.predict = lambda *a: calls.append("predict") or np.zeros((3, 1), complex)
    monkeypatch.setitem(sys.modules, "htclean.imaging.gpu.gpu_gridding", fake)
    # `from htclean.imaging.gpu import gpu_gridding` reads the package attribute once imported
    import htclean.imaging.gpu

    monkeypatch.setattr(htclean.imaging.gpu, "gpu_gridding", fake, raising=False)
    monkeypatch.setattr(gridding, "resolve_device", lambda device: "gpu")
    g = ImageGeometry(32, 32, 1e-5, 0.0, 0.0, 1e9)
    p = gridding.GridParams(device="gpu")
    gridding.dirty(np.zeros((3, 3)), np.ones(1), np.ones((3, 1), complex), None, g, p)
    gridding.predict(np.zeros((32, 32)), np.zeros((3, 3)), np.ones(1), g, p)
    assert calls == ["dirty", "predict"]

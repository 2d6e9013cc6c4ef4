"""Multi-term MFS: Taylor-weighted grids against a direct DFT, the Hessian against the band's
moments, nterms 1 against Högbom, and a simulated 1-2 GHz field imaged with nterms 2 and 3
(tests/widebandfield.py), with and without the primary beam."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tinyms
import widebandfield as wf

from htclean.imaging.beams import primary_beam, restore
from htclean.imaging.beams.beam import fit_clean_beam
from htclean.imaging.deconvolution.clean import CleanParams, minor_cycle, multi_term_cycle
from htclean.imaging.deconvolution.model import TaylorComponents
from htclean.imaging.errors import InputError
from htclean.imaging.geometry import ImageGeometry
from htclean.imaging.gridding import gridding, taylor

EXACT = gridding.GridParams(epsilon=1e-7, threads=1)
ASEC = tinyms.ASEC


def _tiny(nchan: int = 6):
    obs = tinyms.TinyObs(nchan=nchan, freq0=1.2e9, dfreq=100e6,
                         sources=[(10 * ASEC, -6 * ASEC, 1.0), (-15 * ASEC, 8 * ASEC, 0.5)])
    rng = np.random.default_rng(3)
    uvw, _, _, _ = tinyms._uvw(obs, rng)
    freq = obs.freq0 + np.arange(nchan) * obs.dfreq
    vis = tinyms.model_vis(uvw, freq, obs.sources) * (freq / 1.45e9) ** -0.8
    weight = rng.uniform(0.5, 2.0, vis.shape)
    return uvw, freq, vis, weight


def test_taylor_images_equal_a_direct_dft_and_the_hessian_the_band_moments():
    uvw, freq, vis, weight = _tiny()
    geom = ImageGeometry(32, 32, 1.5 * ASEC, 1.0, 0.5, 1.45e9)
    psf_geom = ImageGeometry(48, 48, 1.5 * ASEC, 1.0, 0.5, 1.45e9)
    ti = taylor.grid_terms(uvw, freq, vis, weight, geom, psf_geom, EXACT, nterms=2,
                           ref_freq=1.45e9)
    assert ti.dirty.shape == (2, 32, 32) and ti.psf.shape == (3, 48, 48)
    x = (freq - 1.45e9) / 1.45e9
    for t in range(2):
        expect = tinyms.dft_dirty(uvw, freq, vis * x**t, weight, 32, 32, 1.5 * ASEC)
        np.testing.assert_allclose(ti.dirty[t], expect, atol=1e-6 * np.abs(expect).max())
    for q in range(3):
        expect = tinyms.dft_dirty(uvw, freq, np.ones(vis.shape) * x**q, weight, 48, 48,
                                  1.5 * ASEC)
        np.testing.assert_allclose(ti.psf[q], expect, atol=1e-6 * weight.sum())
    _, psf = ti.normalised()
    h = taylor.hessian(psf)
    np.testing.assert_allclose(h, primary_beam.taylor_matrix(freq, weight.sum(axis=0), 1.45e9, 2),
                               atol=1e-7)
    half = taylor.grid_terms(uvw[:40], freq, vis[:40], weight[:40], geom, psf_geom, EXACT,
                             nterms=2, ref_freq=1.45e9)
    rest = taylor.grid_terms(uvw[40:], freq, vis[40:], weight[40:], geom, psf_geom, EXACT,
                             nterms=2, ref_freq=1.45e9)
    both = half + rest  # parts add
    np.testing.assert_allclose(both.dirty, ti.dirty, atol=1e-9 * np.abs(ti.dirty).max())
    assert both.weight_sum == pytest.approx(ti.weight_sum)


def test_predicted_taylor_model_equals_the_direct_sum():
    uvw, freq, _, _ = _tiny()
    geom = ImageGeometry(32, 32, 1.5 * ASEC, 1.0, 0.5, 1.45e9)
    models = np.zeros((2, 32, 32))
    models[:, 20, 11] = (0.7, -0.5)  # 0.7 Jy, tt1 -0.5
    vis = taylor.predict_terms(models, uvw, freq, geom, EXACT, ref_freq=1.45e9)
    x = (freq - 1.45e9) / 1.45e9
    point = tinyms.model_vis(uvw, freq, [(-(11 - 16) * 1.5 * ASEC, (20 - 16) * 1.5 * ASEC, 1.0)])
    np.testing.assert_allclose(vis, point * (0.7 - 0.5 * x), atol=1e-6)


def test_one_term_is_hogbom():
    f = wf.make(size=64, nchan=4)
    ti = taylor.grid_terms(f.uvw, f.freq, f.vis, None, f.geom, f.psf_geom, EXACT, nterms=1,
                           ref_freq=wf.REF)
    dirty, psf = ti.normalised()
    params = CleanParams(niter=300, gain=0.1, mgain=0.9)
    mt = multi_term_cycle(dirty, psf, params, iterations_done=0, threshold=0.0)
    ref = minor_cycle(dirty[0], psf[0], params, iterations_done=0, threshold=0.0)
    assert mt.iterations == ref.iterations and mt.stop_reason == ref.stop_reason
    term = mt.components.term(0)
    np.testing.assert_array_equal(term.x, ref.components.x)
    np.testing.assert_array_equal(term.y, ref.components.y)
    np.testing.assert_allclose(term.flux, ref.components.flux, rtol=1e-9)
    np.testing.assert_allclose(mt.residual[0], ref.residual, atol=1e-9)


def _image(f: wf.Field, nterms: int, *, cycles: int = 6, w_term: float = 1e-4,
           params: CleanParams | None = None, threshold: float = 3.0, out: dict | None = None):
    """Major cycles (grid, Taylor minor cycle, predict, subtract) to 3 sigma; returns the
    restored images, the residual sigmas (coefficient units), the final residuals and PSFs.

    Each minor cycle's residual must equal the re-gridded one to ``w_term`` x the dirty peak:
    a PSF twice the image is exact for every shift, but with w-gridding a shifted PSF is not
    the PSF at that position (3e-5 of the peak at 16 arcmin, 6e-4 at 28 arcmin, more for
    extended emission, whose flux is larger than its peak; without
    w-gridding they agree to 1e-9). ``threshold`` in units of the expected noise; ``out``
    receives the components."""
    ti = taylor.grid_terms(f.uvw, f.freq, f.vis, None, f.geom, f.psf_geom, EXACT,
                           nterms=nterms, ref_freq=wf.REF)
    residual, psf = ti.normalised()
    params = params or CleanParams(niter=20000, gain=0.1, mgain=0.8)
    comps, done, peak = None, 0, np.abs(residual[0]).max()
    for _ in range(cycles):
        r = multi_term_cycle(residual, psf, params, iterations_done=done,
                              threshold=threshold * f.noise_image)
        done += r.iterations
        comps = r.components if comps is None else comps.merge(r.components)
        model = taylor.predict_terms(comps.images(), f.uvw, f.freq, f.geom, EXACT,
                                     ref_freq=wf.REF)
        again = taylor.grid_terms(f.uvw, f.freq, f.vis - model, None, f.geom, f.psf_geom,
                                  EXACT, nterms=nterms, ref_freq=wf.REF, psf=False)
        residual = again.dirty / ti.weight_sum
        assert np.abs(residual - r.residual).max() < w_term * peak
        if r.stop_reason == "threshold":
            break
    assert r.stop_reason == "threshold"
    if out is not None:
        out["components"] = comps
    beam = fit_clean_beam(psf[0], f.geom.cell)
    restored = restore.restore_terms(comps, residual, psf, beam, f.geom.cell)
    return restored, restore.residual_sigma(residual, psf), residual, psf


def test_nterms_2_recovers_fluxes_and_spectral_indices():
    f = wf.make()
    restored, sigma, _, _ = _image(f, 2)
    assert sigma[0] == pytest.approx(f.noise_image, rel=0.15)
    alpha, error = restore.spectral_index(restored, cut=5 * sigma[0], sigma=sigma)
    bright = 0
    for s in f.sources:
        y, x = s["y"], s["x"]
        truth = wf.band_truth(f, s, 2)
        tt0, snr = restored[0, y, x], restored[0, y, x] / sigma[0]
        assert snr > 20, s
        assert abs(alpha[y, x] - truth[1] / truth[0]) < 3 * error[y, x], s
        if snr >= 100:
            bright += 1
            assert tt0 == pytest.approx(truth[0], rel=0.01), s
            assert alpha[y, x] == pytest.approx(truth[1] / truth[0], abs=0.05), s
        else:
            assert error[y, x] < 0.3 and tt0 == pytest.approx(truth[0], abs=3 * sigma[0]), s
    assert bright >= 5
    assert np.isnan(alpha[restored[0] <= 5 * sigma[0]]).all()


def test_nterms_3_recovers_the_flux_at_the_reference_frequency():
    # over 1-2 GHz a first-order polynomial cannot follow alpha -1.5 (its tt0 is 8 % above
    # S(nu0)); with three terms tt0 is S(nu0) to 0.3 % (the band fit) plus noise
    f = wf.make(sources=wf.SOURCES[:5], noise=0.3)
    restored, sigma, _, _ = _image(f, 3)
    for s in f.sources:
        tt0 = restored[0, s["y"], s["x"]]
        assert tt0 == pytest.approx(s["flux"], rel=0.01), s


def test_primary_beam_corrected_fluxes_out_to_the_half_power_radius():
    # flat spectra: the apparent spectrum is S x beam(nu), whose nterms-2 fit divided by the
    # beam's own fit is S exactly; the half-power radius at 1.5 GHz is 14 arcmin = 70 pixels
    cell = 12 * ASEC
    hpr = primary_beam.half_power_radius(1.5e9) / cell
    sources = [(0, 0, 0.5, 0.0), (30, -20, 0.4, 0.0), (-45, 35, 0.5, 0.0),
               (round(hpr * 0.7), round(hpr * 0.7), 0.6, 0.0), (-round(hpr) + 1, 0, 0.8, 0.0)]
    f = wf.make(size=160, cell=cell, sources=sources, primary_beam=True, noise=0.2)
    restored, sigma, _, _ = _image(f, 2, w_term=1e-3)
    weights = np.full(len(f.freq), float(len(f.uvw)))
    pb = primary_beam.taylor_beam(f.geom.shape, cell, f.freq, weights, ref_freq=wf.REF,
                                  nterms=2)
    corrected = primary_beam.pb_correct(restored[0], pb[0], pb_limit=0.2)
    alpha = primary_beam.pb_correct_alpha(
        restore.spectral_index(restored, cut=5 * sigma[0])[0], pb, pb_limit=0.2)
    for s in f.sources:
        y, x = s["y"], s["x"]
        assert pb[0, y, x] > 0.45
        assert corrected[y, x] == pytest.approx(s["flux"], rel=0.02), s
        assert alpha[y, x] == pytest.approx(0.0, abs=0.1), s
    assert np.isnan(corrected[pb[0] < 0.2]).all()


EXTENDED = (-10, -8, 0.6, -0.3, 14.0)  # a Gaussian of FWHM 14 pixels (2.3 beams), alpha -0.3


def _extended(f: wf.Field, comps: TaylorComponents) -> tuple[float, float]:
    """(tt0 flux, flux-weighted alpha) of the model within 30 pixels of the Gaussian."""
    g = f.sources[-1]
    models = comps.images()
    yy, xx = np.mgrid[:f.geom.ny, :f.geom.nx]
    near = np.hypot(yy - g["y"], xx - g["x"]) < 30
    return models[0][near].sum(), models[1][near].sum() / models[0][near].sum()


def test_multiscale_models_an_extended_source_and_its_spectrum():
    f = wf.make(sources=[(20, 25, 0.3, 0.3)], gaussians=[EXTENDED], noise=0.1)
    truth = wf.band_truth(f, f.sources[-1], 2)
    found = {}
    for algorithm in ("hogbom", "multiscale"):
        params = CleanParams(algorithm=algorithm, niter=20000, gain=0.1, mgain=0.8,
                             scales=(0, 6, 12, 24))
        out: dict = {}
        restored, sigma, _, _ = _image(f, 2, params=params, threshold=3.0, out=out,
                                       w_term=3e-4)
        found[algorithm] = out["components"]
        point = f.sources[0]
        assert restored[0, point["y"], point["x"]] == pytest.approx(
            wf.band_truth(f, point, 2)[0], rel=0.01)
    comps = found["multiscale"]
    assert comps.scale.max() > 0 and len(comps) < 0.7 * len(found["hogbom"])
    flux, alpha = _extended(f, comps)
    assert flux == pytest.approx(truth[0], rel=0.03)
    assert alpha == pytest.approx(truth[1] / truth[0], abs=0.05)
    # Högbom leaves more of it in the residual and gets its spectrum worse
    assert abs(_extended(f, found["hogbom"])[1] - truth[1] / truth[0]) > abs(alpha - truth[1]
                                                                            / truth[0])


def test_three_terms_model_a_steep_extended_spectrum():
    # alpha -0.8 over 1-2 GHz: two terms leave the curvature, which extended emission spreads
    # into tt1 (alpha 0.06 too steep, noise free); three terms do not
    g = (*EXTENDED[:3], -0.8, EXTENDED[4])
    f = wf.make(sources=[(20, 25, 0.3, 0.3)], gaussians=[g], noise=0.0)
    truth = wf.band_truth(f, f.sources[-1], 3)
    params = CleanParams(algorithm="multiscale", niter=20000, gain=0.1, mgain=0.8,
                         scales=(0, 6, 12, 24))
    out: dict = {}
    f.noise_image = 1.85e-3  # clean to the 0.5 x 1.85 mJy of the noisy field
    _image(f, 3, params=params, threshold=0.5, out=out, w_term=3e-4)
    flux, alpha = _extended(f, out["components"])
    assert flux == pytest.approx(truth[0], rel=0.015)
    assert alpha == pytest.approx(truth[1] / truth[0], abs=0.02)


def test_bad_inputs_are_input_errors():
    params = CleanParams()
    with pytest.raises(InputError, match="needs 3 Taylor PSFs"):
        multi_term_cycle(np.zeros((2, 8, 8)), np.ones((2, 8, 8)), params, iterations_done=0,
                          threshold=0.0)
    with pytest.raises(InputError, match="nterms"):
        taylor.check_nterms(0)
    narrow = np.zeros((3, 16, 16))
    narrow[:, 8, 8] = (1.0, 0.0, 0.0)  # a zero-width band: the Hessian is singular
    with pytest.raises(InputError, match="singular"):
        multi_term_cycle(np.zeros((2, 8, 8)), narrow, params, iterations_done=0, threshold=0.0)
    with pytest.raises(InputError, match="hogbom"):
        multi_term_cycle(np.zeros((1, 8, 8)), narrow[:1], CleanParams(algorithm="clark"),
                          iterations_done=0, threshold=0.0)
    assert math.isnan(restore.spectral_index(np.ones((2, 2, 2)) * [[[0.0]], [[1.0]]],
                                           cut=0.5)[0][0, 0])


def test_taylor_components_merge_and_round_trip(tmp_path):
    a = TaylorComponents.from_arrays([3, 5, 3], [2, 2, 2], [[1.0, -0.5], [0.2, 0.1],
                                                                  [0.5, 0.25]], 8, 6,
                                           scale=[0.0, 4.0, 0.0])
    assert len(a) == 2 and a.nterms == 2
    np.testing.assert_allclose(a.flux[a.x == 3], [[1.5, -0.25]])
    both = a.merge(a)
    np.testing.assert_allclose(both.flux, 2 * a.flux)
    images = a.images()
    assert images.shape == (2, 6, 8)
    np.testing.assert_allclose(images.sum(axis=(1, 2)), a.flux.sum(axis=0))
    path = tmp_path / "model-tt.json"
    a.write(path, 1.5e9)
    back, ref = TaylorComponents.read(path)
    assert ref == 1.5e9
    for k in ("x", "y", "scale", "flux"):
        np.testing.assert_array_equal(getattr(back, k), getattr(a, k))
    path.write_text(path.read_text().replace('"count":2', '"count":3'))
    with pytest.raises(InputError, match="count"):
        TaylorComponents.read(path)
    path.write_text("{")
    with pytest.raises(InputError, match="cannot read"):
        TaylorComponents.read(path)

"""The minor cycle (Högbom, Clark, multiscale), its stop rules and the component list."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.fft
import scipy.signal

from htclean.imaging.deconvolution.clean import (
    CleanParams,
    PSFSubtractor,
    find_peak,
    minor_cycle,
    subtract_shifted,
)
from htclean.imaging.deconvolution.components import ComponentList, scale_kernel
from htclean.imaging.deconvolution.convolver import Convolver
from htclean.imaging.errors import InputError
from htclean.imaging.noise import robust_sigma
from htclean.workflows import config


def ripple_psf(ny: int, nx: int, sigma: tuple[float, float] = (1.6, 1.2),
               amp: float = 0.15) -> np.ndarray:
    """A PSF with an elongated Gaussian main lobe and ringing sidelobes over the whole image,
    positive and negative, peak exactly 1 at (ny // 2, nx // 2)."""
    y, x = np.mgrid[:ny, :nx]
    y, x = y - ny // 2, x - nx // 2
    r = np.hypot(y / sigma[0], x / sigma[1])
    psf = np.exp(-0.5 * r**2) + amp * np.sin(1.3 * r) / (1.0 + 0.3 * r) * (1 - np.exp(-0.5 * r**2))
    return psf / psf[ny // 2, nx // 2]


def sky_residual(psf: np.ndarray, shape: tuple[int, int], sources) -> np.ndarray:
    """The dirty image of point sources [(y, x, flux)]: a sum of shifted PSFs."""
    res = np.zeros(shape)
    for y, x, f in sources:
        subtract_shifted(res, psf, y, x, -f)
    return res


SOURCES = [(20, 30, 1.0), (45, 12, -0.4), (40, 50, 0.25), (10, 8, 0.6)]


def params(**kw) -> CleanParams:
    base = dict(niter=100000, gain=0.1, mgain=1.0, threshold=0.0)
    base.update(kw)
    return CleanParams(**base)


def delta_psf(n: int = 33) -> np.ndarray:
    psf = np.zeros((n, n))
    psf[n // 2, n // 2] = 1.0
    return psf


# --- recovering sources ----------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["hogbom", "clark", "multiscale"])
def test_point_sources_recovered(algorithm):
    psf = ripple_psf(64, 64)
    res = sky_residual(psf, (64, 64), SOURCES)
    out = minor_cycle(res, psf, params(algorithm=algorithm, scales=(0, 4)), iterations_done=0,
                      threshold=1e-4)
    assert out.stop_reason == "threshold"
    assert out.peak_start == pytest.approx(np.abs(res).max())
    assert out.peak_end <= 1e-4 and out.peak_end == pytest.approx(np.abs(out.residual).max())
    comps = out.components
    assert np.all(comps.scale == 0)
    for y, x, f in SOURCES:
        at = (comps.y == y) & (comps.x == x)
        assert comps.flux[at].sum() == pytest.approx(f, abs=2e-3)
    assert comps.total_flux == pytest.approx(sum(f for *_, f in SOURCES), abs=2e-3)
    # the residual returned is the input minus the model convolved with the PSF
    model_res = sky_residual(psf, (64, 64), [(y, x, f) for x, y, f in
                                             zip(comps.x, comps.y, comps.flux, strict=True)])
    np.testing.assert_allclose(out.residual, res - model_res, atol=1e-10)
    assert not np.shares_memory(out.residual, res)


def test_ideal_case_exact():
    """A delta PSF and gain 1: each source is found in one iteration with its exact flux."""
    res = np.zeros((32, 32))
    for y, x, f in [(3, 4, 2.0), (20, 9, -1.5), (31, 31, 0.5)]:
        res[y, x] = f
    out = minor_cycle(res, delta_psf(), params(gain=1.0), iterations_done=0, threshold=0.0)
    assert out.iterations == 3 and out.stop_reason == "no-peak"
    assert list(zip(out.components.y.tolist(), out.components.x.tolist(),
                    out.components.flux.tolist(), strict=True)) == [
        (3, 4, 2.0), (20, 9, -1.5), (31, 31, 0.5)]
    assert not out.residual.any()


@pytest.mark.parametrize("psf_size", [(17, 21), (128, 128), (127, 96)])
def test_psf_smaller_or_larger_than_image(psf_size):
    psf = ripple_psf(*psf_size)
    res = sky_residual(psf, (64, 64), SOURCES)
    out = minor_cycle(res, psf, params(), iterations_done=0, threshold=1e-5)
    for y, x, f in SOURCES:
        at = (out.components.y == y) & (out.components.x == x)
        assert out.components.flux[at].sum() == pytest.approx(f, abs=1e-4)


def test_first_subtraction_is_gain_times_peak_times_shifted_psf():
    psf = ripple_psf(40, 40)
    res = sky_residual(psf, (64, 64), SOURCES)
    out = minor_cycle(res, psf, params(niter=1, gain=0.3), iterations_done=0, threshold=0.0)
    expected = res.copy()
    subtract_shifted(expected, psf, 20, 30, 0.3 * res[20, 30])
    np.testing.assert_array_equal(out.residual, expected)
    assert out.components.flux.tolist() == [0.3 * res[20, 30]]


def test_float32_residual_stays_float32():
    psf = ripple_psf(64, 64)
    res = sky_residual(psf, (64, 64), SOURCES).astype(np.float32)
    for algorithm in ("hogbom", "clark"):
        out = minor_cycle(res, psf, params(algorithm=algorithm), iterations_done=0,
                          threshold=1e-3)
        assert out.residual.dtype == np.float32
        assert out.components.flux.dtype == np.float64
        assert out.components.total_flux == pytest.approx(1.45, abs=5e-3)


def test_clark_matches_hogbom_with_high_sidelobes():
    psf = ripple_psf(64, 64, amp=0.4)
    res = sky_residual(psf, (64, 64), SOURCES)
    outs = {a: minor_cycle(res, psf, params(algorithm=a), iterations_done=0, threshold=1e-3)
            for a in ("hogbom", "clark")}
    assert outs["clark"].stop_reason == "threshold"
    for y, x, f in SOURCES:
        at = (outs["clark"].components.y == y) & (outs["clark"].components.x == x)
        assert outs["clark"].components.flux[at].sum() == pytest.approx(f, abs=1e-2)
    assert outs["clark"].iterations < 2 * outs["hogbom"].iterations


def test_multiscale_recovers_extended_flux():
    n = 96
    y, x = np.mgrid[:n, :n]
    sky = np.exp(-0.5 * ((y - 50) ** 2 + (x - 44) ** 2) / 5.0**2)
    sky *= 3.0 / sky.sum()
    sky[20, 70] += 0.5
    psf = ripple_psf(n, n, amp=0.1)
    res = Convolver((n, n), [psf]).convolve(sky)
    out = minor_cycle(res, psf, params(algorithm="multiscale", scales=(0, 4, 8, 16)),
                      iterations_done=0, threshold=0.002 * np.abs(res).max())
    comps = out.components
    assert out.stop_reason == "threshold"
    assert comps.total_flux == pytest.approx(3.5, rel=0.03)
    assert comps.flux[comps.scale > 0].sum() > 2.0  # the blob went to the extended scales
    near = (np.abs(comps.y - 20) <= 1) & (np.abs(comps.x - 70) <= 1)
    assert comps.flux[near].sum() == pytest.approx(0.5, rel=0.05)
    # the model reproduces the residual change: residual = dirty - model ⊛ psf
    np.testing.assert_allclose(out.residual, res - Convolver((n, n), [psf]).convolve(
        comps.to_image()), atol=1e-9)
    # hogbom needs many more components for the same blob
    hog = minor_cycle(res, psf, params(), iterations_done=0,
                      threshold=0.002 * np.abs(res).max())
    assert out.iterations < hog.iterations


def test_multiscale_drops_scales_that_do_not_fit():
    psf = ripple_psf(32, 32)
    res = sky_residual(psf, (32, 32), [(16, 16, 1.0)])
    out = minor_cycle(res, psf, params(algorithm="multiscale", scales=(0, 4, 40)),
                      iterations_done=0, threshold=1e-3)
    assert set(out.components.scale.tolist()) <= {0.0, 4.0}
    with pytest.raises(InputError, match="scales"):
        minor_cycle(res, psf, params(algorithm="multiscale", scales=(40,)), iterations_done=0,
                    threshold=1e-3)


# --- stop rules ------------------------------------------------------------------------------


def single(flux: float = 1.0) -> np.ndarray:
    res = np.zeros((16, 16))
    res[5, 7] = flux
    return res


def test_threshold_stops_exactly():
    out = minor_cycle(single(), delta_psf(), params(gain=0.5), iterations_done=0, threshold=0.25)
    # peaks 1, 0.5, 0.25: the third is not above the threshold
    assert (out.iterations, out.stop_reason, out.peak_end) == (2, "threshold", 0.25)
    assert out.components.flux.tolist() == [0.75]


def test_niter_counts_earlier_cycles():
    out = minor_cycle(single(), delta_psf(), params(niter=10, gain=0.1), iterations_done=7,
                      threshold=0.0)
    assert (out.iterations, out.stop_reason) == (3, "niter")
    assert out.peak_end == pytest.approx(0.9**3)
    spent = minor_cycle(single(), delta_psf(), params(niter=10), iterations_done=12,
                        threshold=0.0)
    assert (spent.iterations, spent.stop_reason, len(spent.components)) == (0, "niter", 0)
    np.testing.assert_array_equal(spent.residual, single())


@pytest.mark.parametrize("algorithm", ["hogbom", "clark", "multiscale"])
def test_mgain_stops_exactly(algorithm):
    # 0.9^6 = 0.531 > 0.5 >= 0.9^7 = 0.478: seven components
    out = minor_cycle(single(-2.0), delta_psf(), params(algorithm=algorithm, mgain=0.5,
                                                        scales=(0,)),
                      iterations_done=0, threshold=0.0)
    assert (out.iterations, out.stop_reason) == (7, "mgain")
    assert out.peak_start == 2.0 and out.peak_end == pytest.approx(2.0 * 0.9**7)


def test_threshold_reported_before_niter_and_mgain():
    out = minor_cycle(single(), delta_psf(), params(niter=1, mgain=0.5, gain=0.5),
                      iterations_done=0, threshold=0.5)
    assert (out.iterations, out.stop_reason) == (1, "threshold")


def test_zero_residual_is_no_peak():
    out = minor_cycle(np.zeros((8, 8)), delta_psf(5), params(), iterations_done=0,
                      threshold=0.0)
    assert (out.iterations, out.stop_reason, out.peak_start) == (0, "no-peak", 0.0)


# --- determinism and ties --------------------------------------------------------------------


def test_ties_go_to_the_lowest_flat_index():
    res = np.zeros((8, 8))
    res[4, 1], res[2, 6], res[6, 0] = 1.0, -1.0, 1.0
    assert find_peak(res) == (2, 6, -1.0)
    out = minor_cycle(res, delta_psf(5), params(niter=1), iterations_done=0, threshold=0.0)
    assert (out.components.y.tolist(), out.components.x.tolist()) == ([2], [6])


def textbook_hogbom(res: np.ndarray, psf: np.ndarray, gain: float, floor: float):
    """Högbom over every pixel: [(y, x, amp)] and the residual."""
    res = res.copy()
    found = []
    y, x, v = find_peak(res)
    while abs(v) > floor:
        found.append((y, x, gain * v))
        subtract_shifted(res, psf, y, x, gain * v)
        y, x, v = find_peak(res)
    return found, res


@pytest.mark.parametrize("mgain,threshold", [(0.8, 0.0), (1.0, 0.05)])
def test_hogbom_list_cycle_equals_textbook_hogbom(mgain, threshold):
    """Högbom on the list of pixels above the floor picks what the loop over every pixel
    picks, in the same order (no pixel outside the list rises above the floor here)."""
    rng = np.random.default_rng(5)
    psf = ripple_psf(128, 128)
    res = sky_residual(psf, (64, 64), SOURCES) + rng.normal(0, 0.01, (64, 64))
    out = minor_cycle(res, psf, params(mgain=mgain), iterations_done=0, threshold=threshold)
    floor = max(threshold, (1 - mgain) * np.abs(res).max())
    found, expected = textbook_hogbom(res, psf, 0.1, floor)
    assert out.iterations == len(found) > 30
    ys, xs, amps = (np.array(c) for c in zip(*found, strict=True))
    assert out.components == ComponentList.from_arrays(xs, ys, amps, np.zeros(ys.size), 64, 64)
    np.testing.assert_allclose(out.residual, expected, atol=1e-12)


@pytest.mark.parametrize("algorithm", ["hogbom", "clark", "multiscale"])
def test_two_runs_identical(algorithm):
    rng = np.random.default_rng(1)
    psf = ripple_psf(48, 48)
    res = sky_residual(psf, (48, 48), SOURCES[:3]) + rng.normal(0, 0.01, (48, 48))
    p = params(algorithm=algorithm, niter=300, scales=(0, 3))
    a = minor_cycle(res, psf, p, iterations_done=0, threshold=0.02)
    b = minor_cycle(res.copy(), psf.copy(), p, iterations_done=0, threshold=0.02)
    assert a.components == b.components
    assert a.residual.tobytes() == b.residual.tobytes()
    assert a.summary() == b.summary()


# --- bad input -------------------------------------------------------------------------------


def test_bad_inputs_are_input_errors():
    psf = ripple_psf(16, 16)
    res = np.zeros((16, 16))
    off = np.roll(psf, 2, axis=1)
    with pytest.raises(InputError, match="centre"):
        minor_cycle(res, off, params(), iterations_done=0, threshold=0.0)
    with pytest.raises(InputError, match="NaN"):
        minor_cycle(np.full((16, 16), np.nan), psf, params(), iterations_done=0, threshold=0.0)
    with pytest.raises(InputError, match="2-D"):
        minor_cycle(np.zeros(16), psf, params(), iterations_done=0, threshold=0.0)
    with pytest.raises(InputError, match="threshold"):
        minor_cycle(res, psf, params(), iterations_done=0, threshold=-1.0)
    with pytest.raises(InputError, match="iterations_done"):
        minor_cycle(res, psf, params(), iterations_done=-1, threshold=0.0)
    for kw, key in [({"gain": 0.0}, "gain"), ({"algorithm": "sdi"}, "algorithm"),
                    ({"mgain": 1.5}, "mgain"), ({"scales": ()}, "scales"),
                    ({"niter": 1.5}, "niter"), ({"auto_threshold": -3}, "auto_threshold")]:
        with pytest.raises(InputError, match=key):
            params(**kw)


# --- parameters from the configuration -------------------------------------------------------


def test_params_from_settings():
    raw = {"data": {"ms": "obs.ms"}, "image": {"scale": "1asec"},
           "deconvolution": {"algorithm": "multiscale", "niter": 500, "gain": 0.2,
                             "mgain": 0.7, "threshold": "0.5mJy", "auto_threshold": 3,
                             "scale_bias": 0.5}}
    settings = config.parse(config.resolve(raw))
    p = CleanParams.from_settings(settings)
    assert (p.algorithm, p.niter, p.gain, p.mgain, p.auto_threshold, p.scale_bias) == (
        "multiscale", 500, 0.2, 0.7, 3.0, 0.5)
    assert p.threshold == pytest.approx(5e-4)
    assert p.scales == (0.0, 4.0, 16.0)
    default = CleanParams.from_settings(config.parse(config.resolve(
        {"data": {"ms": "obs.ms"}, "image": {"scale": "1asec"}})))
    assert (default.algorithm, default.niter, default.mgain) == ("hogbom", 1000, 0.8)
    with pytest.raises(InputError, match="no deconvolution section"):
        CleanParams.from_settings({"image": {}})
    del settings["deconvolution"]["mgain"]
    with pytest.raises(InputError, match="deconvolution.mgain"):
        CleanParams.from_settings(settings)


def test_cycle_threshold_combines_auto_threshold():
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 0.01, (200, 200))
    assert robust_sigma(noise) == pytest.approx(0.01, rel=0.03)
    noise[:5, :5] = 100.0  # a few bright pixels barely move the MAD
    assert robust_sigma(noise) == pytest.approx(0.01, rel=0.03)
    p = CleanParams(threshold=0.01, auto_threshold=5.0)
    assert p.cycle_threshold(noise) == pytest.approx(5 * robust_sigma(noise))
    assert CleanParams(threshold=0.2, auto_threshold=5.0).cycle_threshold(noise) == 0.2
    assert CleanParams(threshold=0.2).cycle_threshold(noise) == 0.2
    withnan = noise.copy()
    withnan[100:, :] = np.nan
    assert robust_sigma(withnan) == pytest.approx(0.01, rel=0.05)
    with pytest.raises(InputError, match="finite"):
        robust_sigma(np.full((4, 4), np.nan))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_robust_sigma_is_the_mad_and_leaves_the_image_alone(dtype):
    rng = np.random.default_rng(5)
    image = rng.normal(0, 0.01, (64, 65)).astype(dtype)
    image[3, 4], image[7, 8] = np.nan, np.inf
    before = image.copy()
    finite = image[np.isfinite(image)]
    mad = np.median(np.abs(finite - np.median(finite)))
    assert robust_sigma(image) == float(1.4826 * mad)  # to the bit
    np.testing.assert_array_equal(image, before)


# --- the FFT pieces --------------------------------------------------------------------------


@pytest.mark.parametrize("kshape", [(5, 7), (40, 31), (90, 80), (60, 88), (61, 87)])
def test_convolver_is_linear_convolution(kshape):
    rng = np.random.default_rng(3)
    image, kernel = rng.normal(size=(30, 44)), rng.normal(size=kshape)
    full = scipy.signal.convolve2d(image, kernel)
    cy, cx = kshape[0] // 2, kshape[1] // 2
    conv = Convolver(image.shape, [kernel, kernel[::-1]])
    np.testing.assert_allclose(conv.convolve(image), full[cy:cy + 30, cx:cx + 44], atol=1e-10)
    # the transform is never longer than 2n - 1 (rounded up): a 2x PSF costs no more padding
    assert conv.pad[0] <= scipy.fft.next_fast_len(min(30 + kshape[0] - 1, 59), True)
    both = conv.convolve_all(image)
    np.testing.assert_array_equal(both[0], conv.convolve(image))
    flipped = scipy.signal.convolve2d(image, kernel[::-1])
    np.testing.assert_allclose(both[1], flipped[cy:cy + 30, cx:cx + 44], atol=1e-10)
    single = Convolver(image.shape, [kernel], dtype=np.float32).convolve(image)
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, full[cy:cy + 30, cx:cx + 44], atol=1e-4)


@pytest.mark.parametrize("scale", [0.0, 5.0])
def test_subtractor_direct_equals_fft(scale):
    rng = np.random.default_rng(4)
    psf = ripple_psf(40, 36)
    ys, xs = rng.integers(8, 32, 12), rng.integers(8, 40, 12)
    amps = rng.normal(size=12)
    base = rng.normal(size=(40, 48))
    direct, fft = base.copy(), base.copy()
    sub = PSFSubtractor(base.shape, psf)
    sub.direct_limit = 100
    sub(direct, ys, xs, amps, scale=scale)
    sub.direct_limit = 1
    sub(fft, ys, xs, amps, scale=scale)
    np.testing.assert_allclose(direct, fft, atol=1e-10)
    model = ComponentList.from_arrays(xs, ys, amps, np.full(12, scale), 48, 40).to_image()
    np.testing.assert_allclose(direct, base - Convolver(base.shape, [psf]).convolve(model),
                               atol=1e-10)


# --- the component list ----------------------------------------------------------------------


def test_component_list_merges_sorts_and_images():
    c = ComponentList.from_arrays([3, 1, 3, 2, 0], [4, 4, 4, 0, 1], [1.0, 2.0, 0.5, -1.0, 0.0],
                                  [0, 0, 0, 4, 0], nx=8, ny=6)
    assert (c.x.tolist(), c.y.tolist(), c.flux.tolist(), c.scale.tolist()) == (
        [1, 3, 2], [4, 4, 0], [2.0, 1.5, -1.0], [0.0, 0.0, 4.0])
    image = c.to_image()
    assert image.shape == (6, 8) and image[4, 1] == 2.0 and image[4, 3] == 1.5
    merged = c.merge(ComponentList.from_arrays([1], [4], [-2.0], [0], nx=8, ny=6))
    assert len(merged) == 2 and merged.total_flux == pytest.approx(0.5)
    with pytest.raises(InputError, match="merge"):
        c.merge(ComponentList.empty(8, 8))
    for bad in ([9], [-1]):
        with pytest.raises(InputError, match="x outside"):
            ComponentList.from_arrays(bad, [0], [1.0], [0], nx=8, ny=6)


@pytest.mark.parametrize("scale", [1.0, 4.0, 7.5, 16.0])
def test_scale_components_sum_to_their_flux(scale):
    k = scale_kernel(scale)
    assert k.shape[0] % 2 == 1 and k.sum() == pytest.approx(1.0)
    assert k[k.shape[0] // 2, k.shape[1] // 2] == k.max()
    np.testing.assert_allclose(k, k.T)
    c = ComponentList.from_arrays([20], [21], [2.5], [scale], nx=48, ny=40)
    assert c.to_image().sum() == pytest.approx(2.5)
    assert np.argmax(c.to_image()) == 21 * 48 + 20


def test_json_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    c = ComponentList.from_arrays(rng.integers(0, 100, 50), rng.integers(0, 80, 50),
                                  rng.normal(size=50) / 3, rng.choice([0.0, 4.0, 16.0], 50),
                                  nx=100, ny=80)
    assert ComponentList.from_json(c.to_json()) == c
    path = tmp_path / "model.json"
    c.write(path)
    back = ComponentList.read(path)
    assert back == c and back.flux.tobytes() == c.flux.tobytes()
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]
    assert ComponentList.from_json(ComponentList.empty(4, 4).to_json()) == \
        ComponentList.empty(4, 4)


def test_corrupt_component_file_is_input_error(tmp_path):
    c = ComponentList.from_arrays([1, 2], [3, 4], [0.5, 0.25], [0, 0], nx=8, ny=8)
    good = json.loads(c.to_json())
    path = tmp_path / "model.json"
    cases = {
        "truncated": c.to_json()[:-20],
        "not-json": "\x00\x01garbage",
        "wrong-format": json.dumps({**good, "format": "wsclean"}),
        "missing": json.dumps({k: v for k, v in good.items() if k != "flux"}),
        "short": json.dumps({**good, "flux": [0.5]}),
        "outside": json.dumps({**good, "x": [1, 8]}),
        "float-pixel": json.dumps({**good, "y": [3.5, 4]}),
        "nan": c.to_json().replace("0.25", "NaN"),
        "count": json.dumps({**good, "count": 3}),
        "negative-scale": json.dumps({**good, "scale": [0, -1]}),
    }
    for name, text in cases.items():
        path.write_text(text)
        with pytest.raises(InputError, match="model.json") as err:
            ComponentList.read(path)
        assert "\n" not in str(err.value), name
    with pytest.raises(InputError, match="cannot read"):
        ComponentList.read(tmp_path / "absent.json")

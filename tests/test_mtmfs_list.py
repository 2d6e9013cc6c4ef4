"""The multi-term minor cycles on candidate lists (imaging/deconvolution/mtmfs_list.py)
against the loops over every pixel (tests/mtmfs_reference.py): the same components, in number,
position and Taylor coefficients, and the same residual and model images, on a simulated 1-2 GHz
field (tests/widebandfield.py) with the primary beam, nterms 2 and 3, Högbom and multiscale,
PSFs twice the image and as large as it. The cycles go down to 5 sigma: no pixel outside a list
rises above the list's level there (going on to 3 sigma one does, in the last cycle of nterms 3,
and the listed cycle takes it in its next list instead: mtmfs_list.py's docstring)."""

from __future__ import annotations

import functools

import mtmfs_reference as reference
import numpy as np
import pytest
import widebandfield as wf

from htclean.imaging.deconvolution import hogbom, multiscale
from htclean.imaging.deconvolution.clean import CleanParams, multi_term_cycle
from htclean.imaging.deconvolution.mtmfs_list import (
    TermSubtractor,
    list_clean_terms,
    scores,
    subtract,
)
from htclean.imaging.gridding import gridding, taylor

EXACT = gridding.GridParams(epsilon=1e-7, threads=1)


@functools.cache
def _field(nterms: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(normalised Taylor dirty images, PSFs twice the image, image noise) of a 96² field."""
    f = wf.make(size=96, primary_beam=True, gaussians=((10, -12, 3.0, -0.8, 12.0),))
    ti = taylor.grid_terms(f.uvw, f.freq, f.vis, None, f.geom, f.psf_geom, EXACT,
                           nterms=nterms, ref_freq=wf.REF)
    dirty, psf = ti.normalised()
    return dirty, psf, f.noise_image


def _cycles(dirty: np.ndarray, psf: np.ndarray, params: CleanParams, threshold: float):
    """Minor cycles one after the other (each on the last one's residuals) until the
    threshold: (components, residuals, iterations per cycle, stop reasons)."""
    comps, residual, counts, reasons = None, dirty, [], []
    while not reasons or reasons[-1] == "mgain":
        r = multi_term_cycle(residual, psf, params, iterations_done=sum(counts),
                              threshold=threshold)
        comps = r.components if comps is None else comps.merge(r.components)
        residual = r.residual
        counts.append(r.iterations)
        reasons.append(r.stop_reason)
    return comps, residual, counts, reasons


def _assert_same(fast, slow, peak: float) -> None:
    comps, residual, counts, reasons = fast
    ref_comps, ref_residual, ref_counts, ref_reasons = slow
    assert (counts, reasons) == (ref_counts, ref_reasons)
    np.testing.assert_array_equal(comps.x, ref_comps.x)
    np.testing.assert_array_equal(comps.y, ref_comps.y)
    np.testing.assert_array_equal(comps.scale, ref_comps.scale)
    np.testing.assert_allclose(comps.flux, ref_comps.flux, rtol=1e-6, atol=1e-7 * peak)
    np.testing.assert_allclose(comps.images(), ref_comps.images(), rtol=0, atol=1e-7 * peak)
    np.testing.assert_allclose(residual, ref_residual, rtol=0, atol=1e-7 * peak)


@pytest.mark.parametrize("nterms", [2, 3])
def test_listed_hogbom_equals_the_loop_over_every_pixel(nterms, monkeypatch):
    dirty, psf, noise = _field(nterms)
    params = CleanParams(niter=5000, gain=0.1, mgain=0.8)
    fast = _cycles(dirty, psf, params, 5 * noise)
    monkeypatch.setattr(hogbom, "run_terms", reference.hogbom)
    slow = _cycles(dirty, psf, params, 5 * noise)
    assert sum(slow[2]) > 200 and len(slow[2]) >= 3 and slow[3][-1] == "threshold"
    _assert_same(fast, slow, float(np.abs(dirty[0]).max()))


def test_a_psf_smaller_than_the_list_reaches_as_far_as_it_goes():
    """A PSF the image's size: offsets beyond it count as zero, as with that PSF zero-padded
    to twice the image (where every offset is inside)."""
    dirty, psf, noise = _field(2)
    n = dirty.shape[1]
    small = psf[:, n // 2:n // 2 + n, n // 2:n // 2 + n]
    padded = np.zeros_like(psf)
    padded[:, n // 2:n // 2 + n, n // 2:n // 2 + n] = small
    h_inv = taylor.inverse(taylor.hessian(small))
    flat = np.flatnonzero(scores(h_inv, dirty) > (20 * noise) ** 2)
    assert flat.size > 50
    out = []
    for p in (small, padded):
        values = dirty.reshape(2, -1)[:, flat]
        out.append((*list_clean_terms(values, flat, n, p, h_inv, 0.1, 0.0, 300), values))
    for a, b in zip(*out, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("nterms", [2, 3])
def test_listed_multiscale_equals_the_loop_over_every_pixel(nterms, monkeypatch):
    dirty, psf, noise = _field(nterms)
    params = CleanParams(algorithm="multiscale", niter=5000, gain=0.1, mgain=0.8,
                         scales=(0, 6, 12), scale_bias=0.9)
    fast = _cycles(dirty, psf, params, 5 * noise)
    monkeypatch.setattr(multiscale, "_sub_minor", reference.sub_minor)
    slow = _cycles(dirty, psf, params, 5 * noise)
    assert sum(slow[2]) > 100 and len(slow[2]) >= 3 and (slow[0].scale > 0).any()
    _assert_same(fast, slow, float(np.abs(dirty[0]).max()))


def test_term_subtractor_by_fft_equals_shifted_psfs():
    dirty, psf, _ = _field(3)
    rng = np.random.default_rng(2)
    ys, xs = rng.integers(0, dirty.shape[1], 40), rng.integers(0, dirty.shape[2], 40)
    amps = rng.normal(0, 0.1, (40, 3))
    sub = TermSubtractor(dirty.shape[1:], psf)
    assert sub.direct_limit < 40  # the FFT path
    by_fft = dirty.copy()
    sub(by_fft, ys, xs, amps)
    by_shift = dirty.copy()
    for y, x, a in zip(ys, xs, amps, strict=True):
        subtract(by_shift, psf, int(y), int(x), a)
    np.testing.assert_allclose(by_fft, by_shift, rtol=0, atol=1e-12)

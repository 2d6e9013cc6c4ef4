"""uv-plane continuum subtraction (CASA's uvcontsub): a weighted complex polynomial fit per
spectrum over the line-free channels, subtracted from every channel."""

from __future__ import annotations

import numpy as np
import pytest

from htclean.imaging.errors import InputError
from htclean.imaging.ms.msread import VisChunk
from htclean.imaging.spectral import contsub
from htclean.imaging.spectral.channels import parse_channels

NROW, NCHAN = 120, 64
FREQ = 1.4200e9 - 24.4e3 * np.arange(NCHAN)  # descending, as many HI windows are stored
LINEFREE = parse_channels("0~19;45~63", NCHAN)
LINE = np.setdiff1d(np.arange(NCHAN), LINEFREE)


def observation(fitorder: int, seed: int = 1, noise: bool = True):
    """Continuum (a random complex polynomial of order fitorder in frequency per row) + a
    Gaussian line centred on channel 32 (FWHM 4 channels, 0.3 Jy, a random phase per row) +
    complex noise of a sigma that differs per row (weights 1/sigma^2)."""
    rng = np.random.default_rng(seed)
    x = (FREQ - FREQ.mean()) / 1e6  # MHz about the centre
    coef = (rng.normal(size=(NROW, fitorder + 1)) + 1j * rng.normal(size=(NROW, fitorder + 1)))
    continuum = coef @ np.vander(x, fitorder + 1, increasing=True).T
    profile = 0.3 * np.exp(-4 * np.log(2) * (np.arange(NCHAN) - 32.0) ** 2 / 4.0 ** 2)
    line = np.exp(2j * np.pi * rng.random(NROW))[:, None] * profile[None, :]
    sigma = rng.uniform(0.005, 0.02, NROW)[:, None] * np.ones(NCHAN)
    nz = sigma * (rng.normal(size=(NROW, NCHAN)) + 1j * rng.normal(size=(NROW, NCHAN))) / np.sqrt(2)
    if not noise:
        nz = np.zeros_like(nz)
    return continuum, line, nz, sigma


@pytest.mark.parametrize("fitorder", [0, 1])
def test_line_free_channels_become_noise_and_the_line_stays(fitorder):
    continuum, line, nz, sigma = observation(fitorder)
    out = contsub.subtract(FREQ, continuum + line + nz, 1 / sigma ** 2, LINEFREE,
                           fitorder=fitorder)
    assert out.unfitted == 0 and out.vis.shape == (NROW, NCHAN)
    norm = out.vis / sigma
    # what is left on the line-free channels is the noise less its fitted part:
    # rms^2 = 1 - (fitorder + 1) / n_linefree for unit noise
    expect = np.sqrt(1 - (fitorder + 1) / LINEFREE.size)
    assert np.sqrt(np.mean(np.abs(norm[:, LINEFREE]) ** 2)) == pytest.approx(expect, rel=0.05)
    assert abs(np.mean(norm[:, LINEFREE])) < 0.05  # no continuum left
    # the line channels keep the line, within the noise
    left = ((out.vis - line) / sigma)[:, LINE]
    assert np.sqrt(np.mean(np.abs(left) ** 2)) < 1.3
    assert abs(np.mean(left)) < 0.1
    # the fit error itself is the noise's projection: small against the noise
    err = (out.vis - line - nz) / sigma
    assert np.sqrt(np.mean(np.abs(err) ** 2)) < 2.5 * np.sqrt((fitorder + 1) / LINEFREE.size)


def test_noise_free_continuum_is_removed_exactly():
    continuum, line, _, sigma = observation(2, seed=3, noise=False)
    out = contsub.subtract(FREQ, continuum + line, 1 / sigma ** 2, LINEFREE, fitorder=2)
    line_leak = line[:, LINEFREE]  # the Gaussian's far wings (< 1e-9) lie in the fit window
    assert np.abs(line_leak).max() < 1e-9
    np.testing.assert_allclose(out.vis, line, atol=1e-8)
    # too low an order leaves the curvature behind
    low = contsub.subtract(FREQ, continuum + line, 1 / sigma ** 2, LINEFREE, fitorder=1)
    assert np.abs(low.vis - line).max() > 1e-3


def reference_fit(freq, vis, weight, linefree, fitorder):
    """The weighted complex least-squares fit, one row at a time with numpy's lstsq."""
    x = contsub.basis(freq, fitorder)
    out = np.empty_like(vis)
    for r in range(vis.shape[0]):
        use = np.zeros(freq.size, bool)
        use[linefree] = True
        use &= weight[r] > 0
        s = np.sqrt(weight[r, use])
        c = np.linalg.lstsq(x[use] * s[:, None], vis[r, use] * s, rcond=None)[0]
        out[r] = vis[r] - x @ c
    return out


def test_equals_a_weighted_least_squares_fit_per_row():
    rng = np.random.default_rng(5)
    vis = rng.normal(size=(NROW, NCHAN)) + 1j * rng.normal(size=(NROW, NCHAN))
    weight = rng.uniform(0.0, 3.0, (NROW, NCHAN)) * (rng.random((NROW, NCHAN)) > 0.2)
    out = contsub.subtract(FREQ, vis, weight, LINEFREE, fitorder=2)
    np.testing.assert_allclose(out.vis, reference_fit(FREQ, vis, weight, LINEFREE, 2),
                               rtol=0, atol=1e-12)
    # unweighted would differ: the weights matter
    flat = contsub.subtract(FREQ, vis, (weight > 0).astype(float), LINEFREE, fitorder=2)
    assert np.abs(flat.vis - out.vis).max() > 1e-2


def test_flagged_samples_are_left_out_of_the_fit():
    continuum, line, _, sigma = observation(1, seed=7, noise=False)
    vis = continuum + line
    weight = 1 / sigma ** 2
    bad = np.zeros((NROW, NCHAN), bool)
    bad[::3, [2, 7, 50]] = True  # line-free samples made garbage and flagged
    dirty = np.where(bad, 1e6 + 1e6j, vis)
    dirty[5, 11] = np.nan  # non-finite samples count as flagged
    dirty[6, 12] = np.inf
    zeroed = contsub.subtract(FREQ, dirty, np.where(bad, 0.0, weight), LINEFREE, fitorder=1)
    flagged = contsub.subtract(FREQ, dirty, weight, LINEFREE, fitorder=1, flag=bad)
    good = ~bad
    good[5, 11] = good[6, 12] = False
    for out in (zeroed, flagged):
        assert out.unfitted == 0
        np.testing.assert_allclose(out.vis[good], line[good], atol=1e-8)
    # the returned weights are the input's (the flag argument is the caller's to keep)
    np.testing.assert_array_equal(flagged.weight, weight)


def test_a_spectrum_that_cannot_be_fitted_is_flagged():
    continuum, line, _, sigma = observation(1, seed=9, noise=False)
    weight = np.array(1 / sigma ** 2)
    weight[4, LINEFREE[1:]] = 0  # one usable line-free channel: fitorder 1 needs two
    weight[8, LINEFREE] = 0  # none
    out = contsub.subtract(FREQ, continuum + line, weight, LINEFREE, fitorder=1)
    assert out.unfitted == 2
    assert out.fitted.tolist() == [r not in (4, 8) for r in range(NROW)]
    assert not out.weight[[4, 8]].any()
    np.testing.assert_array_equal(np.delete(out.weight, [4, 8], 0), np.delete(weight, [4, 8], 0))
    # order 0 needs one channel: row 4 fits
    assert contsub.subtract(FREQ, continuum + line, weight, LINEFREE, fitorder=0).unfitted == 1


def test_correlations_are_spectra_of_their_own_and_dtypes_are_kept():
    rng = np.random.default_rng(11)
    vis = (rng.normal(size=(NROW, NCHAN, 2)) + 1j * rng.normal(size=(NROW, NCHAN, 2)))
    weight = rng.uniform(0.5, 2.0, (NROW, 2)).astype(np.float32)  # an MS's WEIGHT (nrow, ncorr)
    flag = rng.random((NROW, NCHAN, 2)) < 0.1
    out = contsub.subtract(FREQ, vis.astype(np.complex64), weight[:, None, :], LINEFREE,
                           fitorder=1, flag=flag)
    assert out.vis.dtype == np.complex64 and out.vis.shape == (NROW, NCHAN, 2)
    assert out.weight.dtype == np.float32 and out.fitted.shape == (NROW, 2)
    for c in range(2):
        w = np.where(flag[:, :, c], 0, weight[:, None, c] * np.ones(NCHAN))
        one = reference_fit(FREQ, vis[:, :, c].astype(np.complex64).astype(complex), w,
                            LINEFREE, 1)
        np.testing.assert_allclose(out.vis[:, :, c], one, atol=2e-6)


def test_bad_arguments():
    vis = np.ones((3, NCHAN), complex)
    with pytest.raises(InputError, match=r"^data.continuum.fitorder: expected an integer >= 0"):
        contsub.subtract(FREQ, vis, 1.0, LINEFREE, fitorder=-1)
    with pytest.raises(InputError, match="fitorder"):
        contsub.subtract(FREQ, vis, 1.0, LINEFREE, fitorder=1.5)
    with pytest.raises(InputError, match="nchan = 64"):
        contsub.subtract(FREQ, vis[:, :10], 1.0, LINEFREE)
    with pytest.raises(InputError, match="complex"):
        contsub.subtract(FREQ, vis.real, 1.0, LINEFREE)
    with pytest.raises(InputError, match="line-free channels must be in 0..63"):
        contsub.subtract(FREQ, vis, 1.0, [0, 64])
    with pytest.raises(InputError, match="distinct"):
        contsub.subtract(np.full(NCHAN, 1e9), vis, 1.0, LINEFREE)


def test_a_chunk_of_a_descending_window_uses_the_windows_channel_numbers():
    """A part's chunk has ascending frequencies (a descending window read reversed) and may
    hold a sub-range of the window: the line-free channel numbers are the window's."""
    continuum, line, _, sigma = observation(1, seed=13, noise=False)
    sub = slice(10, 60)  # the window's channels 10..59, as a part with channels=(10, 60)
    order = np.argsort(FREQ[sub])
    chunk = VisChunk(uvw=np.zeros((NROW, 3)), freq=FREQ[sub][order],
                     vis=(continuum + line)[:, sub][:, order],
                     weight=(1 / sigma ** 2)[:, sub][:, order].astype(np.float32), nbad=0)
    idx = contsub.linefree_in(chunk.freq, FREQ, LINEFREE)
    assert np.array_equal(np.sort(chunk.freq[idx]), np.sort(FREQ[np.intersect1d(LINEFREE,
                                                                                 range(10, 60))]))
    out, unfitted = contsub.subtract_chunk(chunk, FREQ, LINEFREE, fitorder=1)
    assert unfitted == 0 and out.weight.dtype == np.float32
    np.testing.assert_allclose(out.vis, line[:, sub][:, order], atol=1e-8)
    np.testing.assert_array_equal(out.uvw, chunk.uvw)

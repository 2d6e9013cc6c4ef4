"""The grid jobs' multi-term products (imaging/ms/parts.py) and the files that carry
stacked terms between jobs (imaging/fits.py).

A part's Taylor partials add up over parts exactly as the whole MS's (time and channel
parts), equal taylor.grid_terms on the same samples, carry the per-channel weight sums, and
the residual mode grids V minus the Taylor model's prediction.
"""

from __future__ import annotations

import numpy as np
import pytest
import tinyms

from htclean.imaging import fits
from htclean.imaging.deconvolution.model import TaylorComponents
from htclean.imaging.errors import InputError
from htclean.imaging.geometry import psf_geometry
from htclean.imaging.gridding import gridding, taylor
from htclean.imaging.ms import partials, parts
from htclean.imaging.ms.partials import stacked
from htclean.imaging.ms.parts import part_psf_dirty, part_residual

REF = 1.45e9


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    ms = str(tmp_path_factory.mktemp("tp") / "wide.ms")
    obs = tinyms.TinyObs(ntime=8, nchan=6, dfreq=80e6, freq0=1.2e9, noise=0.05,
                         sources=[(0.0, 0.0, 1.0), (14 * tinyms.ASEC, -9 * tinyms.ASEC, 0.6)])
    truth = tinyms.write_ms(ms, obs)
    return ms, truth["rows_per_block"]


def _settings(ms: str, nterms: int, weighting: str = "natural"):
    return tinyms.settings_for(ms, cell=2 * tinyms.ASEC, size=48, weighting=weighting,
                               chunk_rows=40, deconvolution={"nterms": nterms})


def _through_file(partial, path):
    partials.save_partial(path, partial)
    return partials.load_partial(path)


@pytest.mark.parametrize("nterms", [2, 3])
@pytest.mark.parametrize("split", ["time", "channel"])
def test_parts_add_up_to_the_whole_and_equal_grid_terms(wide, tmp_path, nterms, split):
    ms, nrows = wide
    settings = _settings(ms, nterms)
    sels = ([{"rows": r} for r in np.array_split(np.arange(nrows), 3)] if split == "time"
            else [{"channels": (0, 2)}, {"channels": (2, 6)}])
    total = None
    for k, sel in enumerate(sels):
        p = _through_file(part_psf_dirty(ms, settings, ref_freq=REF, **sel), tmp_path / f"{k}.npz")
        total = p if total is None else total + p
    whole = part_psf_dirty(ms, settings, ref_freq=REF)
    for kind in ("dirty", "psf"):
        a, b = stacked(whole, kind), stacked(total, kind)
        assert a.shape[0] == (nterms if kind == "dirty" else 2 * nterms - 1)
        assert np.abs(a - b).max() <= 1e-6 * np.abs(a).max(), kind
    assert total.weight_sum == pytest.approx(whole.weight_sum, rel=1e-12)
    np.testing.assert_allclose(total.meta["channel_weights"], whole.meta["channel_weights"])

    # the same as taylor.grid_terms on every sample of the MS at once
    geom, chunks = parts._source(ms, settings, None, None)
    chunks = list(chunks)
    uvw = np.concatenate([c.uvw for c in chunks])
    vis = np.concatenate([c.vis for c in chunks])
    w = np.concatenate([c.weight for c in chunks]).astype(np.float64)
    params = gridding.GridParams.from_settings(settings)
    direct = taylor.grid_terms(uvw, chunks[0].freq, vis, w, geom,
                               psf_geometry(geom, settings["image"]["psf_oversize"]), params,
                               nterms=nterms, ref_freq=REF)
    np.testing.assert_allclose(stacked(whole, "dirty"), direct.dirty,
                               atol=1e-6 * np.abs(direct.dirty).max())
    np.testing.assert_allclose(stacked(whole, "psf"), direct.psf,
                               atol=1e-6 * np.abs(direct.psf).max())
    freqs, sums = np.array(whole.meta["channel_weights"]).T
    np.testing.assert_allclose(freqs, chunks[0].freq)
    np.testing.assert_allclose(sums, w.sum(axis=0))


def test_residual_is_the_data_minus_the_taylor_model(wide):
    ms, _ = wide
    settings = _settings(ms, 2, weighting="briggs")
    density = parts.part_density(ms, settings)
    comps = TaylorComponents.from_arrays([24, 17], [24, 29], [[0.8, -0.3], [0.4, 0.2]], 48, 48)
    res = part_residual(ms, settings, comps, density, ref_freq=REF)
    assert set(res.images) == {"residual-tt0", "residual-tt1"}
    geom, chunks = parts._source(ms, settings, None, None)
    params = gridding.GridParams.from_settings(settings)
    expect = np.zeros((2, *geom.shape))
    for chunk in chunks:
        w = parts._imaging_weights(chunk, "briggs", 0.0, density.images["density"], geom,
                                   params).astype(np.float64)
        model = taylor.predict_terms(comps.images(), chunk.uvw, chunk.freq, geom, params,
                                     ref_freq=REF)
        expect += taylor.grid_terms(chunk.uvw, chunk.freq, chunk.vis - model, w, geom, geom,
                                    params, nterms=2, ref_freq=REF, psf=False).dirty
    np.testing.assert_allclose(stacked(res, "residual"), expect,
                               atol=1e-6 * np.abs(expect).max())
    with pytest.raises(InputError, match="Taylor model"):
        part_residual(ms, _settings(ms, 3), comps, ref_freq=REF)


def test_stacked_terms_round_trip_through_fits(wide, tmp_path):
    ms, _ = wide
    settings = _settings(ms, 2)
    p = part_psf_dirty(ms, settings, ref_freq=REF)
    norm = partials.normalise(p)
    pgeom = psf_geometry(p.geom, settings["image"]["psf_oversize"])
    psf = np.stack([norm[f"psf-tt{t}"] for t in range(3)])
    path = tmp_path / "R-psf.fits"
    fits.write_terms(path, list(psf), pgeom, ref_freq=REF,
                           channel_weights=p.meta["channel_weights"])
    terms, geom, header = fits.read_terms(path, 3)
    np.testing.assert_allclose(terms, psf, rtol=1e-6, atol=1e-7)
    assert (geom.nx, geom.ny, geom.cell) == (pgeom.nx, pgeom.ny, pytest.approx(pgeom.cell))
    assert fits.reference_frequency(header, str(path)) == REF
    freqs, sums = fits.read_channel_weights(path)
    np.testing.assert_allclose(np.stack([freqs, sums], 1), p.meta["channel_weights"])
    one, _, _ = fits.read_terms(path)  # tt0 is a plain image to read_fits
    np.testing.assert_allclose(one, terms)
    with pytest.raises(InputError, match="holds 3 Taylor terms, 2 expected"):
        fits.read_terms(path, 2)
    plain = tmp_path / "plain.fits"
    fits.write_terms(plain, [psf[0]], pgeom, ref_freq=None)
    with pytest.raises(InputError, match="CHANWGT"):
        fits.read_channel_weights(plain)
    with pytest.raises(InputError, match="REFFREQ"):
        fits.reference_frequency(fits.read_terms(plain)[2], str(plain))


def test_a_part_file_gives_the_taylor_images_of_its_ms(wide, tmp_path):
    ms, _ = wide
    settings = _settings(ms, 2)
    part = tmp_path / "R-part-000.vis.npz"
    parts.write_part(ms, settings, part)
    a, b = part_psf_dirty(ms, settings, ref_freq=REF), part_psf_dirty(part, settings, ref_freq=REF)
    for kind in ("dirty", "psf"):
        x, y = stacked(a, kind), stacked(b, kind)
        assert np.abs(x - y).max() <= 1e-6 * np.abs(x).max(), kind
    np.testing.assert_allclose(a.meta["channel_weights"], b.meta["channel_weights"])

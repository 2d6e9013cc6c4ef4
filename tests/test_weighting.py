"""Natural, uniform and Briggs weighting against CASA's definitions, written out naively."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tinyms

from htclean.imaging.errors import InputError
from htclean.imaging.geometry import C, ImageGeometry
from htclean.imaging.gridding import weighting
from htclean.imaging.ms import partials, parts
from htclean.imaging.ms.msread import VisChunk

ASEC = tinyms.ASEC


def _chunk(seed=0, nrow=200, nchan=3, extent=7000.0):
    rng = np.random.default_rng(seed)
    uvw = rng.uniform(-extent, extent, (nrow, 3))
    freq = 1.4e9 + 5e6 * np.arange(nchan)
    weight = rng.uniform(0.5, 3.0, (nrow, nchan))
    weight[rng.random((nrow, nchan)) < 0.15] = 0.0
    return VisChunk(uvw, freq, np.ones((nrow, nchan), complex), weight)


GEOM = ImageGeometry(48, 32, 4 * ASEC, 1.0, 0.4, 1.4e9)


def _naive_density(chunk, geom):
    g = np.zeros(geom.shape)
    for r in range(len(chunk.uvw)):
        for c, f in enumerate(chunk.freq):
            w = chunk.weight[r, c]
            if w <= 0:
                continue
            for s in (1, -1):
                u, v = s * chunk.uvw[r, 0] * f / C, s * chunk.uvw[r, 1] * f / C
                iu = math.floor(u * geom.nx * geom.cell + geom.nx / 2)
                iv = math.floor(v * geom.ny * geom.cell + geom.ny / 2)
                if 0 <= iu < geom.nx and 0 <= iv < geom.ny:
                    g[iv, iu] += w
    return g


def _cell_of(chunk, geom, r, c):
    f = chunk.freq[c]
    iu = math.floor(chunk.uvw[r, 0] * f / C * geom.nx * geom.cell + geom.nx / 2)
    iv = math.floor(chunk.uvw[r, 1] * f / C * geom.ny * geom.cell + geom.ny / 2)
    return (iv, iu) if 0 <= iu < geom.nx and 0 <= iv < geom.ny else None


def test_density_follows_the_casa_definition_and_sums_over_chunks():
    a, b = _chunk(1), _chunk(2)
    g = weighting.density([a, b], GEOM)
    expected = _naive_density(a, GEOM) + _naive_density(b, GEOM)
    np.testing.assert_allclose(g, expected, rtol=1e-12)
    assert 0 < g.sum() < 2 * (a.weight.sum() + b.weight.sum())  # some samples fall outside


@pytest.mark.parametrize("kind, robust", [("uniform", None), ("briggs", -1.0),
                                          ("briggs", 0.0), ("briggs", 0.5)])
def test_imaging_weights_follow_the_casa_definition(kind, robust):
    chunk = _chunk(3)
    g = weighting.density([chunk, _chunk(4)], GEOM)  # the global density of two parts
    w = weighting.apply(chunk, kind, robust, g, GEOM)
    f2 = (5 * 10 ** -(robust or 0.0)) ** 2 / ((g**2).sum() / g.sum())
    if kind == "briggs":  # the factor handed in (computed once per job) gives the same weights
        given = weighting.apply(chunk, kind, robust, g, GEOM, f2=weighting.briggs_f2(g, robust))
        assert np.array_equal(given, w)
    for r in range(len(chunk.uvw)):
        for c in range(len(chunk.freq)):
            cell = _cell_of(chunk, GEOM, r, c)
            if cell is None or chunk.weight[r, c] == 0:
                assert w[r, c] == 0
                continue
            gi = g[cell]
            want = chunk.weight[r, c] / (gi if kind == "uniform" else 1 + f2 * gi)
            assert w[r, c] == pytest.approx(want, rel=1e-12)


def test_robust_limits_approach_natural_and_uniform():
    chunk = _chunk(5, nrow=2000, extent=600.0)
    g = weighting.density([chunk], GEOM)
    keep = weighting.apply(chunk, "uniform", None, g, GEOM) > 0

    def shape(w):
        return w[keep] / w[keep].sum()
    natural = shape(chunk.weight)
    uniform = shape(weighting.apply(chunk, "uniform", None, g, GEOM))
    plus2 = shape(weighting.apply(chunk, "briggs", 2.0, g, GEOM))
    minus2 = shape(weighting.apply(chunk, "briggs", -2.0, g, GEOM))
    assert np.abs(plus2 - natural).max() < 0.1 * np.abs(uniform - natural).max()
    assert np.abs(minus2 - uniform).max() < 0.1 * np.abs(uniform - natural).max()


def test_natural_and_errors():
    chunk = _chunk(6)
    assert weighting.apply(chunk, "natural", None, None, GEOM) is chunk.weight
    with pytest.raises(InputError, match="global weight density"):
        weighting.apply(chunk, "uniform", None, None, GEOM)
    with pytest.raises(InputError, match="robust"):
        weighting.apply(chunk, "briggs", 3.0, np.ones(GEOM.shape), GEOM)
    with pytest.raises(InputError, match="weighting must be"):
        weighting.apply(chunk, "superuniform", None, np.ones(GEOM.shape), GEOM)
    with pytest.raises(InputError, match="shape"):
        weighting.apply(chunk, "uniform", None, np.ones((4, 4)), GEOM)
    with pytest.raises(InputError, match="empty"):
        weighting.briggs_f2(np.zeros(GEOM.shape), 0.0)


@pytest.mark.parametrize("kind, robust", [("uniform", None), ("briggs", 0.0)])
def test_weighted_psf_and_dirty_equal_the_dft_with_those_weights(tmp_path, kind, robust):
    ms = str(tmp_path / "w.ms")
    truth = tinyms.write_ms(ms, tinyms.TinyObs())
    settings = tinyms.settings_for(ms, cell=2 * ASEC, weighting=kind, robust=robust)
    density = parts.part_density(ms, settings)
    out = partials.normalise(parts.part_psf_dirty(ms, settings, density))
    uvw, freq, vis = truth["uvw"], truth["freq"][0], truth["vis"][0]
    chunk = VisChunk(uvw, freq, vis, np.full(vis.shape, 2.0))
    geom = density.geom
    np.testing.assert_array_equal(density.images["density"], weighting.density([chunk], geom))
    w = weighting.apply(chunk, kind, robust, density.images["density"], geom)
    # the PSF is image.psf_oversize (2) x the image
    ref_psf = tinyms.dft_dirty(uvw, freq, np.ones_like(vis), w, 128, 128, geom.cell) / w.sum()
    ref = tinyms.dft_dirty(uvw, freq, vis, w, 64, 64, geom.cell) / w.sum()
    assert np.abs(out["psf"] - ref_psf).max() <= 1e-6
    assert np.abs(out["dirty"] - ref).max() <= 1e-6 * np.abs(ref).max()
    assert out["psf"][64, 64] == pytest.approx(1.0, abs=1e-7)

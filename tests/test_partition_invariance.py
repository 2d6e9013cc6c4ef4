"""The image from 4 parts equals the image from 1 part, whatever the axis and the weighting.

Parts are row or channel selections of one small MS (time: consecutive integrations;
baseline: every 4th baseline; channel: one channel each). Each part's products go through
the .npz files the jobs exchange (float32 images) and are summed as the gather does.
"""

from __future__ import annotations

import numpy as np
import pytest
import tinyms

from htclean.imaging.deconvolution.components import ComponentList
from htclean.imaging.ms import partials, parts

NPARTS = 4


@pytest.fixture(scope="module")
def observation(tmp_path_factory):
    ms = str(tmp_path_factory.mktemp("inv") / "inv.ms")
    obs = tinyms.TinyObs(ntime=8, nchan=4, noise=0.05,
                         sources=[(0.0, 0.0, 1.0), (14 * tinyms.ASEC, -9 * tinyms.ASEC, 0.6)])
    truth = tinyms.write_ms(ms, obs)
    nbl = obs.nant * (obs.nant - 1) // 2
    return ms, truth["rows_per_block"], nbl


def _selections(axis, nrows, nbl):
    rows = np.arange(nrows)
    if axis == "time":
        return [{"rows": r} for r in np.array_split(rows, NPARTS)]
    if axis == "baseline":
        return [{"rows": rows[(rows % nbl) % NPARTS == k]} for k in range(NPARTS)]
    return [{"channels": (k, k + 1)} for k in range(NPARTS)]


def _through_files(partial, path):
    partials.save_partial(path, partial)
    return partials.load_partial(path)


def _summed(make, selections, tmp_path, name):
    total = None
    for k, sel in enumerate(selections):
        p = _through_files(make(**sel), tmp_path / f"{name}-{k}.npz")
        total = p if total is None else total + p
    return total


@pytest.mark.parametrize("weighting, robust", [("natural", None), ("uniform", None),
                                               ("briggs", 0.5)])
@pytest.mark.parametrize("axis", ["time", "baseline", "channel"])
def test_four_parts_equal_one(observation, tmp_path, axis, weighting, robust):
    ms, nrows, nbl = observation
    settings = tinyms.settings_for(ms, cell=2 * tinyms.ASEC, weighting=weighting,
                                   robust=robust, chunk_rows=37)
    sels = _selections(axis, nrows, nbl)
    model = ComponentList.from_arrays([32, 25], [32, 27], [0.5, 0.2], [0, 0], 64, 64)

    density = None
    if weighting != "natural":
        density = parts.part_density(ms, settings)
        split = _summed(lambda **s: parts.part_density(ms, settings, **s), sels, tmp_path, "w")
        np.testing.assert_allclose(split.images["density"], density.images["density"],
                                   rtol=1e-12, atol=0)
        density = split  # the parts image with the gathered density, as the workflow does

    one = parts.part_psf_dirty(ms, settings, density)
    four = _summed(lambda **s: parts.part_psf_dirty(ms, settings, density, **s), sels,
                   tmp_path, "i")
    assert four.visibilities == one.visibilities
    assert four.weight_sum == pytest.approx(one.weight_sum, rel=1e-12)
    assert four.geom == one.geom
    a, b = partials.normalise(one), partials.normalise(four)
    for name in ("psf", "dirty"):
        assert np.abs(a[name] - b[name]).max() <= 1e-6 * np.abs(a[name]).max(), name

    r1 = partials.normalise(parts.part_residual(ms, settings, model, density))["residual"]
    r4 = partials.normalise(_summed(lambda **s: parts.part_residual(ms, settings, model, density,
                                                                 **s), sels, tmp_path, "r"))
    assert np.abs(r1 - r4["residual"]).max() <= 1e-6 * np.abs(r1).max()
    # the residual really is data minus model: it differs from the dirty image by the model
    assert np.abs(r1 - a["dirty"]).max() > 0.1


def test_partial_files_round_trip_and_reject_garbage(tmp_path, observation):
    ms, _, _ = observation
    p = parts.part_psf_dirty(ms, tinyms.settings_for(ms))
    q = _through_files(p, tmp_path / "p.npz")
    assert q.images["psf"].dtype == np.float32 and q.geom == p.geom
    assert (q.weight_sum, q.visibilities, q.nbad) == (p.weight_sum, p.visibilities, p.nbad)
    assert not list(tmp_path.glob(".*tmp"))
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    with pytest.raises(parts.InputError, match="not a partial"):
        partials.load_partial(tmp_path / "bad.npz")
    with pytest.raises(parts.InputError, match="cannot add"):
        p + partials.Partial({"residual": np.zeros((64, 64))})
    with pytest.raises(parts.InputError, match="weight sum is zero"):
        partials.normalise(partials.Partial({"dirty": np.zeros((64, 64))}))


@pytest.mark.parametrize("weighting", ["natural", "briggs"])
def test_residual_from_a_part_file_equals_the_ms(observation, tmp_path, weighting,
                                                  monkeypatch):
    """In single precision a part file's residual is predicted first and the data subtracted
    in the prediction's array as read (partfile.read_residual_chunks), the imaging weights
    written over the data weights: the same residual as the MS's own, read the plain way."""
    ms, _, _ = observation
    settings = tinyms.settings_for(ms, cell=2 * tinyms.ASEC, weighting=weighting,
                                   robust=0.0 if weighting == "briggs" else None,
                                   chunk_rows=37)
    settings["gridder"].update(precision="single", epsilon=1e-5)
    density = parts.part_density(ms, settings) if weighting == "briggs" else None
    part = tmp_path / "p.vis.npz"
    parts.write_part(ms, settings, part)
    model = ComponentList.from_arrays([32, 25], [32, 27], [0.5, 0.2], [0, 0], 64, 64)
    from_ms = parts.part_residual(ms, settings, model, density)
    calls = []
    read = parts.partfile.read_residual_chunks
    monkeypatch.setattr(parts.partfile, "read_residual_chunks",
                        lambda *a, **k: calls.append(1) or read(*a, **k))
    from_part = parts.part_residual(part, settings, model, density)
    assert calls  # the subtracting read was the one used
    assert from_part.visibilities == from_ms.visibilities
    assert from_part.weight_sum == pytest.approx(from_ms.weight_sum, rel=1e-6)
    a, b = partials.normalise(from_ms)["residual"], partials.normalise(from_part)["residual"]
    assert np.abs(a - b).max() <= 1e-6 * np.abs(a).max()
    dirty = partials.normalise(parts.part_psf_dirty(part, settings, density))["dirty"]
    assert np.abs(b - dirty).max() > 0.1  # the model was subtracted

"""Regressions found by imaging Measurement Sets written by CASA itself (benchmarks/compare_casa.py)
against tclean and WSClean. Each test rebuilds the offending feature in a tiny MS with
python-casacore, so no CASA install is needed."""

from __future__ import annotations

import json
from pathlib import Path

import casacore.tables as ct
import numpy as np
import pytest
import tinyms

from htclean.executables import partition
from htclean.imaging.ms import msread, partfile, parts


def _make_autocorrelations(ms: str, rows: np.ndarray, total_flux: float) -> None:
    """Turn ``rows`` into unflagged autocorrelations as CASA's simulator writes them
    (sm.setauto): ANTENNA2 = ANTENNA1, UVW 0, the total flux in every hand, weight 1."""
    with ct.table(ms, readonly=False, ack=False) as t:
        for r in rows:
            r = int(r)
            t.putcell("ANTENNA2", r, t.getcell("ANTENNA1", r))
            t.putcell("UVW", r, np.zeros(3))
            t.putcell("DATA", r, np.full(t.getcell("DATA", r).shape, total_flux, np.complex64))


def test_autocorrelations_are_not_imaged(tmp_path):
    """CASA's simulator with sm.setauto writes unflagged autocorrelations (and so do many
    telescopes): tclean and WSClean image cross-correlations only. Read as data, they put
    their total power into every pixel (12 % of the dirty peak on a CASA-simulated VLA MS)."""
    ms = str(tmp_path / "auto.ms")
    truth = tinyms.write_ms(ms, tinyms.TinyObs(nant=6, ntime=8, nchan=3))
    autos = np.arange(0, truth["rows_per_block"], 15)  # one row per timestamp (15 baselines)
    _make_autocorrelations(ms, autos, 1.5)
    chunks = list(msread.read_chunks(ms, chunk_rows=7))
    weight = np.concatenate([c.weight for c in chunks])
    assert np.all(weight[autos] == 0)
    cross = np.setdiff1d(np.arange(len(weight)), autos)
    assert np.all(weight[cross] == 2.0)

    settings = tinyms.settings_for(ms, size=32, cell=4 * tinyms.ASEC)
    dirty = parts.part_psf_dirty(ms, settings)
    assert dirty.visibilities == len(cross) * 3
    expected = tinyms.dft_dirty(truth["uvw"][cross], truth["freq"][0], truth["vis"][0][cross],
                                np.full((len(cross), 3), 2.0), 32, 32, 4 * tinyms.ASEC)
    assert np.abs(dirty.images["dirty"] - expected).max() < 1e-6 * np.abs(expected).max()
    density = parts.part_density(ms, tinyms.settings_for(ms, size=32, cell=4 * tinyms.ASEC,
                                                         weighting="briggs", robust=0.0))
    assert density.weight_sum == 2.0 * len(cross) * 3


@pytest.mark.parametrize("axis", ["time", "channel"])
def test_partition_carries_only_the_imaged_rows(tmp_path, monkeypatch, axis):
    """A CASA MS holds calibrator scans (another field) and autocorrelations; imaging field 1
    reads neither, so the parts must not carry them (on the benchmark's MS b the calibrator
    is 21 % of the rows; a multi-target MS would ship every target to every grid job). The
    parts hold exactly field 1's cross-correlations, and image as the whole MS does."""
    ms = tmp_path / "two.ms"
    truth = tinyms.write_ms(str(ms), tinyms.TinyObs(nant=6, ntime=8, nchan=4, nfield=2))
    nrow = truth["rows_per_block"]
    _make_autocorrelations(str(ms), np.arange(nrow, 2 * nrow, 15), 1.5)  # field 1's
    cfg = {"data": {"ms": str(ms), "field": 1}, "image": {"size": 32, "scale": "4asec"},
           "gridder": {"device": "cpu", "threads": 1},
           "output": {"run_id": "R"}}
    (tmp_path / "R-config.yml").write_text(json.dumps(cfg))
    monkeypatch.chdir(tmp_path)
    outs = [f"R-part-{i:03d}.vis.npz" for i in range(2)]
    assert partition.main(["--config", "R-config.yml", "--record", "R-p.record.json",
                           "--ms", str(ms), "--axis", axis, "--outputs", *outs,
                           "--manifest", "R-partitions.json"]) == 0
    wanted = np.setdiff1d(np.arange(nrow, 2 * nrow), np.arange(nrow, 2 * nrow, 15))
    manifest = json.loads(Path("R-partitions.json").read_text())
    assert manifest["rows"] == len(wanted)
    settings = tinyms.settings_for(str(ms), size=32, cell=4 * tinyms.ASEC, data={"field": 1})
    whole = parts.part_psf_dirty(str(ms), settings)
    with ct.table(str(ms), ack=False) as t:
        field_of = {tuple(u): f for u, f in zip(t.getcol("UVW"), t.getcol("FIELD_ID"),
                                                strict=True)}
    total, rows = None, 0
    for out in outs:
        for chunk in partfile.read_chunks(out):
            assert {field_of[tuple(u)] for u in chunk.uvw} == {1}
            assert np.all(np.any(chunk.uvw != 0, axis=1))  # no autocorrelation rows
            rows += len(chunk.uvw)
        p = parts.part_psf_dirty(out, settings)
        total = p if total is None else total + p
    assert rows == (2 * len(wanted) if axis == "channel" else len(wanted))
    assert total.weight_sum == whole.weight_sum
    for name in ("psf", "dirty"):
        assert np.abs(total.images[name] - whole.images[name]).max() \
            < 1e-6 * np.abs(whole.images[name]).max()  # gridding accuracy (epsilon 1e-7)


def test_descending_frequencies(tmp_path):
    """Lower-sideband spectral windows are stored with descending CHAN_FREQ (negative
    CHAN_WIDTH); ducc0's gridder refuses them ("channel frequencies must be sorted in ascending
    order"). They are read in reverse channel order, weights and flags following their
    channels."""
    ms = str(tmp_path / "lsb.ms")
    truth = tinyms.write_ms(ms, tinyms.TinyObs(nant=6, ntime=8, nchan=4, dfreq=-8e6,
                                              weight_spectrum=True))
    rng = np.random.default_rng(3)
    with ct.table(ms, readonly=False, ack=False) as t:
        ws = rng.uniform(0.5, 2.0, t.getcol("WEIGHT_SPECTRUM").shape).astype(np.float32)
        ws[..., 1] = ws[..., 0]
        t.putcol("WEIGHT_SPECTRUM", ws)
        flag = t.getcol("FLAG")
        flag[:, 1, :] = True  # the second stored channel
        t.putcol("FLAG", flag)
    chunk = next(msread.read_chunks(ms, channels=(1, 4)))
    assert np.all(np.diff(chunk.freq) > 0)
    assert np.array_equal(chunk.freq, truth["freq"][0][1:4][::-1])
    assert np.all(chunk.weight[:, -1] == 0)  # stored channel 1 is now the last
    weight = np.where(flag[..., 0], 0.0, ws.sum(axis=-1).astype(np.float64))
    for w in ("natural", "briggs"):
        settings = tinyms.settings_for(ms, size=32, cell=4 * tinyms.ASEC, weighting=w,
                                       robust=0.0 if w == "briggs" else None)
        density = parts.part_density(ms, settings) if w == "briggs" else None
        got = parts.part_psf_dirty(ms, settings, density)
        assert got.weight_sum > 0
    expected = tinyms.dft_dirty(truth["uvw"], truth["freq"][0], truth["vis"][0], weight, 32, 32,
                                4 * tinyms.ASEC)
    natural = parts.part_psf_dirty(ms, tinyms.settings_for(ms, size=32, cell=4 * tinyms.ASEC))
    assert np.abs(natural.images["dirty"] - expected).max() < 1e-6 * np.abs(expected).max()

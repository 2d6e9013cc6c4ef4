"""Regressions found by imaging Measurement Sets written by CASA itself (benchmarks/compare_casa.py)
against tclean and WSClean. Each test rebuilds the offending feature in a tiny MS with
python-casacore, so no CASA install is needed."""

from __future__ import annotations

import casacore.tables as ct
import numpy as np
import tinyms

from htclean.imaging import msread, parts


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

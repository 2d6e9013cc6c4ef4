"""Reading Stokes I from a Measurement Set: polarization rules, flags, weights, selections."""

from __future__ import annotations

import casacore.tables as ct
import numpy as np
import pytest
import tinyms

from htclean.imaging.errors import InputError
from htclean.imaging.ms import msread

A, B = 1.0 + 2.0j, 3.0 - 1.0j


def _one(rule, flag=(False, False), data=(A, B), weight=(2.0, 3.0), other=False):
    d = np.array(data, complex).reshape(1, 1, 2)
    f = np.array(flag).reshape(1, 1, 2)
    w = np.array(weight, float).reshape(1, 1, 2)
    vis, wt, nbad = msread.stokes_i(d, f, w, rule, np.array([[other]]))
    return complex(vis[0, 0]), float(wt[0, 0]), nbad


NAN = complex(np.nan, 0)


@pytest.mark.parametrize("case, rule, expected", [
    ("both", "available", ((A + B) / 2, 5.0, 0)),
    ("both", "wsclean", ((A + B) / 2, 2.0, 0)),
    ("both", "tclean", ((A + B) / 2, 5.0, 0)),
    ("a flagged", "available", (B, 3.0, 0)),
    ("a flagged", "wsclean", (0, 0.0, 0)),
    ("a flagged", "tclean", (0, 0.0, 0)),
    ("a nan", "available", (B, 3.0, 1)),
    ("a nan", "wsclean", (0, 0.0, 1)),
    ("a nan flagged", "available", (B, 3.0, 0)),
    ("b zero weight", "available", (A, 2.0, 0)),
    ("b inf weight", "tclean", (0, 0.0, 1)),
    ("both flagged", "available", (0, 0.0, 0)),
    ("cross flagged", "available", ((A + B) / 2, 5.0, 0)),
    ("cross flagged", "wsclean", ((A + B) / 2, 2.0, 0)),
    ("cross flagged", "tclean", (0, 0.0, 0)),
])
def test_polarization_rules(case, rule, expected):
    kw = {"both": {}, "a flagged": {"flag": (True, False)}, "a nan": {"data": (NAN, B)},
          "a nan flagged": {"data": (NAN, B), "flag": (True, False)},
          "b zero weight": {"weight": (2.0, 0.0)}, "b inf weight": {"weight": (2.0, np.inf)},
          "both flagged": {"flag": (True, True)}, "cross flagged": {"other": True}}[case]
    vis, wt, nbad = _one(rule, **kw)
    assert vis == pytest.approx(expected[0]) and wt == expected[1] and nbad == expected[2]


def test_unknown_rule_is_an_input_error():
    with pytest.raises(InputError, match="polarization_rule"):
        _one("casa")


def _all(ms, **kw):
    chunks = list(msread.read_chunks(ms, **kw))
    return chunks, np.concatenate([c.vis for c in chunks]), np.concatenate(
        [c.weight for c in chunks])


def test_chunks_cover_every_row_once_whatever_their_size(tmp_path):
    ms = str(tmp_path / "a.ms")
    truth = tinyms.write_ms(ms, tinyms.TinyObs())
    small, vis_s, w_s = _all(ms, chunk_rows=7)
    big, vis_b, w_b = _all(ms, chunk_rows=100000)
    assert len(big) == 1 and len(small) == -(-len(truth["uvw"]) // 7)
    np.testing.assert_array_equal(vis_s, vis_b)
    np.testing.assert_array_equal(w_s, w_b)
    np.testing.assert_allclose(vis_b, truth["vis"][0], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(w_b, 2.0)  # WEIGHT 1 per hand, rule available: w1 + w2
    np.testing.assert_array_equal(big[0].uvw, truth["uvw"])
    np.testing.assert_array_equal(big[0].freq, truth["freq"][0])
    _, corrected, _ = _all(ms, column="CORRECTED_DATA")
    np.testing.assert_allclose(corrected, 2 * vis_b, rtol=1e-6)


def test_flags_nan_and_weight_spectrum(tmp_path):
    ms = str(tmp_path / "f.ms")
    tinyms.write_ms(ms, tinyms.TinyObs(weight_spectrum=True, nchan=3))
    with ct.table(ms, readonly=False, ack=False) as t:
        flag_row = t.getcol("FLAG_ROW")
        flag_row[5] = True
        t.putcol("FLAG_ROW", flag_row)
        flag = t.getcol("FLAG")
        flag[7, 1, 0] = True  # XX of row 7, channel 1
        t.putcol("FLAG", flag)
        data = t.getcol("DATA")
        data[9, 2, 1] = np.nan  # YY of row 9, channel 2
        t.putcol("DATA", data)
        ws = t.getcol("WEIGHT_SPECTRUM")
        ws[:, :, 0] = 4.0
        ws[:, :, 1] = 1.0
        t.putcol("WEIGHT_SPECTRUM", ws)
    chunks, vis, weight = _all(ms, chunk_rows=4)
    assert sum(c.nbad for c in chunks) == 1
    assert np.all(weight[5] == 0) and np.all(vis[5] == 0)
    assert weight[7, 1] == 1.0 and vis[7, 1] == pytest.approx(data[7, 1, 1])
    assert weight[9, 2] == 4.0 and vis[9, 2] == pytest.approx(data[9, 2, 0])
    assert weight[0, 0] == 5.0  # the spectrum, not WEIGHT (1 per hand)
    _, _, w_ws = _all(ms, polarization_rule="wsclean")
    assert w_ws[0, 0] == 1.0 and w_ws[7, 1] == 0.0 and w_ws[9, 2] == 0.0


@pytest.mark.parametrize("corr", [(9, 10, 11, 12), (5, 6, 7, 8), (8, 5), (1,)])
def test_correlation_layouts(tmp_path, corr):
    ms = str(tmp_path / "c.ms")
    tinyms.write_ms(ms, tinyms.TinyObs(corr=corr, nchan=2))
    with ct.table(ms, readonly=False, ack=False) as t:
        data = t.getcol("DATA")
        for k, c in enumerate(corr):
            data[..., k] = c  # each correlation holds its CORR_TYPE code
        t.putcol("DATA", data)
        flag = t.getcol("FLAG")
        if len(corr) == 4:
            flag[0, 0, 1] = True  # a cross hand of row 0, channel 0
        t.putcol("FLAG", flag)
    hands = {(9, 10, 11, 12): (9, 12), (5, 6, 7, 8): (5, 8), (8, 5): (5, 8), (1,): (1, 1)}[corr]
    _, vis, weight = _all(ms)
    np.testing.assert_allclose(vis, sum(hands) / 2)
    _, _, w_tclean = _all(ms, polarization_rule="tclean")
    assert (w_tclean[0, 0] == 0) == (len(corr) == 4) and weight[0, 0] > 0


def test_one_hand_only_is_an_input_error(tmp_path):
    ms = str(tmp_path / "x.ms")
    tinyms.write_ms(ms, tinyms.TinyObs(corr=(9, 10)))
    with pytest.raises(InputError, match=r"correlations \[XX, XY\]"):
        list(msread.read_chunks(ms))


def test_field_spw_rows_and_channel_selection(tmp_path):
    ms = str(tmp_path / "s.ms")
    truth = tinyms.write_ms(ms, tinyms.TinyObs(nfield=2, nspw=2, nchan=4))
    nb = truth["rows_per_block"]
    chunks, vis, _ = _all(ms, field=1, spw=1)
    assert {c.ddid for c in chunks} == {1} and len(vis) == nb
    np.testing.assert_array_equal(chunks[0].freq, truth["freq"][1])
    both, _, _ = _all(ms, field=0)
    assert sorted({c.ddid for c in both}) == [0, 1] and sum(len(c.vis) for c in both) == 2 * nb
    sel, vis_sel, _ = _all(ms, field=0, spw=0, rows=np.arange(3, 20), channels=(1, 3))
    np.testing.assert_array_equal(sel[0].freq, truth["freq"][0][1:3])
    np.testing.assert_allclose(vis_sel, truth["vis"][0][3:20, 1:3], rtol=1e-6, atol=1e-6)
    info = msread.describe(ms, field=1, spw=1)
    assert info.phase_centre == truth["centres"][1] and info.telescope == "VLA"
    assert info.freq_min == truth["freq"][1][0] - 4e6 and info.frame == "FK5"
    assert info.date_obs.startswith("2014-")


@pytest.mark.parametrize("kwargs, message", [
    ({"column": "MODEL_DATA"}, "no MODEL_DATA column"),
    ({"field": 3}, "no field 3"),
    ({"spw": 4}, "no spectral window"),
    ({"channels": (2, 9)}, "channel range"),
    ({"chunk_rows": 0}, "chunk_rows"),
])
def test_bad_selections_are_input_errors(tmp_path, kwargs, message):
    ms = str(tmp_path / "e.ms")
    tinyms.write_ms(ms, tinyms.TinyObs(nchan=4))
    with pytest.raises(InputError, match=message):
        list(msread.read_chunks(ms, **kwargs))


def test_not_a_measurement_set(tmp_path):
    with pytest.raises(InputError, match="not a Measurement Set"):
        list(msread.read_chunks(tmp_path))

"""The part file: what is written is what every cycle reads, in either weight layout, and a
file that is not a part (or is truncated) is one clear error."""

from __future__ import annotations

import numpy as np
import pytest

from htclean.imaging.errors import InputError
from htclean.imaging.ms import partfile
from htclean.imaging.ms.msread import MsInfo, VisChunk

INFO = MsInfo((1.0, 0.5), "FK5", 1.3e9, 1.5e9, "2024-03-20T00:00:00", "VLA", 10)
DATA = {"column": "DATA", "field": 0, "spw": None, "polarization_rule": "available"}


def chunk(rng, nrow: int, nchan: int, per_row: bool, ddid: int = 0) -> VisChunk:
    vis = (rng.normal(size=(nrow, nchan)) + 1j * rng.normal(size=(nrow, nchan)))
    weight = (np.repeat(rng.uniform(1, 2, (nrow, 1)), nchan, axis=1) if per_row
              else rng.uniform(1, 2, (nrow, nchan)))
    weight[rng.random((nrow, nchan)) < 0.2] = 0  # flagged samples
    weight[3] = 0  # a flagged row
    return VisChunk(rng.normal(size=(nrow, 3)) * 1e3, np.linspace(1.3e9, 1.5e9, nchan),
                    (vis * (weight > 0)).astype(np.complex64), weight, 0, ddid)


@pytest.mark.parametrize("per_row", [True, False])
def test_round_trip(tmp_path, per_row):
    rng = np.random.default_rng(1)
    chunks = [chunk(rng, 40, 11, per_row), chunk(rng, 17, 5, per_row, ddid=2)]
    chunks[0].nbad = 3
    header = partfile.write(tmp_path / "p.vis.npz", chunks, INFO, DATA, (1.0, 0.5))
    assert header["rows"] == 57 and header["nbad"] == 3
    got = list(partfile.read_chunks(tmp_path / "p.vis.npz"))
    assert [g.ddid for g in got] == [0, 2] and got[0].nbad == 3
    for a, b in zip(got, chunks, strict=True):
        np.testing.assert_array_equal(a.uvw, b.uvw)
        np.testing.assert_array_equal(a.freq, b.freq)
        np.testing.assert_array_equal(a.vis, b.vis)
        assert a.weight.dtype == np.float32
        np.testing.assert_array_equal(a.weight, b.weight.astype(np.float32))
    names = set(np.load(tmp_path / "p.vis.npz").files)  # numpy opens it as it is
    assert ("c00000-rowweight" in names) == per_row
    assert partfile.info(partfile.read_header(tmp_path / "p.vis.npz")) == \
        MsInfo((1.0, 0.5), "FK5", 1.3e9, 1.5e9, "2024-03-20T00:00:00", "VLA", 57)


def test_row_weights_are_smaller(tmp_path):
    rng = np.random.default_rng(2)
    sizes = {}
    for per_row in (True, False):
        path = tmp_path / f"{per_row}.vis.npz"
        partfile.write(path, [chunk(rng, 500, 64, per_row)], INFO, DATA, (1.0, 0.5))
        sizes[per_row] = path.stat().st_size
    assert sizes[True] < 0.75 * sizes[False]


def test_settings_and_bad_files_are_refused(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "p.vis.npz"
    header = partfile.write(path, [chunk(rng, 20, 4, True)], INFO, DATA, (1.0, 0.5))
    partfile.check(header, DATA, (1.0, 0.5), path)
    with pytest.raises(InputError, match="data.column"):
        partfile.check(header, {**DATA, "column": "CORRECTED_DATA"}, (1.0, 0.5), path)
    with pytest.raises(InputError, match="phased to"):
        partfile.check(header, DATA, (1.0, 0.6), path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a part file"):
        partfile.read_header(tmp_path / "junk.npz")
    cut = tmp_path / "cut.vis.npz"
    cut.write_bytes(path.read_bytes()[:-200])  # truncated in transfer
    with pytest.raises(InputError):
        list(partfile.read_chunks(cut, header))


def test_bytes_read_counts_what_is_read(tmp_path):
    rng = np.random.default_rng(4)
    path = tmp_path / "p.vis.npz"
    partfile.write(path, [chunk(rng, 400, 32, True)], INFO, DATA, (1.0, 0.5))
    size = path.stat().st_size
    assert size - 2000 < partfile.bytes_read(path) <= size
    assert partfile.bytes_read(path, vis=False) < 0.3 * size  # the weight density's read


def test_chunks_joined_up_to_max_vis(tmp_path):
    """Consecutive chunks of one window are read as one (fewer gridder calls); windows are
    never mixed; the values are the same."""
    rng = np.random.default_rng(5)
    chunks = [chunk(rng, 30, 8, True), chunk(rng, 30, 8, False), chunk(rng, 30, 8, True),
              chunk(rng, 20, 4, True, ddid=1)]
    path = tmp_path / "p.vis.npz"
    partfile.write(path, chunks, INFO, DATA, (1.0, 0.5))
    got = list(partfile.read_chunks(path, max_vis=60 * 8))
    assert [len(g.uvw) for g in got] == [60, 30, 20] and [g.ddid for g in got] == [0, 0, 1]
    for name in ("uvw", "vis", "weight"):
        joined = np.concatenate([getattr(c, name) for c in chunks[:3]])
        np.testing.assert_array_equal(np.concatenate([getattr(g, name) for g in got[:2]]),
                                      joined.astype(getattr(got[0], name).dtype))
    assert len(list(partfile.read_chunks(path, max_vis=1 << 30))) == 2


def test_residual_chunks_subtract_in_the_prediction(tmp_path, monkeypatch):
    """read_residual_chunks gives data - prediction exactly, in the prediction's own array,
    also when the subtraction is done in several blocks; a truncated part is one InputError."""
    monkeypatch.setattr(partfile, "_BLOCK_BYTES", 8 * 7)  # several blocks per member
    rng = np.random.default_rng(6)
    chunks = [chunk(rng, 30, 8, True), chunk(rng, 25, 8, False), chunk(rng, 20, 4, True, 1)]
    path = tmp_path / "p.vis.npz"
    header = partfile.write(path, chunks, INFO, DATA, (1.0, 0.5))
    predicted = []

    def predict(c: VisChunk) -> np.ndarray:
        model = (rng.normal(size=c.weight.shape) + 1j).astype(np.complex64)
        predicted.append((model, model.copy()))
        return model

    got = list(partfile.read_residual_chunks(path, header, predict, max_vis=55 * 8))
    plain = list(partfile.read_chunks(path, header, max_vis=55 * 8))
    assert len(got) == len(plain) == 2
    for g, p, (array, before) in zip(got, plain, predicted, strict=True):
        assert g.vis is array  # formed where the prediction was, no second array
        np.testing.assert_array_equal(g.vis, p.vis - before)
        np.testing.assert_array_equal(g.weight, p.weight)
        np.testing.assert_array_equal(g.uvw, p.uvw)
    cut = tmp_path / "cut.vis.npz"
    cut.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(InputError, match="cut.vis.npz"):
        list(partfile.read_residual_chunks(cut, header, predict))

"""Several Measurement Sets in one run (data.ms a list) image as their union would.

Two tiny observations on different days and in different bands (tinyms, noise-free, same
array and sources) are imaged by `htclean run` as ``data.ms: [A, B]`` and as one MS holding
both (two spectral windows, B's rows a day later): every product agrees to 1e-6 of its peak,
with Briggs weighting, so the weight density is global too. The partition job itself is
checked for MSs of different channel counts and for a second MS with its own phase centre.
"""

from __future__ import annotations

import json

import casacore.tables as ct
import numpy as np
import pytest
import runkit
import tinyms

from htclean.executables import partition
from htclean.imaging import fits
from htclean.imaging.ms import partfile, partials, parts

DAY = 86400.0
NCHAN, DFREQ = 4, 60e6          # spectral window 0 at 1.40-1.58 GHz, window 1 at 1.64-1.82 GHz


def _obs(nspw: int, freq0: float = 1.4e9, **kw) -> tinyms.TinyObs:
    return tinyms.TinyObs(nant=6, ntime=8, nchan=NCHAN, dfreq=DFREQ, freq0=freq0, nspw=nspw,
                          sources=runkit.SOURCES, **kw)


def _shift_time(path: str, rows: slice | None = None) -> None:
    """Move the rows ``rows`` (all: None) of an MS one day later."""
    with ct.table(path, readonly=False, ack=False) as t:
        start = 0 if rows is None else rows.start
        n = t.nrows() - start if rows is None else rows.stop - rows.start
        t.putcol("TIME", t.getcol("TIME", start, n) + DAY, start, n)


@pytest.fixture(scope="module")
def observations(tmp_path_factory):
    where = tmp_path_factory.mktemp("multims")
    a, b, union = (str(where / n) for n in ("a.ms", "b.ms", "union.ms"))
    tinyms.write_ms(a, _obs(1))
    tinyms.write_ms(b, _obs(1, freq0=1.4e9 + NCHAN * DFREQ))
    truth = tinyms.write_ms(union, _obs(2))
    nrow = truth["rows_per_block"]
    _shift_time(b)
    _shift_time(union, slice(nrow, 2 * nrow))
    return where, a, b, union


def test_two_ms_image_equals_their_union(observations):
    where, a, b, union = observations
    runs = {}
    for key, ms in (("pair", [a, b]), ("union", union)):
        cfg = runkit.write_config(where / key, a, parts=2, cycles=2, data={"ms": ms},
                                  weighting={"type": "briggs", "robust": 0.0})
        runs[key] = (where / key / "run", runkit.start(cfg, where / key / "run"))
    for run, proc in runs.values():
        assert proc.wait(timeout=600) == 0, runkit.stderr_of(run)
    manifest = json.loads(next((runs["pair"][0] / "outputs").glob("*-partitions.json"))
                          .read_text())
    assert manifest["ms"] == ["a.ms.tar", "b.ms.tar"]
    assert [p["ms"] for p in manifest["parts"]] == ["a.ms.tar", "b.ms.tar"]
    for kind in runkit.KINDS:
        pair, _, hp = fits.read_fits(runs["pair"][0] / "outputs" / f"{runkit.NAME}-{kind}.fits")
        one, _, ho = fits.read_fits(runs["union"][0] / "outputs" / f"{runkit.NAME}-{kind}.fits")
        assert np.abs(pair - one).max() <= 1e-6 * np.abs(one).max(), kind
        assert hp["CRVAL3"] == pytest.approx(ho["CRVAL3"], rel=1e-12), kind
        assert hp["CDELT3"] == pytest.approx(ho["CDELT3"], rel=1e-12), kind


def _partition(tmp_path, settings_ms: list[str], nparts: int, **image) -> list[str]:
    cfg = runkit.write_config(tmp_path, settings_ms[0], image=image)
    outs = [str(tmp_path / f"R-part-{i:03d}.vis.npz") for i in range(nparts)]
    rc = partition.main(["--config", str(cfg), "--record", str(tmp_path / "rec.json"),
                         "--ms", *settings_ms, "--outputs", *outs,
                         "--manifest", str(tmp_path / "m.json")])
    assert rc == 0
    return outs


def test_different_channel_counts_add_up(tmp_path):
    """Parts of a 4-channel and a 7-channel MS: the gathered dirty image is the weighted sum
    of each MS's own dirty image."""
    a, b = str(tmp_path / "a.ms"), str(tmp_path / "b.ms")
    tinyms.write_ms(a, _obs(1, noise=0.05))
    tinyms.write_ms(b, tinyms.TinyObs(nant=6, ntime=5, nchan=7, dfreq=20e6, freq0=1.8e9,
                                      sources=runkit.SOURCES, noise=0.05, seed=4))
    outs = _partition(tmp_path, [a, b], 3)
    manifest = json.loads((tmp_path / "m.json").read_text())
    # 480 and 525 samples: B gets the third part
    assert [p["ms"] for p in manifest["parts"]] == ["a.ms", "b.ms", "b.ms"]
    assert [p["channels"] for p in manifest["parts"]] == [4, 7, 7]
    settings = tinyms.settings_for(a, cell=2 * tinyms.ASEC, size=32)
    total = None
    for out in outs:
        p = parts.part_psf_dirty(out, settings)
        total = p if total is None else total + p
    own = [parts.part_psf_dirty(ms, settings) for ms in (a, b)]
    expect = (own[0].images["dirty"] + own[1].images["dirty"]) / (
        own[0].weight_sum + own[1].weight_sum)
    got = partials.normalise(total)["dirty"]
    assert total.visibilities == own[0].visibilities + own[1].visibilities
    assert np.abs(got - expect).max() <= 1e-6 * np.abs(expect).max()
    # the band: A's lower channel edge to B's upper one
    low, high = 1.4e9 - DFREQ / 2, 1.8e9 + 6 * 20e6 + 20e6 / 2
    assert total.geom.freq == pytest.approx((low + high) / 2)
    assert total.geom.bandwidth == pytest.approx(high - low)


def test_second_ms_is_phased_to_the_first(tmp_path):
    """B points 40 arcsec east of A; the same sky source lands on the same pixel of the
    run's image (A's centre), and every part records that centre."""
    a, b = str(tmp_path / "a.ms"), str(tmp_path / "b.ms")
    ra0, dec0 = 1.2, 0.6
    src_ra, src_dec = ra0 + 10 * tinyms.ASEC / np.cos(dec0), dec0 - 6 * tinyms.ASEC
    ra_b = ra0 + 40 * tinyms.ASEC / np.cos(dec0)
    tinyms.write_ms(a, tinyms.TinyObs(nant=6, ntime=8, ra=ra0, dec=dec0,
                                      sources=[(*tinyms.lm_of(src_ra, src_dec, ra0, dec0),
                                                1.0)]))
    tinyms.write_ms(b, tinyms.TinyObs(nant=6, ntime=8, ra=ra_b, dec=dec0, seed=3,
                                      sources=[(*tinyms.lm_of(src_ra, src_dec, ra_b, dec0),
                                                1.0)]))
    outs = _partition(tmp_path, [a, b], 2)
    settings = tinyms.settings_for(a, cell=1.0 * tinyms.ASEC, size=64)
    peaks = []
    for out in outs:
        header = partfile.read_header(out)
        assert header["centre"] == pytest.approx([ra0, dec0], abs=1e-12)
        dirty = partials.normalise(parts.part_psf_dirty(out, settings))["dirty"]
        peaks.append(np.unravel_index(np.argmax(dirty), dirty.shape))
    assert peaks[0] == peaks[1] == (32 - 6, 32 - 10)

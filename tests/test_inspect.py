"""msinfo.describe and `htclean inspect`: what a Measurement Set holds, suggested geometry."""

from __future__ import annotations

import json
import math
import tarfile

import numpy as np
import pytest
import tinyms

from htclean.imaging.errors import InputError
from htclean.imaging.ms import msinfo
from htclean.workflows.cli import main

ASEC = math.pi / 180 / 3600


def test_describe_a_simulated_observation(small_ms):
    info = msinfo.describe(small_ms.path)
    obs = small_ms.truth["observation"]
    assert (info.rows, info.antennas, info.baselines) == (20 * 351, 27, 351)
    assert info.visibilities == 20 * 351 * 4 * 2 == obs["visibilities"]
    assert info.telescope == "VLA" and info.dish_diameter == 25.0
    assert [(w.id, w.nchan) for w in info.spectral_windows] == [(0, 4)]
    assert (info.nchan_total, info.freq_min, info.freq_max) == (4, 1.4e9, 1.448e9)
    assert info.spectral_windows[0].chan_width == 16e6
    assert info.correlations == ("RR", "LL")
    assert info.duration_s == pytest.approx(20 * 540.0)
    assert info.time_start.startswith("2024-03-20T") and info.time_end > info.time_start
    (field,) = info.fields
    assert (field.ra, field.dec) == pytest.approx((math.radians(150), math.radians(40)))
    assert 1000 < info.longest_baseline_m < 1031.2  # D: 1.03 km, projected
    assert info.longest_baseline_wavelengths == pytest.approx(
        info.longest_baseline_m * 1.448e9 / 299792458.0)
    assert info.flagged_fraction == 0.0 and info.data_columns == ("DATA",)
    assert info.size_bytes > info.visibilities * 8
    # the suggestions, and the truth geometry the simulator derived from the same rule
    assert info.suggested_cell == pytest.approx(10 * ASEC)
    assert info.suggested_cell == small_ms.truth["suggested"]["cell"]
    assert info.primary_beam_fwhm == pytest.approx(math.radians(30 / 60))
    assert info.suggested_size == 180 == small_ms.truth["suggested"]["size"]


def test_flagged_fraction_counts_flags_and_flagged_rows(tmp_path):
    import casacore.tables as ct

    path = str(tmp_path / "t.ms")
    tinyms.write_ms(path, tinyms.TinyObs(nant=4, ntime=3, nchan=2))
    with ct.table(path, readonly=False, ack=False) as t:
        flag = t.getcol("FLAG")
        flag[0, 0, 0] = True
        t.putcol("FLAG", flag)
        flag_row = t.getcol("FLAG_ROW")
        flag_row[5] = True
        t.putcol("FLAG_ROW", flag_row)
    info = msinfo.describe(path)
    assert info.flagged_fraction == pytest.approx((1 + 4) / (18 * 4))


def test_describe_several_windows_and_fields(tmp_path):
    path = str(tmp_path / "multi.ms")
    truth = tinyms.write_ms(path, tinyms.TinyObs(nspw=2, nfield=2, nchan=3,
                                                  corr=(9, 10, 11, 12)))
    info = msinfo.describe(path)
    assert [w.nchan for w in info.spectral_windows] == [3, 3] and info.nchan_total == 6
    assert info.freq_max == pytest.approx(truth["freq"][1][-1])
    assert info.correlations == ("XX", "XY", "YX", "YY")
    assert [f.name for f in info.fields] == ["F0", "F1"]
    assert info.data_columns == ("DATA", "CORRECTED_DATA")
    uv = np.hypot(truth["uvw"][:, 0], truth["uvw"][:, 1]).max()
    assert info.longest_baseline_wavelengths == pytest.approx(
        uv * truth["freq"][1][-1] / 299792458.0)


def test_describe_a_tar_of_the_ms(small_ms, tmp_path):
    tar = tmp_path / "small.ms.tar"
    with tarfile.open(tar, "w") as t:
        t.add(small_ms.path, arcname="small.ms")
    info = msinfo.describe(tar)
    assert info.path == str(tar) and info.size_bytes == tar.stat().st_size
    assert info.rows == 20 * 351 and info.suggested_size == 180


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.ms", "does not exist"),
    (lambda d: (d / "x.txt").write_text("hello") and d / "x.txt", "not a tar archive"),
    (lambda d: (d / "empty.ms").mkdir() or d / "empty.ms", "no table.dat"),
    (lambda d: _tar_of_nothing(d), "does not hold one Measurement Set"),
])
def test_not_a_measurement_set_is_one_input_error(tmp_path, make, message):
    with pytest.raises(InputError, match=message):
        msinfo.describe(make(tmp_path))


def _tar_of_nothing(d):
    (d / "readme").write_text("no MS here")
    with tarfile.open(d / "x.ms.tar", "w") as t:
        t.add(d / "readme", arcname="readme")
    return d / "x.ms.tar"


def test_a_table_that_is_not_an_ms(small_ms):
    with pytest.raises(InputError, match="no ANTENNA subtable"):
        msinfo.describe(small_ms.path + "/SPECTRAL_WINDOW")


def test_cli_inspect_text_and_json(small_ms, capsys):
    assert main(["inspect", small_ms.path]) == 0
    text = capsys.readouterr().out
    for expected in ("Rows              7020 (56160 visibilities, 0% flagged)",
                     "351 baselines", "RR LL", "HTCLEAN_SIM 10:00:00.000 +40:00:00.00",
                     "image.size: 180, image.scale: 10asec", "primary beam FWHM 30amin"):
        assert expected in text
    assert main(["inspect", small_ms.path, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["rows"] == 7020 and doc["suggested_size"] == 180
    assert doc["spectral_windows"][0]["nchan"] == 4 and doc["fields"][0]["name"] == "HTCLEAN_SIM"


def test_cli_inspect_error_is_one_line(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"htclean inspect: error: {tmp_path} is not a Measurement Set (no table.dat)\n"


@pytest.mark.parametrize("n, size", [(16, 16), (179, 180), (181, 192), (251, 256), (257, 270),
                                     (1001, 1024)])
def test_fft_size(n, size):
    assert msinfo.fft_size(n) == size


@pytest.mark.parametrize("wavelengths, asec", [(4980.4, 10.0), (36e3 / 0.2, 0.28),
                                               (1e3, 51.0), (2.5e2, 200.0)])
def test_suggested_cell_is_a_quarter_beam_rounded_down(wavelengths, asec):
    cell = msinfo.suggest_cell(wavelengths)
    assert cell / ASEC == pytest.approx(asec)
    assert cell <= 0.25 / wavelengths

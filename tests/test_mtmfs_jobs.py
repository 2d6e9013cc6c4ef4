"""The jobs of a multi-term run one by one: grid (Taylor partials), the gather root (stacked
FITS), deconvolve (MT-MFS) and their one-line errors for inputs of the wrong kind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tinyms
from test_executables import one_error_line, run, write_config

from htclean.imaging import fits
from htclean.imaging.deconvolution.model import TaylorComponents

REF = 1.4e9


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ms") / "wide.ms"
    tinyms.write_ms(str(path), tinyms.TinyObs(nchan=6, ntime=10, dfreq=60e6, freq0=1.25e9,
                                              noise=0.01))
    return path


def _config(where: Path, ms: Path, nterms: int = 2, **image) -> None:
    write_config(where, ms, deconvolution={"nterms": nterms},
                 image={"size": 48, "reference_frequency": REF, **image},
                 gridder={"threads": 1, "device": "cpu"})


def test_grid_gather_deconvolve_of_two_terms(wide, tmp_path, monkeypatch, capsys):
    _config(tmp_path, wide, primary_beam=True)
    for i, mode in enumerate(["psf-dirty", "psf-dirty"]):
        assert run("grid", ["--mode", mode, "--part", str(wide), "--output", f"i{i}.npz",
                            "--record", f"g{i}.json"], tmp_path, monkeypatch) == 0
    assert run("gather", ["--inputs", "i0.npz", "i1.npz", "--psf-fits", "R-psf.fits",
                          "--image-fits", "R-dirty.fits", "--record", "ga.json"],
               tmp_path, monkeypatch) == 0
    psf, _, header = fits.read_terms(tmp_path / "R-psf.fits", 3)
    dirty, _, _ = fits.read_terms(tmp_path / "R-dirty.fits", 2)
    assert header["REFFREQ"] == REF and psf[0].max() == pytest.approx(1.0, abs=1e-5)
    freqs, sums = fits.read_channel_weights(tmp_path / "R-psf.fits")
    assert len(freqs) == 6 and np.all(sums > 0)
    assert run("deconvolve", ["--cycle", "1", "--psf", "R-psf.fits", "--residual",
                              "R-dirty.fits", "--output-model", "m1.json", "--output-state",
                              "s1.json", "--record", "d.json"], tmp_path, monkeypatch) == 0
    comps, ref = TaylorComponents.read(tmp_path / "m1.json")
    state = json.loads((tmp_path / "s1.json").read_text())
    assert ref == REF and comps.nterms == 2 and len(comps) > 0
    assert state["nterms"] == 2 and state["peak_end"] < state["peak_start"]
    assert state["peak_start"] == pytest.approx(np.abs(dirty[0]).max(), rel=1e-6)
    # the residual job of that model: two terms, lower than the dirty terms
    assert run("grid", ["--mode", "residual", "--part", str(wide), "--model", "m1.json",
                        "--output", "r.npz", "--record", "r.json"], tmp_path, monkeypatch) == 0
    assert run("gather", ["--inputs", "r.npz", "--image-fits", "R-res.fits", "--record",
                          "gr.json"], tmp_path, monkeypatch) == 0
    res, _, _ = fits.read_terms(tmp_path / "R-res.fits", 2)
    assert np.abs(res[0]).max() < 0.5 * np.abs(dirty[0]).max()
    # a one-term file where two are expected
    one = fits.read_fits(tmp_path / "R-dirty.fits")
    fits.write_fits(tmp_path / "one.fits", one[0], one[1])
    capsys.readouterr()
    assert run("deconvolve", ["--cycle", "1", "--psf", "R-psf.fits", "--residual",
                              "one.fits", "--output-model", "m.json", "--output-state",
                              "s.json", "--record", "d2.json"], tmp_path, monkeypatch) == 2
    assert "holds 1 Taylor terms, 2 expected" in one_error_line(capsys, "deconvolve")


def test_a_one_term_model_is_refused_by_a_two_term_residual_job(wide, tmp_path, monkeypatch,
                                                               capsys):
    _config(tmp_path, wide)
    TaylorComponents.from_arrays([24], [24], [[1.0]], 48, 48).write(tmp_path / "m.json", REF)
    assert run("grid", ["--mode", "residual", "--part", str(wide), "--model", "m.json",
                        "--output", "r.npz", "--record", "r.json"], tmp_path, monkeypatch) == 2
    assert "1 Taylor terms" in one_error_line(capsys, "grid")
    assert not (tmp_path / "r.npz").exists()


def test_nterms_2_without_a_reference_frequency_is_one_line(wide, tmp_path, monkeypatch,
                                                           capsys):
    write_config(tmp_path, wide, deconvolution={"nterms": 2}, image={"size": 48})
    assert run("grid", ["--mode", "psf-dirty", "--part", str(wide), "--output", "i.npz",
                        "--record", "g.json"], tmp_path, monkeypatch) == 2
    assert "image.reference_frequency" in one_error_line(capsys, "grid")


def test_the_alpha_preview_line_gives_median_and_quartiles_where_alpha_is_defined():
    from htclean.executables.restore import alpha_line

    alpha = np.full((8, 8), np.nan)
    alpha[2, 2:7] = [-2.0, -1.0, -0.5, 0.0, 0.5]
    assert alpha_line(alpha, 2e-4) == ("median -0.50 (quartiles -1.00, 0.00) over 5 pixels with "
                                       "tt0 > 200 µJy/beam")
    assert alpha_line(np.full((4, 4), np.nan), 2e-4).startswith("no pixel above the cut")

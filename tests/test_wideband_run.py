"""`htclean run` of two simulated wideband MSs (two days, 1.0-1.5 and 1.5-2.0 GHz): MT-MFS
and the primary beam through the whole workflow (tests/wideband_runs.py).

What is compared with what (the issue's done-when criteria):

- nterms 2, spectral indices -1.5 .. +0.5: every source above 20 sigma at its pixel but the
  faint 10-sigma one; restored tt0 within 1 % and alpha within 0.05 of the band's nterms-2
  least-squares fit (``band_fit``) for the bright sources (> 200 sigma). Against the intrinsic
  truth a 2-term polynomial cannot follow a steep power law over 1-2 GHz: tt0 is 7.6 % high
  for alpha -1.5, 4 % for -1.0 (the fit's own bias), so tt0 is compared with S(1.5 GHz) only
  where |alpha| <= 0.5, and alpha with the intrinsic index within 0.05 where |alpha| <= 1.
  Faint sources: alpha within 3 x its error (sqrt(s1^2 + alpha^2 s0^2) / tt0, about
  5.5 / SNR over this band), and that error is below 0.2 from 40 sigma: at 10 sigma it is
  about 0.55, so "0.2 at 10 sigma" cannot hold for any imager on this band.
- nterms 3: tt0 within 1 % of the intrinsic S(1.5 GHz) for the bright sources (> 300 sigma).
- primary beam (simulated with the VLA beam, flat spectra out to the half-power radius):
  NAME-image-tt0-pb (nterms 2) and NAME-image-pb (nterms 1) within 2 % of the intrinsic flux,
  the corrected alpha within 0.05 of 0, blank below image.pb_limit.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import wideband_runs as wr

from htclean.imaging import fits
from htclean.imaging.beams import primary_beam

FIELD = [(0, 0, 1.0, -0.7), (-23, 14, 0.6, -1.5), (19, 21, 0.4, 0.5), (27, -17, 0.3, -1.0),
         (-15, -26, 0.2, 0.0), (-33, -5, 0.02, -0.3), (8, -35, 0.006, 0.3)]
FIELD_CELL, FIELD_SIZE = 8.0, 128
PB_CELL, PB_SIZE = 12.0, 160


def _pb_sources() -> list[tuple]:
    hpr = primary_beam.half_power_radius(1.5e9) / (PB_CELL * wr.ASEC)  # 70 pixels
    return [(0, 0, 0.5, 0.0), (30, -20, 0.4, 0.0), (-45, 35, 0.5, 0.0),
            (round(hpr * 0.7), round(hpr * 0.7), 0.6, 0.0), (-round(hpr) + 1, 0, 0.8, 0.0)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Four runs at once: the field with nterms 2 and 3, the primary-beam field with nterms
    2 and 1 (primary beam on)."""
    root = tmp_path_factory.mktemp("wideband")
    (root / "field").mkdir()
    (root / "pb").mkdir()
    field = wr.write(root / "field", FIELD, cell_asec=FIELD_CELL, size=FIELD_SIZE, noise=0.25)
    pbms = wr.write(root / "pb", _pb_sources(), cell_asec=PB_CELL, size=PB_SIZE, noise=0.25,
                    primary_beam=True)
    started = {
        ("field", 2): wr.start(root / "f2", field, cell_asec=FIELD_CELL, size=FIELD_SIZE,
                               nterms=2, primary_beam=False),
        ("field", 3): wr.start(root / "f3", field, cell_asec=FIELD_CELL, size=FIELD_SIZE,
                               nterms=3, primary_beam=False),
        ("pb", 2): wr.start(root / "p2", pbms, cell_asec=PB_CELL, size=PB_SIZE, nterms=2,
                            primary_beam=True),
        ("pb", 1): wr.start(root / "p1", pbms, cell_asec=PB_CELL, size=PB_SIZE, nterms=1,
                            primary_beam=True),
    }
    demo_dir = root / "demo"
    started[("demo", 2)] = (demo_dir / "run" / "outputs", subprocess.Popen(
        [sys.executable, "-m", "htclean.workflows.cli", "demo", "--wideband", str(demo_dir),
         "--jobs", "1"], stdout=subprocess.DEVNULL,
        stderr=open(root / "demo-stderr.txt", "wb")))  # noqa: SIM115 (kept by the child)
    out = {}
    for key, (outputs, proc) in started.items():
        if key[0] == "demo":
            assert proc.wait(timeout=900) == 0, (root / "demo-stderr.txt").read_text()
            out[key] = outputs
            continue
        assert proc.wait(timeout=900) == 0, (outputs.parent.parent / "stderr.txt").read_text()
        out[key] = outputs
    return out


def _read(outputs, kind: str) -> np.ndarray:
    return fits.read_fits(outputs / f"wb-{kind}.fits")[0]


def _sigma(outputs) -> float:
    """The restored tt0's noise: the robust sigma of (H^-1 R)_0 (the alpha cut / 5)."""
    return json.loads((outputs / "wb-summary.json").read_text())["alpha"]["cut_jy"] / 5


def _pixel(dx: int, dy: int, size: int) -> tuple[int, int]:
    return size // 2 + dy, size // 2 + dx  # (y, x): the simulator's x grows to the West


def test_nterms_2_fluxes_and_spectral_indices(runs):
    out = runs[("field", 2)]
    tt0, alpha, error = (_read(out, k) for k in ("image-tt0", "alpha", "alpha-error"))
    header = fits.read_fits(out / "wb-image-tt0.fits")[2]
    assert header["CRVAL3"] == pytest.approx(wr.REF)  # the default: the samples' mean
    sigma = _sigma(out)
    bright = 0
    for dx, dy, flux, a in FIELD:
        y, x = _pixel(dx, dy, FIELD_SIZE)
        fit = wr.band_fit(flux, a, 2)
        snr = tt0[y, x] / sigma
        assert snr > (10 if flux < 0.01 else 20), (flux, snr)
        if snr > 200:
            bright += 1
            assert tt0[y, x] == pytest.approx(fit[0], rel=0.01), (flux, a)
            assert alpha[y, x] == pytest.approx(fit[1] / fit[0], abs=0.05), (flux, a)
            if abs(a) <= 0.5:
                assert tt0[y, x] == pytest.approx(flux, rel=0.01), (flux, a)
            if abs(a) <= 1.0:
                assert alpha[y, x] == pytest.approx(a, abs=0.05), (flux, a)
        else:
            assert abs(alpha[y, x] - fit[1] / fit[0]) < 3 * error[y, x], (flux, a)
            if snr > 40:
                assert error[y, x] < 0.2, (flux, snr)
    assert bright == 5
    assert np.isnan(alpha[tt0 < 5 * sigma]).all()
    products = json.loads((out / "wb-summary.json").read_text())["products"]
    assert {"wb-image-tt1.fits", "wb-residual-tt1.fits", "wb-model-tt1.fits",
            "wb-alpha-error.fits", "wb-alpha.png"} <= set(products)
    assert all((out / p).is_file() for p in products)


def test_nterms_3_tt0_is_the_flux_at_the_reference_frequency(runs):
    out = runs[("field", 3)]
    tt0, sigma = _read(out, "image-tt0"), _sigma(out)
    checked = 0
    for dx, dy, flux, a in FIELD:
        y, x = _pixel(dx, dy, FIELD_SIZE)
        if tt0[y, x] / sigma > 300:
            checked += 1
            assert tt0[y, x] == pytest.approx(flux, rel=0.01), (flux, a)
    assert checked >= 4
    assert json.loads((out / "wb-summary.json").read_text())["nterms"] == 3


@pytest.mark.parametrize("nterms", [2, 1])
def test_primary_beam_corrected_fluxes_out_to_the_half_power_radius(runs, nterms):
    out = runs[("pb", nterms)]
    corrected = _read(out, "image-tt0-pb" if nterms > 1 else "image-pb")
    pb = _read(out, "pb")
    limit = 0.2
    hpr = primary_beam.half_power_radius(1.5e9) / (PB_CELL * wr.ASEC)
    for dx, dy, flux, _ in _pb_sources():
        y, x = _pixel(dx, dy, PB_SIZE)
        assert math.hypot(dx, dy) <= hpr
        assert pb[y, x] > 0.45
        assert corrected[y, x] == pytest.approx(flux, rel=0.02), (dx, dy)
    assert np.isnan(corrected[pb < limit]).all() and np.isfinite(corrected[pb >= limit]).all()
    assert pb.max() == pytest.approx(1.0, abs=1e-6)
    if nterms > 1:
        alpha = _read(out, "alpha-pb")
        for dx, dy, _, a in _pb_sources():
            y, x = _pixel(dx, dy, PB_SIZE)
            assert alpha[y, x] == pytest.approx(a, abs=0.05), (dx, dy)


def test_wideband_demo(runs):
    """htclean demo --wideband: both MSs, nterms 2, the primary beam, the alpha preview; the
    corrected tt0 and alpha of its sources against the band fit weighted as the data were
    (Briggs weighting weights the upper channels 3x the lower: R-psf.fits' CHANWGT)."""
    from htclean.imaging import fits
    from htclean.workflows.commands.demo import WIDEBAND as dw

    out = runs[("demo", 2)]
    assert (out / "wideband-alpha.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "wideband-summary.json").read_text())
    assert summary["nterms"] == 2 and summary["reference_frequency_hz"] == pytest.approx(1.5e9)
    assert all((out / p).is_file() for p in summary["products"])
    psf = next(p for p in out.glob("*-psf.fits") if p.name != "wideband-psf.fits")
    freq, weight = fits.read_channel_weights(psf)
    assert len(freq) == 16 and weight[-1] > 2 * weight[0]
    tt0, alpha = _read_named(out, "image-tt0-pb"), _read_named(out, "alpha-pb")
    sigma = summary["alpha"]["cut_jy"] / 5
    x = (freq - dw.ref_freq) / dw.ref_freq
    for name, dx, dy, flux, a in dw.sources:
        y, xp = dw.size // 2 + dy, dw.size // 2 + dx
        fit = np.polynomial.polynomial.polyfit(x, flux * (freq / dw.ref_freq) ** a, 1,
                                               w=np.sqrt(weight))
        assert tt0[y, xp] / sigma > 20, name
        assert tt0[y, xp] == pytest.approx(fit[0], rel=0.02), name
        assert alpha[y, xp] == pytest.approx(fit[1] / fit[0], abs=0.1), name


def _read_named(outputs, kind: str) -> np.ndarray:
    return fits.read_fits(outputs / f"wideband-{kind}.fits")[0]

"""Clean beam fitting (sizes and the position-angle convention) and the restored image."""

from __future__ import annotations

import math

import numpy as np
import pytest

from htclean.imaging.beams import restore as restore_module
from htclean.imaging.beams.beam import Beam, fit_clean_beam
from htclean.imaging.beams.restore import restore
from htclean.imaging.deconvolution.components import ComponentList
from htclean.imaging.errors import InputError

CELL = math.radians(1.0 / 3600.0)  # 1 arcsec


def pixel_gaussian(shape, fwhm_major, fwhm_minor, major_dir_pixels):
    """A Gaussian built in pixel space with its major axis along the pixel direction
    ``(dy, dx)``: independent of Beam's own sky geometry."""
    ny, nx = shape
    y, x = np.mgrid[:ny, :nx]
    y, x = y - ny // 2, x - nx // 2
    dy, dx = major_dir_pixels
    norm = math.hypot(dy, dx)
    along = (y * dy + x * dx) / norm
    across = (-y * dx + x * dy) / norm
    k = 4 * math.log(2)
    return np.exp(-k * (along**2 / fwhm_major**2 + across**2 / fwhm_minor**2))


@pytest.mark.parametrize("bmaj, bmin, bpa", [
    (5.0, 5.0, 0.0), (6.0, 3.0, 0.0), (6.0, 3.0, 30.0), (7.5, 2.5, -60.0), (4.0, 3.0, 90.0),
    (9.0, 4.0, 89.0), (9.0, 4.0, -89.0), (3.0, 2.0, 12.5)])
def test_fit_recovers_a_known_gaussian(bmaj, bmin, bpa):
    truth = Beam(bmaj * CELL, bmin * CELL, bpa)
    fit = fit_clean_beam(truth.image((64, 64), CELL), CELL)
    assert fit.bmaj == pytest.approx(truth.bmaj, rel=1e-6)
    assert fit.bmin == pytest.approx(truth.bmin, rel=1e-6)
    if bmaj != bmin:
        assert (fit.bpa - bpa + 90) % 180 - 90 == pytest.approx(0.0, abs=1e-4)
    assert -90 < fit.bpa <= 90


@pytest.mark.parametrize("direction, bpa", [
    ((1, 0), 0.0),     # along +y: north
    ((0, -1), 90.0),   # along -x: east (x grows to the west)
    ((1, -1), 45.0),   # north-east
    ((1, 1), -45.0),   # north-west
])
def test_position_angle_is_east_of_north(direction, bpa):
    psf = pixel_gaussian((64, 64), 8.0, 3.0, direction)
    fit = fit_clean_beam(psf, CELL)
    assert (fit.bpa - bpa + 90) % 180 - 90 == pytest.approx(0.0, abs=1e-4)
    assert fit.bmaj == pytest.approx(8.0 * CELL, rel=1e-6)
    assert fit.bmin == pytest.approx(3.0 * CELL, rel=1e-6)
    # and Beam.image draws it back the same way
    np.testing.assert_allclose(fit.image((64, 64), CELL), psf, atol=1e-6)


def test_fit_uses_the_main_lobe_only():
    """Sidelobes outside the connected main lobe (above 35 % of the peak) do not count."""
    truth = Beam(6 * CELL, 4 * CELL, 20.0)
    psf = truth.image((96, 96), CELL)
    y, x = np.mgrid[:96, :96]
    r = np.hypot(y - 48, x - 48)
    psf += 0.45 * np.exp(-0.5 * ((r - 14) / 1.5) ** 2)  # a bright ring, not connected
    psf[48, 48] = 1.0
    fit = fit_clean_beam(psf, CELL)
    assert fit.bmaj == pytest.approx(truth.bmaj, rel=0.01)
    assert fit.bmin == pytest.approx(truth.bmin, rel=0.01)
    assert fit.bpa == pytest.approx(20.0, abs=0.5)


def test_fit_bad_input():
    with pytest.raises(InputError, match="centre"):
        fit_clean_beam(-Beam(3 * CELL, 3 * CELL, 0).image((16, 16), CELL), CELL)
    with pytest.raises(InputError, match="2-D"):
        fit_clean_beam(np.ones(9), CELL)
    with pytest.raises(InputError, match="cell"):
        fit_clean_beam(Beam(3 * CELL, 3 * CELL, 0).image((16, 16), CELL), 0.0)
    with pytest.raises(InputError, match="beam"):
        Beam(0.0, 1.0, 0.0)


def test_header_in_degrees():
    h = Beam(math.radians(2 / 3600), math.radians(1 / 3600), -30.0).header()
    assert h["BMAJ"] == pytest.approx(2 / 3600) and h["BMIN"] == pytest.approx(1 / 3600)
    assert h["BPA"] == -30.0


# --- restore ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(64, 64), (48, 80)])
def test_single_component_restores_to_its_flux(shape):
    beam = Beam(5 * CELL, 3 * CELL, 30.0)
    ny, nx = shape
    comps = ComponentList.from_arrays([nx // 2 + 7], [ny // 2 - 5], [2.5], [0], nx=nx, ny=ny)
    out = restore(comps, np.zeros(shape), beam, CELL)
    y, x = ny // 2 - 5, nx // 2 + 7
    assert out[y, x] == 2.5  # exactly: the beam is 1 at its centre
    assert np.unravel_index(np.argmax(out), shape) == (y, x)
    np.testing.assert_allclose(out, 2.5 * beam.image(shape, CELL, centre=(y, x)), atol=1e-12)
    fit = fit_clean_beam(np.roll(out, (ny // 2 - y, nx // 2 - x), (0, 1)) / 2.5, CELL)
    assert (fit.bmaj, fit.bmin, fit.bpa) == pytest.approx((beam.bmaj, beam.bmin, beam.bpa),
                                                          rel=1e-6)


def test_restore_adds_the_residual_and_keeps_dtype_and_input():
    beam = Beam(4 * CELL, 4 * CELL, 0.0)
    residual = np.random.default_rng(0).normal(size=(32, 32)).astype(np.float32)
    keep = residual.copy()
    comps = ComponentList.from_arrays([3], [30], [1.0], [0], nx=32, ny=32)  # near the edge
    out = restore(comps, residual, beam, CELL)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(residual, keep)
    np.testing.assert_allclose(out - residual, beam.image((32, 32), CELL, centre=(30, 3)),
                               atol=1e-12)
    empty = restore(ComponentList.empty(32, 32), residual, beam, CELL)
    np.testing.assert_array_equal(empty, residual.astype(np.float64))


def test_fft_and_direct_restore_agree(monkeypatch):
    rng = np.random.default_rng(1)
    beam = Beam(6 * CELL, 3 * CELL, -40.0)
    comps = ComponentList.from_arrays(rng.integers(0, 60, 300), rng.integers(0, 50, 300),
                                      rng.normal(size=300), rng.choice([0.0, 4.0], 300),
                                      nx=60, ny=50)
    residual = rng.normal(size=(50, 60))
    monkeypatch.setattr(restore_module, "DIRECT_FACTOR", 10**9)
    direct = restore(comps, residual, beam, CELL)
    monkeypatch.setattr(restore_module, "DIRECT_FACTOR", 0)
    fft = restore(comps, residual, beam, CELL)
    np.testing.assert_allclose(direct, fft, atol=1e-10)
    # the restored flux of the model: sum over the image of model ⊛ beam = flux x beam area
    inner = ComponentList.from_arrays([30], [25], [1.0], [4.0], nx=60, ny=50)
    total = restore(inner, np.zeros((50, 60)), beam, CELL).sum()
    assert total == pytest.approx(beam.image((50, 60), CELL).sum(), rel=1e-6)


def test_restore_shape_mismatch_is_input_error():
    comps = ComponentList.empty(32, 32)
    with pytest.raises(InputError, match="shape"):
        restore(comps, np.zeros((32, 30)), Beam(CELL, CELL, 0), CELL)

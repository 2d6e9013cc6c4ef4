"""FITS products: header, WCS orientation against a simulated source, round trip, previews."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tinyms
from astropy.io import fits as afits
from astropy.wcs import WCS

from htclean.imaging import fits, parts, preview
from htclean.imaging.errors import InputError
from htclean.imaging.geometry import ImageGeometry, lm_to_radec

ASEC = tinyms.ASEC


@pytest.fixture(scope="module")
def imaged(tmp_path_factory):
    """A dirty image of one source 17 pixels east and 11 pixels north of the phase centre."""
    tmp = tmp_path_factory.mktemp("fits")
    ra0, dec0, cell = 0.9, -0.45, 2 * ASEC
    src = lm_to_radec(17 * cell, 11 * cell, ra0, dec0)
    ms = str(tmp / "src.ms")
    tinyms.write_ms(ms, tinyms.TinyObs(ra=ra0, dec=dec0,
                                       sources=[(*tinyms.lm_of(*src, ra0, dec0), 1.0)]))
    out = parts.part_psf_dirty(ms, tinyms.settings_for(ms, cell=cell, size=[64, 48]))
    return tmp, out.geom, parts.normalise(out)["dirty"], src


def test_header_has_the_imaging_conventions(imaged):
    tmp, geom, dirty, _ = imaged
    path = tmp / "dirty.fits"
    fits.write_fits(path, dirty, geom, beam=(3 * ASEC, 2 * ASEC, 30.0),
                    history=["htclean test", "second line"])
    h = afits.getheader(path)
    data = afits.getdata(path)
    assert data.shape == (1, 1, 48, 64) and data.dtype.kind == "f" and h["BITPIX"] == -32
    assert [h[f"CTYPE{i}"] for i in range(1, 5)] == ["RA---SIN", "DEC--SIN", "FREQ", "STOKES"]
    assert h["CDELT1"] == pytest.approx(-2 / 3600) and h["CDELT2"] == pytest.approx(2 / 3600)
    assert (h["CRPIX1"], h["CRPIX2"]) == (33.0, 25.0)
    assert h["CRVAL1"] == pytest.approx(math.degrees(0.9))
    assert h["CRVAL2"] == pytest.approx(math.degrees(-0.45))
    assert h["CUNIT1"] == "deg" and h["CUNIT3"] == "Hz" and h["CRVAL4"] == 1.0
    assert h["CRVAL3"] == pytest.approx(geom.freq) and h["CDELT3"] == pytest.approx(32e6)
    assert h["BUNIT"] == "Jy/beam" and h["ORIGIN"] == "htclean" and h["TELESCOP"] == "VLA"
    assert h["BMAJ"] == pytest.approx(3 / 3600) and h["BMIN"] == pytest.approx(2 / 3600)
    assert h["BPA"] == 30.0
    assert h["EQUINOX"] == 2000.0 and h["RADESYS"] == "FK5" and h["SPECSYS"] == "TOPOCENT"
    assert h["DATE-OBS"].startswith("2014-")
    assert list(h["HISTORY"]) == ["htclean test", "second line"]
    assert not list(tmp.glob(".*tmp"))


def test_wcs_maps_the_source_pixel_to_its_sky_position(imaged):
    tmp, geom, dirty, (ra, dec) = imaged
    path = tmp / "wcs.fits"
    fits.write_fits(path, dirty, geom)
    y, x = np.unravel_index(np.argmax(dirty), dirty.shape)
    assert (x, y) == (32 - 17, 24 + 11)  # East is on the left
    wcs = WCS(afits.getheader(path)).celestial
    px, py = wcs.all_world2pix([[math.degrees(ra), math.degrees(dec)]], 0)[0]
    assert abs(px - x) < 0.1 and abs(py - y) < 0.1
    sky = wcs.pixel_to_world(x, y)
    assert sky.ra.rad == pytest.approx(ra, abs=0.1 * geom.cell)
    assert sky.dec.rad == pytest.approx(dec, abs=0.1 * geom.cell)


def test_round_trip_and_bad_input(imaged):
    tmp, geom, dirty, _ = imaged
    path = tmp / "rt.fits"
    fits.write_fits(path, dirty, geom, bunit="Jy/pixel")
    image, g, h = fits.read_fits(path)
    np.testing.assert_allclose(image, dirty, rtol=1e-6, atol=1e-7)
    assert (g.nx, g.ny, g.date_obs, g.telescope) == (geom.nx, geom.ny, geom.date_obs, "VLA")
    assert g.cell == pytest.approx(geom.cell, rel=1e-12)
    assert (g.ra, g.dec) == pytest.approx((geom.ra, geom.dec), rel=1e-12)
    assert g.freq == pytest.approx(geom.freq) and h["BUNIT"] == "Jy/pixel"
    with pytest.raises(InputError, match="shape"):
        fits.write_fits(path, dirty.T, geom)
    (tmp / "junk.fits").write_text("junk")
    with pytest.raises(InputError, match="not a readable FITS"):
        fits.read_fits(tmp / "junk.fits")
    afits.PrimaryHDU(np.zeros((8, 8))).writeto(tmp / "plain.fits", overwrite=True)
    with pytest.raises(InputError, match="RA---SIN"):
        fits.read_fits(tmp / "plain.fits")


def test_preview_png(imaged):
    tmp, geom, dirty, _ = imaged
    path = tmp / "dirty.png"
    preview.write_preview(path, dirty, geom, title="dirty")
    blob = path.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n" and len(blob) > 10000
    assert not list(tmp.glob(".*tmp"))
    with pytest.raises(InputError, match="shape"):
        preview.write_preview(path, np.zeros((4, 4)), geom)


def test_geometry_rejects_bad_sizes():
    with pytest.raises(InputError, match="even"):
        ImageGeometry(33, 32, ASEC, 0.0, 0.0, 1e9)
    with pytest.raises(InputError, match="cell"):
        ImageGeometry(32, 32, -ASEC, 0.0, 0.0, 1e9)

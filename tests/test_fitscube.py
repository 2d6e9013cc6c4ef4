"""FITS cubes: CASA's axes and per-plane BEAMS table, SPECSYS from the MS, a round trip, and
astropy reading the spectral axis."""

from __future__ import annotations

import astropy.units as u
import casacore.tables as ct
import numpy as np
import pytest
import tinyms
from astropy.io import fits as afits
from astropy.wcs import WCS

from htclean.imaging import fitscube
from htclean.imaging.beams.beam import Beam
from htclean.imaging.errors import InputError
from htclean.imaging.geometry import ImageGeometry
from htclean.imaging.spectral.moments import radio_velocity

ASEC = tinyms.ASEC
REST = 1420.405752e6
NCHAN = 5
FREQ = 1419.2e6 - 24.4140625e3 * np.arange(NCHAN)  # descending, as NGC 5921's window
GEOM = ImageGeometry(nx=32, ny=24, cell=4 * ASEC, ra=4.0124, dec=0.0870, freq=FREQ.mean(),
                     bandwidth=NCHAN * 24.4140625e3, date_obs="1995-04-13T09:19:00",
                     telescope="VLA")
BEAMS = [Beam(50 * ASEC, 40 * ASEC, 30.0 + c) for c in range(NCHAN)]
BEAMS[3] = None  # a channel with nothing to fit


def cube(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(NCHAN, GEOM.ny, GEOM.nx))


def test_round_trip_with_per_plane_beams(tmp_path):
    path = tmp_path / "c-image.fits"
    data = cube()
    fitscube.write_cube(path, data, GEOM, FREQ, specsys="LSRK", rest_freq=REST, beams=BEAMS,
                        history=["htclean test"])
    got = fitscube.read_cube(path)
    np.testing.assert_array_equal(got.data, data.astype(np.float32))
    np.testing.assert_allclose(got.freq, FREQ, rtol=0, atol=1e-6)
    assert got.specsys == "LSRK" and got.rest_freq == REST and got.beam is None
    for want, have in zip(BEAMS, got.beams, strict=True):
        if want is None:
            assert have is None
        else:
            assert have.bmaj == pytest.approx(want.bmaj, rel=1e-6)
            assert have.bmin == pytest.approx(want.bmin, rel=1e-6)
            assert have.bpa == pytest.approx(want.bpa, rel=1e-6)
    assert (got.geom.nx, got.geom.ny) == (GEOM.nx, GEOM.ny)
    assert got.geom.cell == pytest.approx(GEOM.cell, rel=1e-12)
    assert (got.geom.ra, got.geom.dec) == pytest.approx((GEOM.ra, GEOM.dec), rel=1e-12)
    assert got.geom.freq == pytest.approx(FREQ.mean(), rel=1e-12)
    assert not list(tmp_path.glob(".*tmp"))


def test_the_file_is_laid_out_as_casa_writes_it(tmp_path):
    path = tmp_path / "c.fits"
    fitscube.write_cube(path, cube(), GEOM, FREQ, specsys="LSRK", rest_freq=REST, beams=BEAMS)
    with afits.open(path) as hdul:
        h = hdul[0].header
        assert hdul[0].data.shape == (1, NCHAN, GEOM.ny, GEOM.nx)
        assert hdul[0].data.dtype == np.dtype(">f4")
        assert [h[f"CTYPE{i}"] for i in range(1, 5)] == ["RA---SIN", "DEC--SIN", "FREQ",
                                                         "STOKES"]
        assert (h["CRPIX3"], h["CRVAL3"], h["CDELT3"]) == (1.0, FREQ[0], FREQ[1] - FREQ[0])
        assert h["CUNIT3"] == "Hz" and h["SPECSYS"] == "LSRK" and h["RESTFRQ"] == REST
        assert h["CASAMBM"] is True and "BMAJ" not in h
        assert (h["CRPIX1"], h["CRPIX2"]) == (GEOM.nx / 2 + 1, GEOM.ny / 2 + 1)
        t = hdul["BEAMS"]
        assert t.header["EXTVER"] == 1 and t.header["NCHAN"] == NCHAN and t.header["NPOL"] == 1
        assert t.columns.names == ["BMAJ", "BMIN", "BPA", "CHAN", "POL"]
        assert t.columns.formats == ["1E", "1E", "1E", "1J", "1J"]
        assert t.columns.units[:3] == ["arcsec", "arcsec", "deg"]
        assert t.data["CHAN"].tolist() == list(range(NCHAN))
        assert t.data["POL"].tolist() == [0] * NCHAN
        assert t.data["BMAJ"][0] == pytest.approx(50.0, rel=1e-6)
        assert t.data["BMIN"][1] == pytest.approx(40.0, rel=1e-6)
        assert t.data["BPA"][2] == pytest.approx(32.0, rel=1e-6)
        assert t.data["BMAJ"][3] == 0 and t.data["BMIN"][3] == 0


def test_astropy_wcs_reads_the_spectral_axis(tmp_path):
    path = tmp_path / "c.fits"
    fitscube.write_cube(path, cube(), GEOM, FREQ, specsys="LSRK", rest_freq=REST,
                        beams=Beam(50 * ASEC, 40 * ASEC, 30.0))
    w = WCS(afits.getheader(path))
    assert w.wcs.specsys == "LSRK" and w.wcs.restfrq == REST
    spec = w.spectral.pixel_to_world(np.arange(NCHAN))
    np.testing.assert_allclose(spec.to_value(u.Hz), FREQ, rtol=1e-12)
    velocity = spec.to_value(u.km / u.s, doppler_convention="radio", doppler_rest=REST * u.Hz)
    np.testing.assert_allclose(velocity, radio_velocity(FREQ, REST), atol=1e-6)
    sky = w.celestial.pixel_to_world(GEOM.nx // 2, GEOM.ny // 2)
    assert sky.ra.rad == pytest.approx(GEOM.ra, abs=1e-12)
    assert sky.dec.rad == pytest.approx(GEOM.dec, abs=1e-12)
    got = fitscube.read_cube(path)  # one beam: header keywords, no table
    assert got.beams is None and got.beam.bmaj == pytest.approx(50 * ASEC, rel=1e-9)
    assert "CASAMBM" not in got.header and got.header["BMAJ"] == pytest.approx(50 / 3600)


def test_specsys_names_and_the_ms_frame(tmp_path):
    assert [fitscube.frame_to_specsys(c) for c in range(9)] == [
        "SOURCE", "LSRK", "LSRD", "BARYCENT", "GEOCENTR", "TOPOCENT", "GALACTOC", "LOCALGRP",
        "CMBDIPOL"]
    with pytest.raises(InputError, match="unknown spectral frame MEAS_FREQ_REF 64"):
        fitscube.frame_to_specsys(64)
    ms = str(tmp_path / "two.ms")
    tinyms.write_ms(ms, tinyms.TinyObs(nspw=2, ntime=2, nant=3))
    with ct.table(f"{ms}/SPECTRAL_WINDOW", readonly=False, ack=False) as t:
        t.putcol("MEAS_FREQ_REF", np.array([1, 5], np.int32))  # LSRK, TOPO
    assert fitscube.ms_specsys(ms, 0) == "LSRK"
    assert fitscube.ms_specsys(ms, 1) == "TOPOCENT"
    with pytest.raises(InputError, match="no DATA_DESC_ID 2"):
        fitscube.ms_specsys(ms, 2)
    with pytest.raises(InputError, match="cannot read the spectral window"):
        fitscube.ms_specsys(tmp_path / "none.ms")


def test_one_channel_and_bad_input(tmp_path):
    one = tmp_path / "one.fits"
    fitscube.write_cube(one, cube()[:1], GEOM, FREQ[:1], width=-24.4e3)
    got = fitscube.read_cube(one)
    assert got.freq.tolist() == [FREQ[0]] and got.header["CDELT3"] == -24.4e3
    assert got.specsys == "TOPOCENT" and got.rest_freq is None and got.beams is None
    bad = tmp_path / "bad.fits"
    with pytest.raises(InputError, match="channel width"):
        fitscube.write_cube(bad, cube()[:1], GEOM, FREQ[:1])
    irregular = FREQ.copy()
    irregular[2] += 100.0
    with pytest.raises(InputError, match="not regularly spaced"):
        fitscube.write_cube(bad, cube(), GEOM, irregular)
    with pytest.raises(InputError, match=r"expected \(5, 24, 32\)"):
        fitscube.write_cube(bad, cube()[:, :, :30], GEOM, FREQ)
    with pytest.raises(InputError, match="4 beams for 5 channels"):
        fitscube.write_cube(bad, cube(), GEOM, FREQ, beams=BEAMS[:4])
    with pytest.raises(InputError, match="unknown SPECSYS 'LSR'"):
        fitscube.write_cube(bad, cube(), GEOM, FREQ, specsys="LSR")
    with pytest.raises(InputError, match="rest_frequency"):
        fitscube.write_cube(bad, cube(), GEOM, FREQ, rest_freq=-1.0)
    assert not bad.exists()
    from htclean.imaging import fits

    image = tmp_path / "image.fits"  # a continuum image is a one-channel cube
    fits.write_fits(image, cube()[0], GEOM)
    assert fitscube.read_cube(image).data.shape == (1, GEOM.ny, GEOM.nx)
    flat = tmp_path / "flat.fits"
    afits.PrimaryHDU(np.zeros((4, 4), np.float32)).writeto(flat)
    with pytest.raises(InputError, match="expected RA---SIN, DEC--SIN, FREQ and one STOKES"):
        fitscube.read_cube(flat)
    (tmp_path / "junk.fits").write_text("not fits")
    with pytest.raises(InputError, match="not a readable FITS cube"):
        fitscube.read_cube(tmp_path / "junk.fits")

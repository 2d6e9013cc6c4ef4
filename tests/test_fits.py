"""FITS products: header, WCS orientation against a simulated source, round trip, previews."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tinyms
from astropy.io import fits as afits
from astropy.wcs import WCS

from htclean.imaging import fits, preview
from htclean.imaging.beams.beam import Beam
from htclean.imaging.errors import InputError
from htclean.imaging.geometry import ImageGeometry, lm_to_radec
from htclean.imaging.ms import partials, parts
from htclean.imaging.noise import robust_sigma

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
    return tmp, out.geom, partials.normalise(out)["dirty"], src


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


# --- previews as a radio astronomer reads them ---------------------------------------------

PREVIEW_GEOM = ImageGeometry(128, 128, 10 * ASEC, 2.6, 0.7, 1.4e9)


def _point(geom: ImageGeometry, x: int, y: int, flux: float, fwhm_pix: float = 3.8):
    """A point source of ``flux`` Jy restored with a round beam, at pixel (x, y)."""
    yy, xx = np.mgrid[:geom.ny, :geom.nx]
    return flux * np.exp(-4 * math.log(2) * ((xx - x) ** 2 + (yy - y) ** 2) / fwhm_pix ** 2)


def _rgb(path) -> np.ndarray:
    from matplotlib.image import imread

    return imread(path)[..., :3]


def test_preview_shows_a_faint_source_next_to_a_bright_one(tmp_path):
    """The demo's case: a 1 Jy peak and a 5 mJy source at S/N 40. The transposed image has
    the same pixels (so the same title and colour scale) with only the faint source moved, so
    the two PNGs differ only where the faint source is drawn: they must differ clearly."""
    g = PREVIEW_GEOM
    m = np.random.default_rng(7).normal(size=g.shape)
    noise = 127e-6 * (m + m.T) / math.sqrt(2)  # symmetric: unchanged by the transpose
    image = noise + _point(g, 64, 64, 1.0) + _point(g, 94, 74, 0.005)
    preview.write_preview(tmp_path / "a.png", image, g, title="faint")
    preview.write_preview(tmp_path / "b.png", image.T, g, title="faint")
    a, b = _rgb(tmp_path / "a.png"), _rgb(tmp_path / "b.png")
    assert a.shape == b.shape
    assert np.abs(a - b).max() > 0.3  # a linear 0..1 Jy scale moves 5 mJy by 1 colour of 256


def _drawn(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    return fig


def test_preview_stretch_title_and_units():
    g = PREVIEW_GEOM
    noise = np.random.default_rng(8).normal(scale=127e-6, size=g.shape)
    image = noise + _point(g, 64, 64, 1.0) + _point(g, 30, 90, 0.005)
    fig = _drawn(preview.figure(image, g, title="demo"))
    ax, bar = fig.axes
    norm = ax.images[0].norm
    sigma = robust_sigma(image)
    assert norm.vmax == pytest.approx(image.max()) and norm.vmin == pytest.approx(image.min())
    assert norm(0.005) - norm(0.0) > 0.25  # S/N 40 is a third of the way up, not 0.5 %
    assert norm(sigma) - norm(0.0) > 0.03  # the noise is visible
    assert norm(0.25) < 0.97  # a quarter of the peak is not saturated
    title = ax.get_title()
    assert "peak 1 Jy/beam" in title or "peak 0.99" in title
    assert f"noise (MAD) {sigma * 1e6:.4g} µJy/beam" in title and "rms" not in title
    assert bar.get_ylabel().startswith("Jy/beam")
    ticks = [t for t in bar.get_yticks() if norm.vmin <= t <= norm.vmax]
    assert 0.0 in ticks and 0.1 in ticks and 0.01 in ticks
    psf = _point(g, 64, 64, 1.0) - 0.05 * _point(g, 70, 64, 1.0)
    fig = _drawn(preview.figure(psf, g, bunit="", label="PSF (peak 1)", noise=False))
    assert fig.axes[1].get_ylabel().startswith("PSF (peak 1)")
    assert "noise" not in fig.axes[0].get_title() and "Jy" not in fig.axes[0].get_title()
    model = np.zeros(g.shape)
    model[64, 64], model[20, 100] = 0.9, 0.004
    fig = _drawn(preview.figure(model, g, bunit="Jy/pixel"))
    assert fig.axes[1].get_ylabel().startswith("Jy/pixel")
    assert "peak 0.9 Jy/pixel" in fig.axes[0].get_title()
    assert preview.format_value(126.8e-6, "Jy/beam") == "126.8 µJy/beam"
    assert preview.format_value(0.0123, "Jy/beam") == "12.3 mJy/beam"
    with pytest.raises(InputError, match="stretch"):
        preview.figure(image, g, stretch="log")


@pytest.mark.parametrize("bpa", [30.0, -60.0])
def test_preview_beam_ellipse_orientation(bpa):
    """BPA is East of North and East is on the left: +30 deg leans to the upper left."""
    g = PREVIEW_GEOM
    bmaj, bmin = 120 * ASEC, 40 * ASEC
    image = np.random.default_rng(9).normal(size=g.shape)
    fig = _drawn(preview.figure(image, g, beam=Beam(bmaj, bmin, bpa)))
    ax = fig.axes[0]
    (ellipse,) = ax.patches
    verts = ellipse.get_verts()  # display pixels, y up
    centre = verts.mean(axis=0)
    far = verts[np.argmax(np.hypot(*(verts - centre).T))] - centre
    far = far if far[1] > 0 else -far  # the major axis's northern end
    # the angle from up (North) towards the left (East) is the BPA, in (-90, 90]
    assert math.degrees(math.atan2(-far[0], far[1])) == pytest.approx(bpa, abs=3)
    x0, y0 = ax.transData.transform((0.0, 0.0))  # the image centre
    per_asec = abs(ax.transData.transform((0.0, 1.0))[1] - y0)
    assert 2 * np.hypot(*far) == pytest.approx(120 * per_asec, rel=0.05)  # true size
    assert centre[0] < x0 and centre[1] < y0  # bottom left
    assert 'beam 120" x 40", PA' in ax.get_title()


def test_read_fits_float32_is_the_stored_image(tmp_path):
    g = ImageGeometry(nx=48, ny=40, cell=math.radians(1 / 3600), ra=1.0, dec=0.5, freq=1.4e9)
    image = np.random.default_rng(2).normal(size=(40, 48))
    fits.write_fits(tmp_path / "a.fits", image, g)
    single, g32, _ = fits.read_fits(tmp_path / "a.fits", np.float32)
    double, g64, _ = fits.read_fits(tmp_path / "a.fits")
    assert single.dtype == np.float32 and double.dtype == np.float64 and g32 == g64
    assert single.dtype.isnative and single.flags.writeable
    np.testing.assert_array_equal(single, image.astype(np.float32))
    np.testing.assert_array_equal(double, single.astype(np.float64))


def test_preview_downsample_keeps_the_extremes():
    rng = np.random.default_rng(3)
    image = rng.normal(size=(1100, 700)).astype(np.float32)
    image[1001, 3], image[5, 650] = 50.0, -60.0
    small, factor = preview.downsample(image, limit=512)
    assert factor == 3 and small.shape == (367, 234) and small.dtype == np.float32
    assert small[333, 1] == 50.0 and small[1, 216] == -60.0
    assert not np.isnan(small).any()  # every block holds a pixel of the image
    block = image[300:303, 90:93]
    assert small[100, 30] == block.flat[np.abs(block).argmax()]
    tiny = np.zeros((500, 20))
    assert preview.downsample(tiny, limit=512) == (tiny, 1)

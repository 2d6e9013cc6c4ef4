"""A simulated wideband VLA field for the multi-term tests: exact visibilities, no MS on disk.

VLA D configuration, 4 h around transit at dec +40, 16 channels over 1-2 GHz, point sources at
pixel centres with spectral indices from -1.5 to +0.5 (``simulate.model_visibilities``: a
direct DFT, each source times (f / 1.5 GHz)^alpha and, when asked, the VLA primary beam), and
complex Gaussian noise. ``band_truth`` is what an nterms fit can recover: the least-squares
Taylor polynomial of each source's spectrum over the channels, with the channels' weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from htclean.imaging.geometry import ImageGeometry
from htclean.imaging.ms import msinfo
from htclean.imaging.simulation import vla
from htclean.imaging.simulation.sky import beam_attenuation, model_visibilities

C = 299792458.0
REF = 1.5e9
DEC = math.radians(40.0)


@dataclass
class Field:
    uvw: np.ndarray
    freq: np.ndarray
    vis: np.ndarray
    geom: ImageGeometry
    psf_geom: ImageGeometry
    sources: list[dict]
    noise_image: float  # expected image rms of tt0 (Jy/beam), natural weighting


# (pixel dx, pixel dy, flux Jy at 1.5 GHz, spectral index); dx grows to the West
SOURCES = (
    (0, 0, 1.0, -0.7), (-23, 14, 0.6, -1.5), (19, 21, 0.4, 0.5), (27, -17, 0.3, -1.0),
    (-15, -26, 0.2, 0.0), (-33, -5, 0.08, -0.3), (8, -35, 0.05, 0.3), (35, 6, 0.04, -1.2),
)


def make(*, noise: float = 0.5, size: int = 128, primary_beam: bool = False,
         sources=SOURCES, nchan: int = 16, seed: int = 7, hours: float = 4.0,
         cell: float | None = None, gaussians=()) -> Field:
    """The field's visibilities (module docstring); ``noise`` Jy rms per real/imaginary part;
    ``gaussians``: circular Gaussians (dx, dy, flux, alpha, FWHM in pixels) added to the
    point ``sources``."""
    _, _, positions = vla.antennas("D")
    a1, a2 = vla.baseline_pairs(len(positions))
    hour_angle = np.radians(np.linspace(-hours / 2, hours / 2, 13) * 15.0)
    uvw = vla.uvw(positions, a1, a2, hour_angle, DEC)
    width = 1e9 / nchan
    freq = 1e9 + width * (np.arange(nchan) + 0.5)
    if cell is None:
        cell = msinfo.suggest_cell(float(np.hypot(uvw[:, 0], uvw[:, 1]).max()) * freq[-1] / C)
    truth = []
    for dx, dy, flux, alpha, *fwhm in [*sources, *gaussians]:
        ell, m = -dx * cell, dy * cell
        truth.append({"l": ell, "m": m, "x": size // 2 + dx, "y": size // 2 + dy,
                      "flux": flux, "spectral_index": alpha, "shape": "point"})
        if fwhm:
            truth[-1].update(shape="gaussian", major=fwhm[0] * cell, minor=fwhm[0] * cell,
                             pa=0.0)
    vis = model_visibilities(uvw, freq, truth, REF, primary_beam=primary_beam)
    rng = np.random.default_rng(seed)
    vis = vis + noise * (rng.standard_normal(vis.shape) + 1j * rng.standard_normal(vis.shape))
    geom = ImageGeometry(nx=size, ny=size, cell=cell, ra=1.0, dec=DEC, freq=REF, bandwidth=1e9)
    psf_geom = ImageGeometry(nx=2 * size, ny=2 * size, cell=cell, ra=1.0, dec=DEC, freq=REF,
                             bandwidth=1e9)
    for s in truth:
        s["beam"] = beam_attenuation(s["l"], s["m"], freq) if primary_beam else np.ones(nchan)
    return Field(uvw, freq, vis, geom, psf_geom, truth, noise / math.sqrt(vis.size))


def band_truth(field: Field, source: dict, nterms: int, *, apparent: bool = False) -> np.ndarray:
    """The least-squares Taylor coefficients (nterms,) of a source's spectrum over the
    channels (equal weights: every sample has weight 1), about REF; ``apparent`` includes the
    primary beam."""
    spectrum = source["flux"] * (field.freq / REF) ** source["spectral_index"]
    if apparent:
        spectrum = spectrum * source["beam"]
    x = (field.freq - REF) / REF
    return np.polynomial.polynomial.polyfit(x, spectrum, nterms - 1)

"""Tiny Measurement Sets for the imaging tests, with exact visibilities of point sources.

Visibilities follow the MS convention measured in DESIGN.md:
``V = sum S exp(+2 pi i (u l + v m + w (n - 1)))`` with ``u = UVW * f / c``. The helpers are
deliberately small (tens of rows, a few channels) so the direct-DFT comparisons stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import casacore.tables as ct
import numpy as np

C = 299792458.0
ASEC = np.pi / 180 / 3600


@dataclass
class TinyObs:
    """What to write: array, times, channels, correlations and sources (offsets in radians)."""

    nant: int = 7
    ntime: int = 12
    nchan: int = 4
    freq0: float = 1.4e9
    dfreq: float = 8e6
    ra: float = 1.2
    dec: float = 0.6
    corr: tuple[int, ...] = (9, 12)  # XX, YY
    sources: list[tuple[float, float, float]] = field(
        default_factory=lambda: [(0.0, 0.0, 1.0), (12 * ASEC, -7 * ASEC, 0.5)])
    extent_m: float = 3000.0
    hours: float = 6.0
    noise: float = 0.0
    seed: int = 1
    weight_spectrum: bool = False
    nspw: int = 1
    nfield: int = 1


def _uvw(obs: TinyObs, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                           np.ndarray]:
    """uvw (nrow, 3) m, time (nrow,) s, ant1, ant2 for an east-west-ish array rotating."""
    xyz = rng.uniform(-obs.extent_m, obs.extent_m, size=(obs.nant, 3)) * [1.0, 1.0, 0.3]
    a1, a2 = np.triu_indices(obs.nant, 1)
    ha = np.linspace(-obs.hours / 2, obs.hours / 2, obs.ntime) * np.pi / 12
    rows = []
    for h in ha:
        b = xyz[a2] - xyz[a1]
        sh, chh, sd, cd = np.sin(h), np.cos(h), np.sin(obs.dec), np.cos(obs.dec)
        u = sh * b[:, 0] + chh * b[:, 1]
        v = -sd * chh * b[:, 0] + sd * sh * b[:, 1] + cd * b[:, 2]
        w = cd * chh * b[:, 0] - cd * sh * b[:, 1] + sd * b[:, 2]
        rows.append(np.stack([u, v, w], axis=1))
    uvw = np.concatenate(rows)
    time = np.repeat(4.9e9 + ha * 43200 / np.pi, len(a1))
    return uvw, time, np.tile(a1, obs.ntime), np.tile(a2, obs.ntime)


def lm_of(ra: float, dec: float, ra0: float, dec0: float) -> tuple[float, float]:
    """Direction cosines (l, m) of (ra, dec) about the phase centre (ra0, dec0)."""
    da = ra - ra0
    ell = np.cos(dec) * np.sin(da)
    m = np.sin(dec) * np.cos(dec0) - np.cos(dec) * np.sin(dec0) * np.cos(da)
    return float(ell), float(m)


def model_vis(uvw: np.ndarray, freq: np.ndarray,
              sources: list[tuple[float, float, float]]) -> np.ndarray:
    """Exact visibilities (nrow, nchan) complex128 of point sources (l, m, flux)."""
    vis = np.zeros((len(uvw), len(freq)), complex)
    for ell, m, s in sources:
        n = np.sqrt(1 - ell * ell - m * m)
        phase = uvw[:, 0] * ell + uvw[:, 1] * m + uvw[:, 2] * (n - 1)
        vis += s * np.exp(2j * np.pi * phase[:, None] * freq[None, :] / C)
    return vis


def write_ms(path: str, obs: TinyObs | None = None) -> dict:
    """Write the MS and return the truth: uvw, freq (per spw), vis per correlation, rows."""
    obs = obs or TinyObs()
    rng = np.random.default_rng(obs.seed)
    uvw1, time1, a1, a2 = _uvw(obs, rng)
    nbl_rows = len(uvw1)
    # one block of rows per (field, spw), in that order
    blocks = [(f, s) for f in range(obs.nfield) for s in range(obs.nspw)]
    ncorr = len(obs.corr)
    desc = ct.maketabdesc([
        ct.makearrcoldesc("DATA", 0j, ndim=2, valuetype="complex"),
        ct.makearrcoldesc("CORRECTED_DATA", 0j, ndim=2, valuetype="complex"),
    ] + ([ct.makearrcoldesc("WEIGHT_SPECTRUM", 0.0, ndim=2, valuetype="float")]
         if obs.weight_spectrum else []))
    ms = ct.default_ms(path, desc)
    nrow = nbl_rows * len(blocks)
    ms.addrows(nrow)
    freqs = [obs.freq0 + s * obs.nchan * obs.dfreq + np.arange(obs.nchan) * obs.dfreq
             for s in range(obs.nspw)]
    centres = [(obs.ra + 0.01 * f, obs.dec) for f in range(obs.nfield)]
    data = np.zeros((nrow, obs.nchan, ncorr), np.complex64)
    truth_vis = []
    for k, (f, s) in enumerate(blocks):
        sl = slice(k * nbl_rows, (k + 1) * nbl_rows)
        v = model_vis(uvw1, freqs[s], obs.sources)
        if obs.noise:
            v = v + obs.noise * (rng.standard_normal(v.shape) + 1j * rng.standard_normal(v.shape))
        truth_vis.append(v)
        data[sl] = v[:, :, None]
        ms.putcol("FIELD_ID", np.full(nbl_rows, f, np.int32), sl.start, nbl_rows)
        ms.putcol("DATA_DESC_ID", np.full(nbl_rows, s, np.int32), sl.start, nbl_rows)
    ms.putcol("UVW", np.tile(uvw1, (len(blocks), 1)))
    ms.putcol("TIME", np.tile(time1, len(blocks)))
    ms.putcol("ANTENNA1", np.tile(a1, len(blocks)).astype(np.int32))
    ms.putcol("ANTENNA2", np.tile(a2, len(blocks)).astype(np.int32))
    ms.putcol("DATA", data)
    ms.putcol("CORRECTED_DATA", data * 2)
    ms.putcol("FLAG", np.zeros((nrow, obs.nchan, ncorr), bool))
    ms.putcol("FLAG_ROW", np.zeros(nrow, bool))
    ms.putcol("WEIGHT", np.ones((nrow, ncorr), np.float32))
    ms.putcol("SIGMA", np.ones((nrow, ncorr), np.float32))
    ms.putcol("EXPOSURE", np.full(nrow, 10.0))
    ms.putcol("INTERVAL", np.full(nrow, 10.0))
    if obs.weight_spectrum:
        ms.putcol("WEIGHT_SPECTRUM", np.ones((nrow, obs.nchan, ncorr), np.float32))
    ms.close()

    with ct.table(f"{path}/SPECTRAL_WINDOW", readonly=False, ack=False) as t:
        t.addrows(obs.nspw)
        for s, fr in enumerate(freqs):
            t.putcell("CHAN_FREQ", s, fr)
            t.putcell("CHAN_WIDTH", s, np.full(obs.nchan, obs.dfreq))
            t.putcell("EFFECTIVE_BW", s, np.full(obs.nchan, obs.dfreq))
            t.putcell("RESOLUTION", s, np.full(obs.nchan, obs.dfreq))
            t.putcell("NUM_CHAN", s, obs.nchan)
            t.putcell("REF_FREQUENCY", s, fr[0])
            t.putcell("TOTAL_BANDWIDTH", s, obs.nchan * obs.dfreq)
    with ct.table(f"{path}/POLARIZATION", readonly=False, ack=False) as t:
        t.addrows(1)
        t.putcell("CORR_TYPE", 0, np.array(obs.corr, np.int32))
        t.putcell("NUM_CORR", 0, ncorr)
        t.putcell("CORR_PRODUCT", 0, np.zeros((ncorr, 2), np.int32))
    with ct.table(f"{path}/DATA_DESCRIPTION", readonly=False, ack=False) as t:
        t.addrows(obs.nspw)
        t.putcol("SPECTRAL_WINDOW_ID", np.arange(obs.nspw, dtype=np.int32))
        t.putcol("POLARIZATION_ID", np.zeros(obs.nspw, np.int32))
    with ct.table(f"{path}/FIELD", readonly=False, ack=False) as t:
        t.addrows(obs.nfield)
        for f, (ra, dec) in enumerate(centres):
            for col in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
                t.putcell(col, f, np.array([[ra, dec]]))
            t.putcell("NAME", f, f"F{f}")
    with ct.table(f"{path}/ANTENNA", readonly=False, ack=False) as t:
        t.addrows(obs.nant)
        t.putcol("NAME", [f"A{i:02d}" for i in range(obs.nant)])
        t.putcol("DISH_DIAMETER", np.full(obs.nant, 25.0))
    with ct.table(f"{path}/OBSERVATION", readonly=False, ack=False) as t:
        t.addrows(1)
        t.putcell("TELESCOPE_NAME", 0, "VLA")
        t.putcell("TIME_RANGE", 0, np.array([time1.min(), time1.max()]))
    return {"uvw": uvw1, "freq": freqs, "vis": truth_vis, "blocks": blocks,
            "rows_per_block": nbl_rows, "centres": centres, "obs": obs}


def dft_at(uvw: np.ndarray, freq: np.ndarray, vis: np.ndarray, weight: np.ndarray,
           ll: np.ndarray, mm: np.ndarray) -> np.ndarray:
    """Re sum w V exp(-2 pi i (u l + v m + w (n - 1))) at direction cosines ll, mm (any shape)."""
    nn = np.sqrt(1 - ll**2 - mm**2) - 1
    img = np.zeros(ll.shape)
    for c, f in enumerate(freq):
        uvwl = uvw * f / C
        wv = weight[:, c] * vis[:, c]
        ph = (np.multiply.outer(uvwl[:, 0], ll) + np.multiply.outer(uvwl[:, 1], mm)
              + np.multiply.outer(uvwl[:, 2], nn))
        img += np.tensordot(wv, np.exp(-2j * np.pi * ph), axes=1).real
    return img


def dft_dirty(uvw: np.ndarray, freq: np.ndarray, vis: np.ndarray, weight: np.ndarray,
              nx: int, ny: int, cell: float) -> np.ndarray:
    """Direct transform on the pixel grid: image[y, x] with l = -(x - nx/2) cell,
    m = (y - ny/2) cell."""
    ll, mm = np.meshgrid(-(np.arange(nx) - nx // 2) * cell, (np.arange(ny) - ny // 2) * cell)
    return dft_at(uvw, freq, vis, weight, ll, mm)


def settings_for(ms: str, *, cell: float = 1.5 * ASEC, size: int | list[int] = 64,
                 weighting: str = "natural", robust: float | None = None,
                 phase_centre: list[float] | None = None, chunk_rows: int = 100,
                 **sections: dict) -> dict:
    """Parsed settings for imaging ``ms``: double precision, epsilon 1e-7, w-gridding, CPU.

    ``sections`` merge extra keys into the raw configuration (e.g. deconvolution={...});
    phase_centre (radians) is set after parsing so it is exact.
    """
    from htclean.workflows import config

    raw = {"data": {"ms": ms},
           "image": {"scale": f"{cell / ASEC!r}asec", "size": size},
           "weighting": {"type": weighting},
           "gridder": {"epsilon": 1e-7, "precision": "double", "device": "cpu", "threads": 1,
                       "chunk_rows": chunk_rows}}
    if robust is not None:
        raw["weighting"]["robust"] = robust
    for name, keys in sections.items():
        raw.setdefault(name, {}).update(keys)
    settings = config.parse(config.resolve(raw))
    settings["image"]["cell"] = cell
    if phase_centre is not None:
        settings["image"]["phase_centre"] = [float(v) for v in phase_centre]
    return settings


def dft_predict(image: np.ndarray, uvw: np.ndarray, freq: np.ndarray, cell: float) -> np.ndarray:
    """Model visibilities (nrow, nchan) of a Jy/pixel image[y, x] by direct summation."""
    ny, nx = image.shape
    ys, xs = np.nonzero(image)
    srcs = [(-(x - nx // 2) * cell, (y - ny // 2) * cell, image[y, x])
            for y, x in zip(ys, xs, strict=True)]
    return model_vis(uvw, freq, srcs)

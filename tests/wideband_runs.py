"""Two simulated VLA observations over 1-2 GHz for the wideband `htclean run` tests.

Two days, two bands (A: 1.0-1.5 GHz, B: 1.5-2.0 GHz, 8 channels of 62.5 MHz each), VLA D, the
same field; the sources carry spectral indices about 1.5 GHz (imaging/simulation/simulate.py),
with or without the VLA primary beam. ``band_fit`` is what an nterms Taylor fit can recover: the
least-squares polynomial in x = (nu - 1.5 GHz) / 1.5 GHz of each source's spectrum over the
channels of both MSs (every channel has the same weight here: same rows, same noise).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from htclean.imaging.simulation.simulate import SimulationSpec, Source, simulate

ASEC = math.pi / 180 / 3600
REF = 1.5e9
NCHAN, WIDTH = 8, 62.5e6
BANDS = (("a.ms", "2024-03-20", 1.0e9), ("b.ms", "2024-03-22", 1.5e9))


def frequencies() -> np.ndarray:
    """Channel centres of both MSs (Hz)."""
    return np.concatenate([f0 + WIDTH * (np.arange(NCHAN) + 0.5) for _, _, f0 in BANDS])


def write(where: Path, sources: list[tuple], *, cell_asec: float, size: int, noise: float,
          primary_beam: bool = False) -> list[Path]:
    """Simulate both MSs into ``where``; sources (dx, dy pixels, Jy at 1.5 GHz, alpha)."""
    srcs = tuple(Source(flux, pixel_offset=(dx, dy), spectral_index=alpha, name=f"S{i}")
                 for i, (dx, dy, flux, alpha) in enumerate(sources))
    out = []
    for k, (name, date, f0) in enumerate(BANDS):
        spec = SimulationSpec(date=date, freq0=f0 + WIDTH / 2, nchan=NCHAN, chan_width=WIDTH,
                              sources=srcs, noise=noise, seed=11 + k, ref_freq=REF,
                              image_size=size, cell=cell_asec * ASEC,
                              primary_beam=primary_beam, integration=600.0)
        simulate(str(where / name), spec)
        out.append(where / name)
    return out


def band_fit(flux: float, alpha: float, nterms: int, beam: np.ndarray | None = None
             ) -> np.ndarray:
    """Least-squares Taylor coefficients (nterms,) of ``flux (nu / REF)^alpha`` (times
    ``beam`` per channel) over both bands' channels."""
    f = frequencies()
    spectrum = flux * (f / REF) ** alpha * (1.0 if beam is None else beam)
    return np.polynomial.polynomial.polyfit((f - REF) / REF, spectrum, nterms - 1)


def start(where: Path, ms: list[Path], *, cell_asec: float, size: int, nterms: int,
          primary_beam: bool, name: str = "wb", **deconvolution) -> tuple[Path, subprocess.Popen]:
    """``htclean run`` of both MSs into ``where/run`` in the background."""
    where.mkdir(parents=True, exist_ok=True)
    cfg = {"data": {"ms": [str(Path(m).resolve()) for m in ms]},
           "image": {"name": name, "size": size, "scale": f"{cell_asec}asec",
                     "primary_beam": primary_beam},
           "gridder": {"epsilon": 1e-6, "threads": 1, "device": "cpu"},
           "deconvolution": {"nterms": nterms, "niter": 5000, "gain": 0.1, "mgain": 0.8,
                             "auto_threshold": 2.0, "max_cycles": 10, **deconvolution},
           "partition": {"parts": 3, "axis": "time"},
           "execution": {"request_memory": "2GB", "retries": 0},
           "output": {"run_id": f"{name}{nterms}"}}
    path = where / "config.yml"
    path.write_text(yaml.safe_dump(cfg))
    err = open(where / "stderr.txt", "wb")  # noqa: SIM115 (kept by the child)
    proc = subprocess.Popen([sys.executable, "-m", "htclean.workflows.cli", "run", str(path),
                             "-o", str(where / "run"), "--jobs", "1"],
                            stdout=subprocess.DEVNULL, stderr=err)
    err.close()
    return where / "run" / "outputs", proc

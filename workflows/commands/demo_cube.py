"""The observation and configuration of ``htclean demo --cube``: an HI line field.

cube.ms: VLA D, 2 h around transit, 32 channels of 100 kHz from 1418.0 MHz (about 21 km/s
each, LSRK-free TOPOCENT as the simulator writes), RR LL; a 0.3 Jy continuum source at the
phase centre and a rotating HI disk (imaging/simulation/disk.py: 20 Jy km/s, radius 150",
inclination 60 deg, receding half at PA 30 deg, 150 km/s at the edge) 240" West and 180"
North of it, on a 0.05 Jy continuum of its own. Its truth (per-channel disk flux and centroid) is in
cube.ms.sources.json. cube.yml images MS channels 6..25 as a cube with the continuum fitted to
the line-free channels at both ends of the band and subtracted in the uv plane, the HI rest
frequency (so the products carry velocities), and writes the cubes, NAME-mom0/-mom1.fits,
NAME-channels.png and NAME-summary.json.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

ASEC = math.pi / 180 / 3600


@dataclass(frozen=True)
class CubeField:
    """The cube demo's numbers (module docstring)."""

    ms_name: str = "cube.ms"
    image_name: str = "cube"
    config_name: str = "cube.yml"
    parts: int = 2
    size: int = 128
    cell_asec: float = 10.0
    freq0: float = 1418.0e6
    nchan: int = 32
    width: float = 100e3
    rest: float = 1420.405752e6
    start: int = 6  # the imaged MS channels: start .. start + image_nchan - 1
    image_nchan: int = 20
    linefree: str = "0~5;26~31"


CUBE = CubeField()


def simulate_cube(out: Path) -> list[Path]:
    """The cube demo's MS in DIR (simulated now, or the earlier demo's)."""
    from htclean.imaging.simulation.disk import Disk
    from htclean.imaging.simulation.simulate import SimulationSpec, Source, simulate
    from htclean.imaging.spectral.moments import radio_velocity

    c = CUBE
    ms = out / c.ms_name
    if (ms / "table.dat").is_file() and Path(f"{ms}.sources.json").is_file():
        print(f"using the simulated observation {ms}", file=sys.stderr)
        return [ms]
    centre = c.freq0 + c.width * (c.nchan - 1) / 2
    hi = Disk(flux=20.0, velocity=float(radio_velocity(centre, c.rest)), rest_frequency=c.rest,
              radius=150 * ASEC, inclination=math.radians(60.0), pa=math.radians(30.0),
              rotation=150.0, dispersion=30.0, samples=16)
    sources = (Source(0.3, pixel_offset=(0, 0), spectral_index=-0.7, name="continuum"),
               Source(0.05, offset=(-240 * ASEC, 180 * ASEC), disk=hi, name="HI disk"))
    print(f"simulating {ms} (VLA D, 2 h, {c.nchan} x {c.width / 1e3:g} kHz from "
          f"{c.freq0 / 1e6:g} MHz, a rotating HI disk on continuum)", file=sys.stderr)
    spec = SimulationSpec(freq0=c.freq0, nchan=c.nchan, chan_width=c.width, integration=300.0,
                          hour_angle_h=(-1.0, 1.0), sources=sources, noise=0.05,
                          image_size=c.size, cell=c.cell_asec * ASEC)
    simulate(str(ms), spec, force=True, command=["htclean", "demo", "--cube"])
    return [ms]


def cube_config(jobs: int, run_dir: str) -> str:
    """The cube demo's configuration (YAML text)."""
    c = CUBE
    return f"""\
# The htclean cube demo: an HI line cube of the simulated {c.ms_name}, every channel its own
# CLEAN, the continuum subtracted in the uv plane first. Edit and rerun with:
#   htclean run {c.config_name} -o {run_dir} --force
data:
  ms: {c.ms_name}
  continuum:
    linefree: "{c.linefree}"
    fitorder: 1
image:
  name: {c.image_name}
  mode: cube
  start: {c.start}
  nchan: {c.image_nchan}
  width: 1
  rest_frequency: {c.rest / 1e6:.6f}MHz
  size: {c.size}
  scale: {c.cell_asec:g}asec
weighting:
  type: natural
deconvolution:
  algorithm: hogbom
  niter: 2000
  mgain: 0.8
  auto_threshold: 3.0
partition:
  parts: {c.parts}
  axis: time
execution:
  request_memory: 1GB
  jobs: {jobs}
output:
  dir: {run_dir}
"""


def print_cube_done(out: Path, ms: list[Path], config: Path, outputs: Path,
                    plot: Path | None) -> None:
    """What the cube demo made and its numbers (from NAME-summary.json and the moment maps)."""
    import json

    import numpy as np

    from htclean.imaging.fits import read_fits

    name = CUBE.image_name
    summary = json.loads((outputs / f"{name}-summary.json").read_text())
    channels = summary.get("channels", [])
    print(f"\nhtclean demo --cube: done in {out}")
    print(f"  observation    {', '.join(str(m) for m in ms)} (truth: *.sources.json)")
    print(f"  configuration  {config}")
    print(f"  cubes          {outputs}/{name}-{{image,model,residual,psf,dirty}}.fits")
    print(f"  moments        {outputs}/{name}-{{mom0,mom1}}.fits")
    print(f"  preview        {outputs}/{name}-channels.png")
    print(f"  summary        {outputs / f'{name}-summary.json'}")
    if plot is not None:
        print(f"  report         {plot}")
    mom0 = outputs / f"{name}-mom0.fits"
    if mom0.is_file():
        m0 = read_fits(mom0)[0]
        m1 = read_fits(outputs / f"{name}-mom1.fits")[0]
        finite = np.isfinite(m1)
        span = (float(np.min(m1[finite])), float(np.max(m1[finite]))) if finite.any() else None
        print(f"  {len(channels)} channels; moment 0 peak {np.nanmax(m0):.3g} Jy/beam km/s"
              + (f", moment 1 from {span[0]:.0f} to {span[1]:.0f} km/s" if span else ""))

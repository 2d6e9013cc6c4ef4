"""``htclean demo --wideband``: two observations over 1-2 GHz imaged together, MT-MFS, beam.

Writes into DIR (default demo-wideband-out): wideband-a.ms (1.0-1.5 GHz) and wideband-b.ms
(1.5-2.0 GHz, two days later), VLA D, 8 channels of 62.5 MHz each, both with the VLA primary
beam applied and a field of point sources with spectral indices from -1.5 to +0.5 about
1.5 GHz (their truth in wideband-?.ms.sources.json); the configuration wideband.yml (both MSs,
deconvolution.nterms 2, image.primary_beam on); and the run in DIR/run: NAME-image-tt0/tt1,
NAME-alpha (and -alpha-error), NAME-pb, the corrected NAME-image-tt0-pb and NAME-alpha-pb,
the previews (NAME-alpha.png among them) and NAME-summary.json in DIR/run/outputs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

IMAGE_NAME = "wideband"
CONFIG_NAME = "wideband.yml"
RUN_DIR = "run"
PARTS = 4
CELL_ASEC, SIZE = 8.0, 256
REF_FREQ, NCHAN, WIDTH = 1.5e9, 8, 62.5e6
BANDS = (("wideband-a.ms", "2024-03-20", 1.0e9), ("wideband-b.ms", "2024-03-22", 1.5e9))
# (name, dx, dy pixels (x to the West), Jy at 1.5 GHz, spectral index); inside the half-power
# radius at 1.5 GHz (105 pixels of 8 arcsec)
SOURCES = (("W1", 0, 0, 1.0, -0.7), ("W2", -40, 25, 0.4, -1.5), ("W3", 45, 38, 0.25, 0.5),
           ("W4", 20, -55, 0.15, -1.0), ("W5", -60, -30, 0.08, 0.0),
           ("W6", -12, 70, 0.05, -0.3), ("W7", 75, -10, 0.03, 0.3), ("W8", 52, 60, 0.02, -1.2))


def simulate_observations(out: Path) -> list[Path]:
    """Both MSs in DIR (simulated now, or the earlier demo's)."""
    from htclean.imaging.simulate import SimulationSpec, Source, simulate

    sources = tuple(Source(flux, pixel_offset=(dx, dy), spectral_index=alpha, name=name)
                    for name, dx, dy, flux, alpha in SOURCES)
    paths = []
    for name, date, f0 in BANDS:
        ms = out / name
        paths.append(ms)
        if (ms / "table.dat").is_file() and Path(f"{ms}.sources.json").is_file():
            print(f"using the simulated observation {ms}", file=sys.stderr)
            continue
        print(f"simulating {ms} (VLA D, 3 h on {date}, {NCHAN} x {WIDTH / 1e6:g} MHz from "
              f"{f0 / 1e9:g} GHz, primary beam applied)", file=sys.stderr)
        spec = SimulationSpec(date=date, freq0=f0 + WIDTH / 2, nchan=NCHAN, chan_width=WIDTH,
                              sources=sources, ref_freq=REF_FREQ, image_size=SIZE,
                              cell=CELL_ASEC * 3.141592653589793 / 180 / 3600,
                              primary_beam=True, seed=len(paths))
        simulate(str(ms), spec, force=True, command=["htclean", "demo", "--wideband"])
    return paths


def config_text(ms: list[Path], jobs: int) -> str:
    names = ", ".join(m.name for m in ms)
    return f"""\
# The htclean wideband demo: two observations over 1-2 GHz imaged together with multi-term
# MFS (spectral index) and the VLA primary beam. Edit and rerun with:
#   htclean run {CONFIG_NAME} -o {RUN_DIR} --force
data:
  ms: [{names}]
image:
  name: {IMAGE_NAME}
  size: {SIZE}
  scale: {CELL_ASEC:g}asec
  primary_beam: true
  pb_limit: 0.2
weighting:
  type: briggs
  robust: 0.0
deconvolution:
  algorithm: hogbom
  nterms: 2
  niter: 10000
  mgain: 0.8
  auto_threshold: 3.0
partition:
  parts: {PARTS}
  axis: time
execution:
  request_memory: 2GB
  jobs: {jobs}
output:
  dir: {RUN_DIR}
"""


def run(args: argparse.Namespace) -> int:
    from htclean.workflows.commands import demo
    from htclean.workflows.commands import run as run_command

    out = Path(args.dir or "demo-wideband-out").absolute()
    demo.prepare_dir(out)
    ms = simulate_observations(out)
    config = out / CONFIG_NAME
    tmp = config.with_name(f".{config.name}.tmp")
    tmp.write_text(config_text(ms, args.jobs))
    tmp.replace(config)
    run_dir = out / RUN_DIR
    code = run_command.run(argparse.Namespace(config=str(config), output=str(run_dir),
                                              resume=False, jobs=None, site="local",
                                              force=True))
    if code != 0:
        return code
    plot = demo.write_report(run_dir)
    outputs = run_dir / "outputs"
    summary = json.loads((outputs / f"{IMAGE_NAME}-summary.json").read_text())
    print(f"\nhtclean demo --wideband: done in {out}")
    print(f"  observations   {', '.join(str(m) for m in ms)} (truth: *.sources.json)")
    print(f"  configuration  {config}")
    print(f"  images         {outputs}/{IMAGE_NAME}-{{image-tt0,image-tt1,alpha,alpha-error,"
          "pb,image-tt0-pb,alpha-pb}.fits")
    print(f"  alpha preview  {outputs / f'{IMAGE_NAME}-alpha.png'}")
    if plot is not None:
        print(f"  report         {plot}")
    print(f"  reference frequency {summary['reference_frequency_hz'] / 1e9:.4g} GHz; peak "
          f"tt0 {summary['image_tt0']['peak']:.4g} Jy/beam; alpha over "
          f"{summary['alpha']['pixels']} pixels, median {summary['alpha']['median']:.3g}; "
          f"{summary['components']} components in {summary['cycles']} major cycles "
          f"(stopped: {summary['stop_reason']})")
    return 0

"""Simulate a small VLA observation and image it end to end on this machine.

Writes into DIR (default demo-out): demo.ms (a simulated VLA D-configuration observation of
known point sources, 3 h at 1.4 GHz) with its truth demo.ms.sources.json, the configuration
demo.yml, and runs it with the embedded engine (as `htclean run demo.yml -o DIR/run`): the
partition, the parts' PSF and dirty images, the major/minor cycles, the restore. The products
(demo-image.fits, -model, -residual, -psf, -dirty, PNG previews, demo-summary.json) land in
DIR/run/outputs and the run's report (per-job statistics, concurrency plot) in DIR/run/report.

DIR must be new, empty, or a directory an earlier demo made (its run is replaced; the
simulated observation is reused). ``--wideband`` runs the wideband demo instead
(workflows/commands/demo_wideband.py: two MSs over 1-2 GHz, nterms 2, the primary beam; DIR
default demo-wideband-out).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from htclean.imaging.errors import InputError

HELP = "simulate a small VLA observation, image it here, write images, previews and a report"
MARKER = ".htclean-demo"
MS_NAME = "demo.ms"
CONFIG_NAME = "demo.yml"
RUN_DIR = "run"
IMAGE_NAME = "demo"
PARTS = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", default=None, metavar="DIR",
                        help="where to put everything (default demo-out, or "
                        "demo-wideband-out with --wideband)")
    parser.add_argument("--wideband", action="store_true",
                        help="two observations over 1-2 GHz imaged together with multi-term "
                        "MFS (spectral index) and the VLA primary beam")
    parser.add_argument("--jobs", type=int, default=0, metavar="N",
                        help="jobs at a time (default 0 = CPU cores)")


def prepare_dir(path: Path) -> None:
    """Create DIR, or accept it when empty or made by an earlier demo; InputError otherwise."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not (path / MARKER).is_file():
        raise InputError(f"{path} exists and was not made by htclean demo; choose another "
                         "DIR (the demo never overwrites other files)")
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("made by htclean demo; htclean demo may replace this directory\n")


def demo_config(truth: dict, jobs: int) -> str:
    """The demo's configuration (YAML text) for the simulated observation ``truth``."""
    image = truth["image"]
    return f"""\
# The htclean demo: the simulated observation {MS_NAME}, imaged with Briggs weighting,
# Hogbom CLEAN down to 3 sigma, in {PARTS} parts along time. Edit and rerun with:
#   htclean run {CONFIG_NAME} -o {RUN_DIR} --force
data:
  ms: {MS_NAME}
image:
  name: {IMAGE_NAME}
  size: {int(image['size'])}
  scale: {image['cell_asec']:.6g}asec
weighting:
  type: briggs
  robust: 0.0
deconvolution:
  algorithm: hogbom
  niter: 5000
  mgain: 0.8
  auto_threshold: 3.0
partition:
  parts: {PARTS}
  axis: time
execution:
  request_memory: 1GB
  jobs: {jobs}
output:
  dir: {RUN_DIR}
"""


def simulate_observation(out: Path) -> dict:
    """The demo observation in DIR (simulated now, or the earlier demo's); its truth."""
    from htclean.imaging.simulate import SimulationSpec, simulate

    ms, truth = out / MS_NAME, out / f"{MS_NAME}.sources.json"
    if (ms / "table.dat").is_file() and truth.is_file():
        print(f"using the simulated observation {ms}", file=sys.stderr)
        return json.loads(truth.read_text())
    print(f"simulating {ms} (VLA D, 3 h, 4 x 16 MHz at 1.4 GHz)", file=sys.stderr)
    return simulate(str(ms), SimulationSpec.demo(), force=True, command=["htclean", "demo"])


def write_report(run_dir: Path) -> Path | None:
    """The run's report (``htclean report``), or None where that command is absent."""
    try:
        from htclean.workflows.report import build_report, format_table
    except ImportError:
        return None
    report = build_report(str(run_dir))
    print(format_table(report))
    return Path(report["plot"])


def run(args: argparse.Namespace) -> int:
    from htclean.workflows.commands import run as run_command

    if args.jobs < 0:
        raise InputError(f"--jobs must be >= 0 (0 = CPU cores), got {args.jobs}")
    if getattr(args, "wideband", False):
        from htclean.workflows.commands import demo_wideband

        return demo_wideband.run(args)
    out = Path(args.dir or "demo-out").absolute()
    prepare_dir(out)
    truth = simulate_observation(out)
    config = out / CONFIG_NAME
    tmp = config.with_name(f".{config.name}.tmp")
    tmp.write_text(demo_config(truth, args.jobs))
    tmp.replace(config)
    run_dir = out / RUN_DIR
    code = run_command.run(argparse.Namespace(config=str(config), output=str(run_dir),
                                              resume=False, jobs=None, site="local",
                                              force=True))
    if code != 0:
        return code
    plot = write_report(run_dir)
    outputs = run_dir / "outputs"
    summary = json.loads((outputs / f"{IMAGE_NAME}-summary.json").read_text())
    beam = summary["beam"]
    print(f"\nhtclean demo: done in {out}")
    print(f"  observation    {out / MS_NAME} (true sources: {MS_NAME}.sources.json)")
    print(f"  configuration  {config}")
    print(f"  images         {outputs}/{IMAGE_NAME}-{{image,model,residual,psf,dirty}}.fits")
    print(f"  previews       {outputs}/{IMAGE_NAME}-{{image,residual,psf}}.png")
    print(f"  summary        {outputs / f'{IMAGE_NAME}-summary.json'}")
    if plot is not None:
        print(f"  report         {plot}")
    print(f"  peak {summary['image']['peak']:.4g} Jy/beam, residual rms "
          f"{summary['residual']['rms']:.3g} Jy/beam, beam {beam['bmaj_asec']:.1f}\" x "
          f"{beam['bmin_asec']:.1f}\"; {summary['components']} components in "
          f"{summary['cycles']} major cycles (stopped: {summary['stop_reason']})")
    return 0

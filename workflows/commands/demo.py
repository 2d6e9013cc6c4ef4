"""Simulate a small VLA observation and image it end to end on this machine.

Writes into DIR (default demo-out): demo.ms (a simulated VLA D-configuration observation of
known point sources, 3 h at 1.4 GHz) with its truth demo.ms.sources.json, the configuration
demo.yml, and runs it with the embedded engine (as `htclean run demo.yml -o DIR/run`): the
partition, the parts' PSF and dirty images, the major/minor cycles, the restore. The products
(demo-image.fits, -model, -residual, -psf, -dirty, PNG previews, demo-summary.json) land in
DIR/run/outputs and the run's report (per-job statistics, concurrency plot) in DIR/run/report.

``--wideband`` (DIR default demo-wideband-out) is the same with two observations over 1-2 GHz
imaged together: wideband-a.ms (1.0-1.5 GHz) and wideband-b.ms (1.5-2.0 GHz, two days later),
VLA D, 8 channels of 62.5 MHz each, both with the VLA primary beam applied and a field of
point sources with spectral indices from -1.5 to +0.5 about 1.5 GHz (their truth in
wideband-?.ms.sources.json); the configuration wideband.yml (both MSs, deconvolution.nterms
2, image.primary_beam on); products NAME-image-tt0/tt1, NAME-alpha (and -alpha-error),
NAME-pb, the corrected NAME-image-tt0-pb and NAME-alpha-pb, the previews (NAME-alpha.png among
them) and NAME-summary.json.

``--cube`` (DIR default demo-cube-out) simulates an HI line field (a rotating disk on continuum,
32 channels; workflows/commands/demo_cube.py) and images it as a cube with uv-plane continuum
subtraction: the cubes, NAME-mom0/-mom1.fits, NAME-channels.png and the per-channel summary.

DIR must be new, empty, or a directory an earlier demo made (its run is replaced; the
simulated observations are reused).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from htclean.imaging.errors import InputError
from htclean.workflows.commands import demo_cube

HELP = "simulate a small VLA observation, image it here, write images, previews and a report"
MARKER = ".htclean-demo"
MS_NAME = "demo.ms"
CONFIG_NAME = "demo.yml"
RUN_DIR = "run"
IMAGE_NAME = "demo"
PARTS = 2


@dataclass(frozen=True)
class WidebandField:
    """The wideband demo's observations: ``bands`` (MS name, date, lowest frequency Hz),
    ``nchan`` channels of ``width`` Hz each, the Taylor reference frequency ``ref_freq``
    (Hz), the image (``size`` pixels of ``cell_asec``) and ``sources`` (name, dx, dy pixels (x
    to the West), Jy at ``ref_freq``, spectral index)."""

    image_name: str = "wideband"
    config_name: str = "wideband.yml"
    parts: int = 4
    cell_asec: float = 8.0
    size: int = 256
    ref_freq: float = 1.5e9
    nchan: int = 8
    width: float = 62.5e6
    bands: tuple = (("wideband-a.ms", "2024-03-20", 1.0e9), ("wideband-b.ms", "2024-03-22", 1.5e9))
    # inside the half-power radius at 1.5 GHz (105 pixels of 8 arcsec)
    sources: tuple = (("W1", 0, 0, 1.0, -0.7), ("W2", -40, 25, 0.4, -1.5),
                      ("W3", 45, 38, 0.25, 0.5), ("W4", 20, -55, 0.15, -1.0),
                      ("W5", -60, -30, 0.08, 0.0), ("W6", -12, 70, 0.05, -0.3),
                      ("W7", 75, -10, 0.03, 0.3), ("W8", 52, 60, 0.02, -1.2))


WIDEBAND = WidebandField()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", default=None, metavar="DIR",
                        help="where to put everything (default demo-out, or "
                        "demo-wideband-out with --wideband)")
    parser.add_argument("--wideband", action="store_true",
                        help="two observations over 1-2 GHz imaged together with multi-term "
                        "MFS (spectral index) and the VLA primary beam")
    parser.add_argument("--cube", action="store_true",
                        help="an HI line field (a rotating disk on continuum) imaged as a "
                        "cube, every channel its own CLEAN, the continuum subtracted first")
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


def wideband_config(ms: list[Path], jobs: int) -> str:
    """The wideband demo's configuration (YAML text) for its MSs ``ms``."""
    wb = WIDEBAND
    names = ", ".join(m.name for m in ms)
    return f"""\
# The htclean wideband demo: two observations over 1-2 GHz imaged together with multi-term
# MFS (spectral index) and the VLA primary beam. Edit and rerun with:
#   htclean run {wb.config_name} -o {RUN_DIR} --force
data:
  ms: [{names}]
image:
  name: {wb.image_name}
  size: {wb.size}
  scale: {wb.cell_asec:g}asec
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
  parts: {wb.parts}
  axis: time
execution:
  request_memory: 2GB
  jobs: {jobs}
output:
  dir: {RUN_DIR}
"""


def simulate_observation(out: Path) -> dict:
    """The demo observation in DIR (simulated now, or the earlier demo's); its truth."""
    from htclean.imaging.simulation.simulate import SimulationSpec, simulate

    ms, truth = out / MS_NAME, out / f"{MS_NAME}.sources.json"
    if (ms / "table.dat").is_file() and truth.is_file():
        print(f"using the simulated observation {ms}", file=sys.stderr)
        return json.loads(truth.read_text())
    print(f"simulating {ms} (VLA D, 3 h, 4 x 16 MHz at 1.4 GHz)", file=sys.stderr)
    return simulate(str(ms), SimulationSpec.demo(), force=True, command=["htclean", "demo"])


def simulate_wideband(out: Path) -> list[Path]:
    """Both MSs of the wideband demo in DIR (simulated now, or the earlier demo's)."""
    from htclean.imaging.simulation.simulate import SimulationSpec, Source, simulate

    wb = WIDEBAND
    sources = tuple(Source(flux, pixel_offset=(dx, dy), spectral_index=alpha, name=name)
                    for name, dx, dy, flux, alpha in WIDEBAND.sources)
    paths = []
    for name, date, f0 in WIDEBAND.bands:
        ms = out / name
        paths.append(ms)
        if (ms / "table.dat").is_file() and Path(f"{ms}.sources.json").is_file():
            print(f"using the simulated observation {ms}", file=sys.stderr)
            continue
        print(f"simulating {ms} (VLA D, 3 h on {date}, {wb.nchan} x {wb.width / 1e6:g} MHz from "
              f"{f0 / 1e9:g} GHz, primary beam applied)", file=sys.stderr)
        spec = SimulationSpec(date=date, freq0=f0 + wb.width / 2, nchan=wb.nchan,
                              chan_width=wb.width, sources=sources, ref_freq=wb.ref_freq,
                              image_size=wb.size, cell=wb.cell_asec * math.pi / 180 / 3600,
                              primary_beam=True, seed=len(paths))
        simulate(str(ms), spec, force=True, command=["htclean", "demo", "--wideband"])
    return paths


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
    wide, cube = bool(getattr(args, "wideband", False)), bool(getattr(args, "cube", False))
    if wide and cube:
        raise InputError("--wideband and --cube are two different demos: choose one")
    default = "demo-wideband-out" if wide else "demo-cube-out" if cube else "demo-out"
    out = Path(args.dir or default).absolute()
    prepare_dir(out)
    if cube:
        ms = demo_cube.simulate_cube(out)
        name, config = demo_cube.CUBE.image_name, out / demo_cube.CUBE.config_name
        text = demo_cube.cube_config(args.jobs, RUN_DIR)
    elif wide:
        ms = simulate_wideband(out)
        name, config, text = WIDEBAND.image_name, out / WIDEBAND.config_name, \
            wideband_config(ms, args.jobs)
    else:
        truth = simulate_observation(out)
        ms = [out / MS_NAME]
        name, config, text = IMAGE_NAME, out / CONFIG_NAME, demo_config(truth, args.jobs)
    tmp = config.with_name(f".{config.name}.tmp")
    tmp.write_text(text)
    tmp.replace(config)
    run_dir = out / RUN_DIR
    code = run_command.run(argparse.Namespace(config=str(config), output=str(run_dir),
                                              resume=False, jobs=None, site="local",
                                              force=True))
    if code != 0:
        return code
    plot = write_report(run_dir)
    if cube:
        demo_cube.print_cube_done(out, ms, config, run_dir / "outputs", plot)
    else:
        print_done(out, ms, config, run_dir / "outputs", name, plot, wide)
    return 0


def print_done(out: Path, ms: list[Path], config: Path, outputs: Path, name: str,
               plot: Path | None, wide: bool) -> None:
    """What the demo made and its numbers (from NAME-summary.json)."""
    summary = json.loads((outputs / f"{name}-summary.json").read_text())
    tt0 = "_tt0" if "nterms" in summary else ""
    fits = "image-tt0,image-tt1,alpha,alpha-error,pb,image-tt0-pb,alpha-pb" if wide else \
        "image,model,residual,psf,dirty"
    pngs = "image-tt0,residual-tt0,psf,alpha" if wide else "image,residual,psf"
    beam = summary["beam"]
    print(f"\nhtclean demo{' --wideband' if wide else ''}: done in {out}")
    print(f"  observations   {', '.join(str(m) for m in ms)} (truth: *.sources.json)")
    print(f"  configuration  {config}")
    print(f"  images         {outputs}/{name}-{{{fits}}}.fits")
    print(f"  previews       {outputs}/{name}-{{{pngs}}}.png")
    print(f"  summary        {outputs / f'{name}-summary.json'}")
    if plot is not None:
        print(f"  report         {plot}")
    print(f"  peak {summary['image' + tt0]['peak']:.4g} Jy/beam, residual rms "
          f"{summary['residual' + tt0]['rms']:.3g} Jy/beam, beam {beam['bmaj_asec']:.1f}\" x "
          f"{beam['bmin_asec']:.1f}\"; {summary['components']} components in "
          f"{summary['cycles']} major cycles (stopped: {summary['stop_reason']})")
    if tt0:
        print(f"  reference frequency {summary['reference_frequency_hz'] / 1e9:.4g} GHz; "
              f"alpha over {summary['alpha']['pixels']} pixels, median "
              f"{summary['alpha']['median']:.3g}")

"""Multi-term MFS in the workflow: what nterms 2 (and 3) cost per job, from real runs' records.

Simulates the wideband demo's two observations (``htclean demo --wideband``: VLA D, 1.0-1.5
and 1.5-2.0 GHz, 8 channels each, --integration s per sample, primary beam applied) once,
then runs ``htclean run`` on them with nterms 1, 2 and 3 (the same configuration otherwise:
Briggs 0, Hogbom, --parts parts, --cycles major cycles to a threshold no run reaches, so every
run does the same loop; the primary beam off unless --primary-beam), and prints, from each
run's job records (R-*.record.json, executables/record.py), the mean wall and CPU seconds per
job type: grid (the image job: nterms dirty images and
2 nterms - 1 PSFs from one read), residual (predict nterms terms, grid nterms residuals),
deconvolve (the minor cycle: CPU per iteration), next and restore; with ratios to nterms 1.

    python benchmarks/mtmfs_jobs.py [--size 512] [--parts 4] [--cycles 3] [--integration 30]

The minor-cycle and single-grid costs without the workflow are benchmarks/mtmfs_minor_cycle.py.

Measured on the development machine (2 cores, shared, load ~2; defaults: 2 x 0.9 M samples,
512^2, 4 parts, 3 cycles; mean CPU s per job, ratio to nterms 1):

    job type      nterms 1     nterms 2         nterms 3
    grid          0.82         2.25 (x2.73)     3.65 (x4.42)
    residual      0.35         0.75 (x2.15)     1.02 (x2.92)
    deconvolve    0.22         0.39 (x1.73)     0.57 (x2.56)
    restore       1.16         1.53 (x1.31)     1.68 (x1.45)
    minor cycle   1.91 ms      5.77 ms          8.55 ms CPU per iteration
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TYPES = ("partition", "grid", "residual", "gather", "deconvolve", "next", "restore")


def simulate_pair(where: Path, integration: float, size: int) -> list[Path]:
    from htclean.imaging.simulation.simulate import SimulationSpec, Source, simulate
    from htclean.workflows.commands.demo import WIDEBAND as dw

    sources = tuple(Source(flux, pixel_offset=(dx, dy), spectral_index=alpha, name=name)
                    for name, dx, dy, flux, alpha in dw.sources)
    out = []
    for k, (name, date, f0) in enumerate(dw.bands):
        spec = SimulationSpec(date=date, freq0=f0 + dw.width / 2, nchan=dw.nchan,
                              chan_width=dw.width, sources=sources, ref_freq=dw.ref_freq,
                              image_size=size, cell=dw.cell_asec * math.pi / 180 / 3600,
                              primary_beam=True, seed=k + 1, integration=integration)
        simulate(str(where / name), spec, force=True)
        out.append(where / name)
    return out


def run(where: Path, ms: list[Path], nterms: int, args: argparse.Namespace) -> Path:
    import yaml

    cfg = {"data": {"ms": [str(m) for m in ms]},
           "image": {"name": "bench", "size": args.size, "scale": "8asec",
                     "primary_beam": args.primary_beam},
           "weighting": {"type": "briggs", "robust": 0.0},
           "gridder": {"threads": args.threads, "device": "cpu"},
           "deconvolution": {"nterms": nterms, "niter": 100000, "mgain": 0.8,
                             "threshold": "1uJy", "max_cycles": args.cycles},
           "partition": {"parts": args.parts, "axis": "time"},
           "execution": {"request_memory": "4GB", "retries": 0}}
    path = where / f"n{nterms}.yml"
    path.write_text(yaml.safe_dump(cfg))
    out = where / f"run-n{nterms}"
    subprocess.run([sys.executable, "-m", "htclean.workflows.cli", "run", str(path), "-o",
                    str(out), "--jobs", "1"], check=True, capture_output=True)
    return out / "outputs"


def per_type(outputs: Path) -> dict[str, dict[str, float]]:
    """Mean wall/CPU seconds and count per job type; iterations of the minor cycles."""
    found: dict[str, list[dict]] = {}
    for rec in outputs.glob("*.record.json"):
        r = json.loads(rec.read_text())
        kind = r["job"].split("-")[0]
        found.setdefault(kind, []).append(r)
    out = {k: {"jobs": len(v), "wall": statistics.mean(r["wall_s"] for r in v),
               "cpu": statistics.mean(r["cpu_s"] for r in v)} for k, v in found.items()}
    iterations = sum(json.loads(p.read_text())["iterations"]
                     for p in outputs.glob("*-deconvolve-c*.json")
                     if not p.name.endswith(".record.json"))
    if "deconvolve" in out:
        out["deconvolve"]["iterations"] = iterations
        out["deconvolve"]["cpu_per_iteration"] = (
            out["deconvolve"]["cpu"] * out["deconvolve"]["jobs"] / max(iterations, 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--integration", type=float, default=30.0)
    parser.add_argument("--nterms", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--primary-beam", action="store_true",
                        help="image.primary_beam on (nterms 1 then grids through the Taylor "
                        "code, for the channel weights)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mtmfs-jobs-") as tmp:
        where = Path(tmp)
        ms = simulate_pair(where, args.integration, args.size)
        results = {n: per_type(run(where, ms, n, args)) for n in args.nterms}
    base = results[args.nterms[0]]
    print(f"{args.size}^2 image, {args.parts} parts, {args.cycles} major cycles, two MSs of "
          f"{args.integration:g} s samples; mean per job (CPU s / wall s), CPU ratio to "
          f"nterms {args.nterms[0]}")
    print(f"{'job type':<12}" + "".join(f"{'nterms ' + str(n):>26}" for n in args.nterms))
    for kind in TYPES:
        if kind not in base:
            continue
        cells = []
        for n in args.nterms:
            t = results[n].get(kind)
            if t is None:
                cells.append(f"{'-':>26}")
                continue
            ratio = t["cpu"] / base[kind]["cpu"] if base[kind]["cpu"] > 0 else float("nan")
            cells.append(f"{t['cpu']:8.2f} / {t['wall']:6.2f} (x{ratio:4.2f})")
        print(f"{kind:<12}" + "".join(f"{c:>26}" for c in cells))
    line = []
    for n in args.nterms:
        d = results[n]["deconvolve"]
        line.append(f"nterms {n}: {d['iterations']} iterations, "
                    f"{1e3 * d['cpu_per_iteration']:.2f} ms CPU each")
    print("minor cycle: " + "; ".join(line))


if __name__ == "__main__":
    main()

"""What a PSF of image.psf_oversize x the image costs the psf-dirty grid job.

    python benchmarks/psf_oversize.py [--dir DIR] [--size 512] [--threads 2] [--repeat 3]
                                      [--oversize 1 2]

Simulates (once, kept in DIR) the demo MS (`htclean simulate` defaults: VLA D, 3 h, 4 x 16 MHz
at 1.4 GHz, RR LL), then runs the real job, `htclean-grid --mode psf-dirty` on the whole MS,
in a fresh process for each oversize, --repeat times, at the demo's suggested cell. Prints,
per oversize: the PSF's size, the best wall and CPU seconds and the peak RSS from the job's
record, and the partial's size; then the ratios to the first oversize.

Measured (2 shared cores, load ~3.7, 2 threads, epsilon 1e-6, the demo's 25k Stokes I
visibilities at 10 arcsec, best of 5-7): 512^2: oversize 1 wall 0.33-0.34 s, CPU 0.46-0.47 s,
peak RSS 100 MB, partial 2.0 MiB; oversize 2 wall 0.40-0.59 s, CPU 0.66-0.67 s, 121 MB,
5.0 MiB (CPU x1.4). 2048^2 (best of 3): oversize 1 wall 4.6 s, CPU 3.2 s, 252 MB, 32 MiB;
oversize 2 wall 9.9 s, CPU 11.3 s, 586 MB, 80 MiB (CPU x3.5: the PSF's FFTs over w-planes
dominate so few visibilities).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from htclean.imaging.geometry import psf_shape
from htclean.imaging.simulation import simulate


def make_ms(path: Path) -> dict:
    """The demo MS at ``path`` (simulated once) and its truth document."""
    if not (path / "table.dat").exists():
        simulate.simulate(str(path), simulate.SimulationSpec.demo(), force=True)
    return json.loads(Path(f"{path}.sources.json").read_text())


def run_job(work: Path, ms: Path, size: int, cell: float, threads: int, oversize: float,
            tag: str) -> dict:
    """One psf-dirty grid job in a fresh process; its record, plus the partial's size."""
    raw = {"data": {"ms": str(ms)},
           "image": {"size": size, "scale": f"{cell * 206264.80624709636!r}asec",
                     "psf_oversize": oversize},
           "gridder": {"threads": threads, "device": "cpu"},
           "execution": {"request_cpus": threads}, "output": {"run_id": "R"}}
    (work / "R-config.yml").write_text(yaml.safe_dump(raw))
    exe = Path(sys.executable).parent / "htclean-grid"
    record, out = work / f"R-{tag}.record.json", work / f"R-{tag}.npz"
    subprocess.run([str(exe), "--config", "R-config.yml", "--record", record.name, "--mode",
                    "psf-dirty", "--part", str(ms), "--output", out.name], cwd=work, check=True)
    rec = json.loads(record.read_text())
    rec["partial_bytes"] = out.stat().st_size
    out.unlink()
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="/tmp/htclean-bench-psf")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=min(2, len(os.sched_getaffinity(0))))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--oversize", type=float, nargs="+", default=[1.0, 2.0])
    args = ap.parse_args()
    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    ms = work / "demo.ms"
    truth = make_ms(ms)
    cell = truth["image"]["cell"]
    print(f"demo MS {ms}; image {args.size}^2 at {cell * 206264.806:.3f} asec; "
          f"{args.threads} threads; best of {args.repeat}")
    best = {}
    for over in args.oversize:
        recs = [run_job(work, ms, args.size, cell, args.threads, over, f"x{over:g}-{i}")
                for i in range(args.repeat)]
        wall, cpu = min(r["wall_s"] for r in recs), min(r["cpu_s"] for r in recs)
        rss = max(r["max_rss_mb"] for r in recs)
        best[over] = (wall, cpu)
        psf = psf_shape(args.size, args.size, over)[0]
        print(f"psf_oversize {over:g}: PSF {psf}^2, {recs[0]['visibilities']} visibilities: "
              f"wall {wall:.2f} s, CPU {cpu:.2f} s, peak RSS {rss:.0f} MB, partial "
              f"{recs[0]['partial_bytes'] / 2**20:.1f} MiB")
    base = args.oversize[0]
    for over in args.oversize[1:]:
        print(f"x{over:g} / x{base:g}: wall {best[over][0] / best[base][0]:.2f}, "
              f"CPU {best[over][1] / best[base][1]:.2f}")


if __name__ == "__main__":
    main()

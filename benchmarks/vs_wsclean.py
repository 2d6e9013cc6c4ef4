"""htclean against WSClean on one machine: the same simulated MSs, the same CLEAN settings.

    python benchmarks/vs_wsclean.py [--sizes demo 3m 50m] [--dir DIR] [--threads N]
                                    [--no-wsclean] [--parts P] [--precision single|double]
                                    [--pairing equal|default] [--epsilon E] [--tag TAG]
                                    [--psf-oversize F]
                                    [--wideband [--nterms 2]]

For each size, simulates the observation once with `htclean simulate` (kept in DIR), then runs
WSClean (when ``wsclean`` is on PATH) and `htclean run` one after the other on the same MS:
Briggs 0, Hogbom, gain 0.1, mgain 0.8, auto-threshold 3, niter 100000, the same size and cell,
``-j THREADS`` / request_cpus THREADS, and the gridding by ``--pairing``:

  equal    (default) both w-gridding at the same accuracy: WSClean ``-use-wgridder
           -wgridder-accuracy EPSILON``, htclean gridder.epsilon EPSILON (default 1e-5,
           htclean's default; WSClean's wgridder default is 1e-4)
  default  WSClean at its own default gridder (w-stacking, no ``-use-wgridder``: about 1e-3 of
           the peak from the exact image) against htclean at gridder.epsilon EPSILON (default
           1e-3): what a user who keeps WSClean's defaults compares with

Sizes:

  demo  htclean demo's observation (VLA D, 3 h, 4 x 16 MHz), its suggested image
  3m    VLA C, 4 h at 27 s, 16 x 8 MHz: 3.0M visibilities, 1024 x 1024
  50m   VLA B, 8 h at 13 s, 64 x 2 MHz: 49.8M visibilities, 4096 x 4096

Prints per size and imager: wall time, CPU time (user + system of the whole process tree, the
steadier figure on a shared machine), major cycles, peak memory of the largest process
(os.wait4's ru_maxrss of the imager and everything it ran) and, for htclean, the largest job
record's peak and which job it was, the bytes the residual jobs read per major cycle and the
MS tar they would have read per part before part files. Then the ratio htclean / WSClean
and how far htclean's restored image and residual lie from WSClean's (max |diff| / WSClean's
peak).
The machine's load average is printed before and after each run (and in the table, 1 min,
before and after the pair): on a shared machine the ratio is what it is worth only when both
ran under the same load (``--htclean-first`` runs htclean first, to alternate the order).
``--wideband``: WSClean's joined channels against htclean's MT-MFS on a two-MS 1-2 GHz
observation with the primary beam instead (vs_wsclean_wideband.py).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

SIZES = {
    "demo": [],
    "3m": ["--configuration", "C", "--duration", "4h", "--integration", "27s", "--nchan", "16",
           "--chan-width", "8MHz", "--image-size", "1024"],
    "50m": ["--configuration", "B", "--duration", "8h", "--integration", "13s", "--nchan", "64",
            "--chan-width", "2MHz", "--image-size", "4096"],
}
NITER = 100000


def htclean_exe() -> str:
    return str(Path(sys.executable).parent / "htclean")


def simulate(work: Path, size: str) -> tuple[Path, dict]:
    ms = work / f"{size}.ms"
    truth = work / f"{size}.ms.sources.json"
    if not ((ms / "table.dat").is_file() and truth.is_file()):
        t0 = time.perf_counter()
        subprocess.run([htclean_exe(), "simulate", str(ms), "--force", *SIZES[size]],
                       check=True, stdout=subprocess.DEVNULL)
        print(f"[{size}] simulated {ms} in {time.perf_counter() - t0:.0f} s", flush=True)
    return ms, json.loads(truth.read_text())


def timed(cmd: list[str], log: Path) -> tuple[float, float, float]:
    """(wall s, peak RSS MiB of the largest process of the command's tree, CPU s of the
    tree)."""
    with log.open("w") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({proc.returncode}); see {log}")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


PAIRINGS = {"equal": 1e-5, "default": 1e-3}  # --pairing: htclean's epsilon unless --epsilon


def run_wsclean(ms: Path, truth: dict, work: Path, threads: int,
                epsilon: float | None) -> dict:
    """WSClean on ``ms``: w-gridding at ``epsilon``, or (None) its default gridder."""
    work.mkdir(parents=True, exist_ok=True)
    n = str(int(truth["image"]["size"]))
    gridder = [] if epsilon is None else ["-use-wgridder", "-wgridder-accuracy", f"{epsilon:g}"]
    cmd = ["wsclean", "-name", str(work / "wsclean"), "-size", n, n,
           "-scale", f"{truth['image']['cell_asec']:.6g}asec", "-data-column", "DATA",
           "-weight", "briggs", "0", "-niter", str(NITER), "-gain", "0.1", "-mgain", "0.8",
           "-auto-threshold", "3", *gridder, "-no-update-model-required",
           "-j", str(threads), str(ms)]
    wall, peak, cpu = timed(cmd, work / "wsclean.log")
    text = (work / "wsclean.log").read_text()
    found = re.search(r"(\d+) major iterations were performed", text)
    return {"wall": wall, "peak": peak, "cpu": cpu,
            "cycles": int(found.group(1)) if found else None}


def htclean_config(ms: Path, truth: dict, threads: int, parts: int | None,
                   precision: str | None, epsilon: float,
                   psf_oversize: float | None = None) -> str:
    gridder = f"gridder:\n  epsilon: {epsilon!r}\n" + (
        f"  precision: {precision}\n" if precision else "")
    part = f"partition:\n  parts: {parts}\n" if parts else ""
    return (f"data:\n  ms: {ms}\nimage:\n  name: bench\n  size: {int(truth['image']['size'])}\n"
            f"  scale: {truth['image']['cell_asec']:.6g}asec\n"
            + (f"  psf_oversize: {psf_oversize:g}\n" if psf_oversize else "") +
            "weighting:\n  type: briggs\n  robust: 0.0\n"
            f"deconvolution:\n  algorithm: hogbom\n  niter: {NITER}\n  gain: 0.1\n"
            "  mgain: 0.8\n  auto_threshold: 3.0\n"
            f"{gridder}{part}execution:\n  request_cpus: {threads}\n  jobs: 0\n")


def records(run: Path) -> list[dict]:
    return [json.loads(Path(p).read_text())
            for p in glob.glob(str(run / "outputs" / "*.record.json"))]


def run_and_read(config_text: str, work: Path) -> tuple[dict, list[dict], dict, Path]:
    """`htclean run` of ``config_text`` in ``work``: (wall/peak/cpu and the largest job, the
    job records, the summary, the run directory)."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "bench.yml"
    config.write_text(config_text)
    run = work / "run"
    wall, peak, cpu = timed([htclean_exe(), "run", str(config), "-o", str(run), "--force"],
                            work / "htclean.log")
    recs = records(run)
    summary = json.loads((run / "outputs" / "bench-summary.json").read_text())
    largest = max(recs, key=lambda r: r["max_rss_mb"])
    timing = {"wall": wall, "peak": peak, "cpu": cpu, "jobs": len(recs),
              "job_peak": largest["max_rss_mb"], "job_peak_name": largest["job"]}
    return timing, recs, summary, run


def run_htclean(ms: Path, truth: dict, work: Path, threads: int, parts: int | None,
                precision: str | None, epsilon: float, psf_oversize: float | None = None) -> dict:
    timing, recs, summary, run = run_and_read(
        htclean_config(ms, truth, threads, parts, precision, epsilon, psf_oversize), work)
    residual = [r for r in recs if "residual" in r["argv"]]
    cycles = max(1, len({r["job"].split("-p")[0] for r in residual}))
    tar = next(iter(glob.glob(str(run / "inputs" / "*.tar"))), None)
    nparts = len(glob.glob(str(run / "outputs" / "*-part-*")))
    return {**timing, "cycles": summary["cycles"], "iterations": summary["iterations"],
            "bytes_cycle": sum(r["bytes_read"] for r in residual) / cycles,
            "tar_part": (Path(tar).stat().st_size if tar else ms_tar_bytes(ms)) / max(nparts, 1),
            "peak_flux": summary["image"]["peak"], "outputs": run / "outputs"}


def agreement(ws_dir: Path, outputs: Path) -> dict[str, float]:
    """max |htclean - WSClean| / WSClean's peak of the restored image and the residual (the
    same pixel grid), where both imagers' images are there."""
    from astropy.io import fits

    out = {}
    for kind in ("image", "residual"):
        ws_path, ht_path = ws_dir / f"wsclean-{kind}.fits", outputs / f"bench-{kind}.fits"
        if ws_path.is_file() and ht_path.is_file():
            ws_image = fits.getdata(ws_path).astype("float64").squeeze()
            ht_image = fits.getdata(ht_path).astype("float64").squeeze()
            peak = float(abs(fits.getdata(ws_dir / "wsclean-image.fits")).max())
            out[kind] = float(abs(ht_image - ws_image).max()) / peak
    return out


def ms_tar_bytes(ms: Path) -> int:
    """Size of the MS as an uncompressed tar (what a part used to be, summed over parts)."""
    total = 0
    with tarfile.open(os.devnull, "w") as tar:
        for p in [ms, *ms.rglob("*")]:
            total += 512 + (-(-tar.gettarinfo(str(p)).size // 512) * 512 if p.is_file() else 0)
    return total


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    p.add_argument("--dir", default="bench-vs-wsclean", help="working directory (kept)")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--parts", type=int, help="partition.parts (default: the configuration's)")
    p.add_argument("--precision", choices=("single", "double"),
                   help="gridder.precision (default: the configuration's)")
    p.add_argument("--pairing", choices=tuple(PAIRINGS), default="equal",
                   help="equal: both w-gridding at --epsilon; default: WSClean's default "
                        "gridder (w-stacking) against htclean at --epsilon")
    p.add_argument("--epsilon", type=float,
                   help="htclean's gridder.epsilon, and WSClean's -wgridder-accuracy with "
                        "--pairing equal (default: 1e-5 equal, 1e-3 default)")
    p.add_argument("--psf-oversize", type=float,
                   help="htclean's image.psf_oversize (default: the configuration's, 2; "
                        "1 is WSClean's and CASA's image-sized PSF)")
    p.add_argument("--no-wsclean", action="store_true")
    p.add_argument("--htclean-first", action="store_true",
                   help="run htclean before WSClean (alternate the order on a shared machine)")
    p.add_argument("--tag", default="",
                   help="run htclean in SIZE/htclean-TAG (compare two htclean builds on the "
                        "same MS: run this script with each one's python)")
    p.add_argument("--wideband", action="store_true",
                   help="the two-MS 1-2 GHz pairing instead (vs_wsclean_wideband.py)")
    p.add_argument("--nterms", type=int, default=2, help="with --wideband: htclean's nterms")
    p.add_argument("--threshold", type=float, metavar="JY",
                   help="with --wideband: both stop at this peak residual (WSClean -threshold, "
                        "deconvolution.threshold) instead of at 3 x each one's own noise "
                        "estimate, so both clean to the same depth")
    args = p.parse_args(argv)
    if args.epsilon is None:
        args.epsilon = PAIRINGS["equal" if args.wideband else args.pairing]
    have_ws = not args.no_wsclean and shutil.which("wsclean") is not None
    if args.wideband:
        import vs_wsclean_wideband

        return vs_wsclean_wideband.main(args, have_ws)
    work = Path(args.dir).absolute()
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.sizes:
        ms, truth = simulate(work, size)
        obs = truth["observation"]
        nvis = obs["rows"] * obs["nchan"]  # Stokes I samples (each of 2 or 4 correlations)
        default = args.pairing == "default"
        ws_dir = work / size / ("wsclean-default" if default else "wsclean")
        where = work / size / ("htclean-" + args.tag if args.tag else
                               f"htclean-e{args.epsilon:g}")
        ws, loads = None, [os.getloadavg()[0]]
        order = ["htclean", "wsclean"] if args.htclean_first else ["wsclean", "htclean"]
        for imager in order:
            if imager == "wsclean" and have_ws:
                print(f"[{size}] wsclean ... (load {load()})", flush=True)
                ws = run_wsclean(ms, truth, ws_dir, args.threads,
                                 None if default else args.epsilon)
            elif imager == "htclean":
                print(f"[{size}] htclean run ... (load {load()})", flush=True)
                ht = run_htclean(ms, truth, where, args.threads, args.parts,
                                 args.precision, args.epsilon, args.psf_oversize)
        loads.append(os.getloadavg()[0])
        ht["agree"] = agreement(ws_dir, ht["outputs"]) if ws else {}
        print(f"[{size}] done (load {load()})", flush=True)
        rows.append((size, nvis, int(truth["image"]["size"]), ws, ht, loads))
    wsgrid = ("its default gridder (w-stacking)" if args.pairing == "default" else
              f"-use-wgridder -wgridder-accuracy {args.epsilon:g}")
    print(f"\n{os.cpu_count()} CPUs, {args.threads} threads; WSClean at {wsgrid}, htclean "
          f"at gridder.epsilon {args.epsilon:g}; load after: {load()}")
    print("| size | visibilities | image | WSClean | htclean run | ratio (CPU s ratio) | peak "
          "memory WSClean / htclean (largest job) | bytes read per cycle (MS tar per part "
          "before) | max diff / peak vs WSClean: image, residual | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size, nvis, n, ws, ht, loads in rows:
        wst = f"{ws['wall']:.1f} s, {ws['cpu']:.0f} CPU s ({ws['cycles']} cycles)" if ws else "-"
        ratio = f"{ht['wall'] / ws['wall']:.2f}x ({ht['cpu'] / ws['cpu']:.2f}x)" if ws else "-"
        wsm = f"{ws['peak'] / 1024:.2f}" if ws else "-"
        print(f"| {size} | {nvis / 1e6:.2f}M | {n}² | {wst} | {ht['wall']:.1f} s, "
              f"{ht['cpu']:.0f} CPU s ({ht['jobs']} jobs, {ht['cycles']} cycles) | {ratio} | "
              f"{wsm} / "
              f"{ht['peak'] / 1024:.2f} ({ht['job_peak_name']}: {ht['job_peak'] / 1024:.2f}) GiB | "
              f"{ht['bytes_cycle'] / 1e6:.1f} MB ({ht['tar_part'] / 1e6:.1f} MB) | "
              f"{', '.join(f'{v:.2e}' for v in ht['agree'].values()) or '-'} | "
              f"{loads[0]:.1f}-{loads[1]:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Spectral cubes against WSClean: each channel's dirty image and PSF, and a 64-channel wall.

    python benchmarks/vs_wsclean_cube.py [--dir DIR] [--threads N] [--skip-check]
                                         [--skip-timing] [--no-wsclean]
                                         [--htclean-cmd TEMPLATE] [--htclean EXE ...]
                                         [--request-cpus N] [--psf-oversize X]
                                         [--remove-runs]

Needs ``wsclean`` on PATH (3.1). Run from anywhere; it imports its neighbours
compare_wsclean.py and vs_wsclean.py.

1. The per-channel check. ``htclean simulate`` makes a small VLA D observation (1 h, 8 x 100
   kHz channels at 1.4195 GHz) of a 0.2 Jy continuum source and a 0.1 Jy HI line source
   (FWHM 3 channels). WSClean images each MS channel alone: ``-channels-out 8
   -no-mf-weighting -weight natural -niter 0 -make-psf -use-wgridder -no-small-inversion
   -wgridder-accuracy 1e-6``, the same size and cell. htclean's image of channel c is the
   one compare_wsclean.py makes (w-gridding at epsilon 1e-7, double precision, natural
   weighting, WSClean's polarization rule, an image-sized PSF) from channel c alone
   (``parts.part_psf_dirty(..., channels=(c, c + 1))``, normalised by that channel's weight
   sum, as WSClean normalises each output channel). Where ``htclean validate`` accepts
   ``image.mode: cube``, ``htclean run`` of the same MS as a cube with the same gridding and
   niter 0 is compared too, plane by plane (its NAME-dirty.fits and NAME-psf.fits cubes).
   Prints per plane max |diff| / peak of the dirty image and of the PSF (goal <= 1e-6), and
   the line source's dirty flux against the truth.
2. The timing. ``htclean simulate`` makes VLA C, 4 h at 108 s, 64 x 100 kHz channels (3.0M
   Stokes I visibilities) of the same sky, and WSClean images it as a 512² cube: ``-channels-out
   64 -no-mf-weighting``, Briggs 0, Hogbom, gain 0.1, mgain 0.8, auto-threshold 3, niter
   100000, ``-use-wgridder -wgridder-accuracy 1e-5`` (vs_wsclean.py's "equal" pairing), timed
   as vs_wsclean.timed does (wall, CPU of the process tree) with the peak RSS of the largest
   process from GNU time (``timed``). Then the htclean side:
   ``--htclean-cmd`` (a shell command; {ms}, {out}, {size}, {scale}, {nchan}, {threads} and
   {config} are filled in: {config} is the cube configuration this script writes) is timed
   the same way; without it, ``htclean run`` of that configuration (``image.mode: cube``) when
   ``htclean validate`` accepts it, else a line saying the cube mode is not in this htclean:
   of each ``--htclean`` executable in turn (main's and a branch's on the same MS), with
   ``execution.request_cpus`` ``--request-cpus`` (default 1: one thread per job, as many
   channel chains at once as there are cores) and ``--psf-oversize`` where given. Per run
   also the jobs, wall, CPU and peak memory of each job type (the job records) and the worst
   plane's max |diff| / WSClean's restored peak of the restored image and the residual, and
   of the model's flux. ``--remove-runs`` removes each run directory (~2 GB) once measured.
   Figures are printed, never asserted.

Measured with WSClean 3.1.0 on the shared 2-core machine (load 7-12 from other work, so the
walls are high; CPU s is the steadier figure). Per-channel check: all 8 planes within 5.6e-7
of the peak (dirty) and 5.0e-7 (PSF), for htclean's core and for `htclean run` with
image.mode cube (branch ``cube`` at a2e2ef5 with this branch's products, not yet on main);
the line source's dirty flux follows the truth (less the bright source's sidelobes).
Timing, 2.99M visibilities, 64 channels, 512², 4-5 major cycles per channel: ``wsclean
-channels-out 64`` wall 197 s and 239 s (two runs), CPU 81 s and 88 s, peak RSS 67 MiB;
`htclean run` (the same branch ``cube`` build, 64 channel loops, 3148 files) wall 174 s,
CPU 153 s, peak RSS 908 MiB of its largest process, at the same load. Later figures, main
against the branch ``cubefast`` (issue 20): README, "A 64-channel cube against WSClean".
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_wsclean  # noqa: E402  (a neighbour script)
import vs_wsclean  # noqa: E402

from htclean.imaging import fits  # noqa: E402
from htclean.imaging.ms import partials, parts  # noqa: E402

SKY = """\
- {name: cont, flux: 0.2, pixel_offset: [0, 0]}
- {name: hi, flux: 0, offset: [4amin, 3amin],
   line: {peak: 0.1, centre: 1419.85MHz, fwhm: 300kHz, rest_frequency: 1420.405752MHz}}
"""
CHECK = ["--configuration", "D", "--duration", "1h", "--integration", "120s", "--nchan", "8",
         "--freq", "1.4195GHz", "--chan-width", "100kHz", "--image-size", "256"]
TIMING = ["--configuration", "C", "--duration", "4h", "--integration", "108s", "--nchan", "64",
          "--freq", "1.4167GHz", "--chan-width", "100kHz", "--image-size", "512"]
NITER = 100000
REST = "1420.405752MHz"


def simulate(work: Path, name: str, options: list[str]) -> tuple[Path, dict]:
    """``htclean simulate`` of the SKY (kept in ``work``): the MS and its truth."""
    import json

    sky = work / "sky.yml"
    sky.write_text(SKY)
    ms = work / f"{name}.ms"
    truth = work / f"{name}.ms.sources.json"
    if not ((ms / "table.dat").is_file() and truth.is_file()):
        t0 = time.perf_counter()
        subprocess.run([vs_wsclean.htclean_exe(), "simulate", str(ms), "--force", "--sources",
                        str(sky), *options], check=True, stdout=subprocess.DEVNULL)
        print(f"[{name}] simulated {ms} in {time.perf_counter() - t0:.0f} s", flush=True)
    return ms, json.loads(truth.read_text())


def geometry(truth: dict) -> tuple[int, float]:
    """(size, cell rad) of the truth image."""
    return int(truth["image"]["size"]), float(truth["image"]["cell"])


def check(work: Path, threads: int) -> None:
    """Part 1 (module docstring)."""
    ms, truth = simulate(work, "check", CHECK)
    size, cell = geometry(truth)
    nchan = int(truth["observation"]["nchan"])
    out = work / "check-ws"
    cmd = ["wsclean", "-quiet", "-use-wgridder", "-no-small-inversion", "-wgridder-accuracy",
           "1e-6", "-size", str(size), str(size), "-scale", f"{cell / compare_wsclean.ASEC!r}asec",
           "-weight", "natural", "-niter", "0", "-make-psf", "-channels-out", str(nchan),
           "-no-mf-weighting", "-j", str(threads), "-data-column", "DATA", "-name", str(out),
           str(ms)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    t_ws = time.perf_counter() - t0
    settings = compare_wsclean.settings_for(ms, size, cell, threads, "wsclean")
    run = cube_run(work / "check-cube", ms, size, cell, threads)
    line = next(s for s in truth["sources"] if s.get("line"))
    x, y = round(line["x"]), round(line["y"])
    print(f"per-channel check: {nchan} channels of {truth['observation']['rows']} rows, "
          f"{size}² at {truth['image']['cell_asec']:.3f} asec; natural, w-gridding (htclean "
          f"epsilon 1e-7 double, WSClean accuracy 1e-6 float), {threads} threads")
    print("max abs diff / peak of each plane against WSClean's: htclean's core on the channel "
          "alone" + ("; and the planes of `htclean run` with image.mode cube (niter 0)"
                     if run else " (image.mode cube is not in this htclean)"))
    print("| channel | MHz | dirty | PSF | cube run dirty | cube run PSF | line: truth Jy | "
          "htclean dirty at the line's pixel Jy/beam |")
    print("|---|---|---|---|---|---|---|---|")
    t_ht, worst = 0.0, 0.0
    for c in range(nchan):
        t0 = time.perf_counter()
        ours = partials.normalise(parts.part_psf_dirty(ms, settings, channels=(c, c + 1)))
        t_ht += time.perf_counter() - t0
        theirs = {kind: fits.read_fits(f"{out}-{c:04d}-{kind}.fits")[0]
                  for kind in ("dirty", "psf")}
        diffs = []
        for planes in (ours, None if run is None else {k: v[c] for k, v in run.items()}):
            for kind, want in theirs.items():
                diffs.append(float("nan") if planes is None else
                             np.abs(planes[kind] - want).max() / np.abs(want).max())
        worst = max(worst, *(d for d in diffs if np.isfinite(d)))
        freq = line["line"]["frequencies"][c]
        print(f"| {c} | {freq / 1e6:.4f} | " + " | ".join(f"{d:.2e}" for d in diffs)
              + f" | {line['line']['channel_flux'][c]:.4f} | {ours['dirty'][y, x]:.4f} |")
    print(f"worst plane: {worst:.2e} of the peak (goal <= 1e-6); wall: WSClean {t_ws:.1f} s "
          f"for all {nchan} channels, htclean's core {t_ht:.1f} s (one read of the MS per "
          "channel)")


def cube_run(where: Path, ms: Path, size: int, cell: float, threads: int) -> dict | None:
    """``htclean run`` of ``ms`` with image.mode cube, niter 0 and the check's gridding:
    {"dirty": cube, "psf": cube} (nchan, ny, nx), or None when this htclean has no cube mode
    (``htclean validate`` refuses the configuration)."""
    from htclean.imaging import fitscube

    where.mkdir(parents=True, exist_ok=True)
    config = where / "cube.yml"
    config.write_text(
        f"data:\n  ms: {ms}\n  polarization_rule: wsclean\nimage:\n  mode: cube\n"
        f"  rest_frequency: {REST}\n  name: check\n  size: {size}\n"
        f"  scale: {cell / compare_wsclean.ASEC!r}asec\n  psf_oversize: 1.0\n"
        "weighting:\n  type: natural\ndeconvolution:\n  niter: 0\n"
        f"gridder:\n  threads: {threads}\n  device: cpu\n  epsilon: 1.0e-7\n"
        f"  precision: double\n  wgridding: true\nexecution:\n  request_cpus: {threads}\n")
    exe = vs_wsclean.htclean_exe()
    if subprocess.run([exe, "validate", str(config)], capture_output=True).returncode != 0:
        return None
    with (where / "htclean.log").open("w") as log:
        done = subprocess.run([exe, "run", str(config), "-o", str(where / "run"), "--force"],
                              stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"htclean run of the cube failed ({done.returncode}); see {log.name}")
    outputs = where / "run" / "outputs"
    return {kind: fitscube.read_cube(outputs / f"check-{kind}.fits").data
            for kind in ("dirty", "psf")}


def timed(cmd: list[str], log: Path) -> tuple[float, float, float]:
    """vs_wsclean.timed, with the peak RSS (MiB) from GNU time's %M where /usr/bin/time
    exists: os.wait4's ru_maxrss of a child forked from this Python process is at least this
    process's own RSS at the fork (measured: ``true`` under a 400 MB parent reads 409 MB)."""
    gnu_time = Path("/usr/bin/time")
    if not gnu_time.exists():
        return vs_wsclean.timed(cmd, log)
    peak_file = log.with_suffix(".maxrss")
    wall, _, cpu = vs_wsclean.timed([str(gnu_time), "-o", str(peak_file), "-f", "%M", *cmd],
                                    log)
    return wall, float(peak_file.read_text().split()[-1]) / 1024, cpu


def cube_config(ms: Path, truth: dict, request_cpus: int,
                psf_oversize: float | None = None) -> str:
    """htclean's configuration of the timing cube: vs_wsclean.py's CLEAN settings with
    ``image.mode: cube``, ``execution.request_cpus`` (the threads of every job; the engine
    runs as many jobs at once as there are cores) and ``image.psf_oversize`` where given."""
    text = vs_wsclean.htclean_config(ms, truth, request_cpus, None, None, 1e-5, psf_oversize)
    return text.replace("image:\n", f"image:\n  mode: cube\n  rest_frequency: {REST}\n", 1)


def timing(work: Path, threads: int, htclean_cmd: str | None, wsclean: bool = True,
           exes: list[str] | None = None, psf_oversize: float | None = None,
           keep_runs: bool = True, request_cpus: int = 1) -> None:
    """Part 2 (module docstring); ``wsclean`` False: the htclean side alone; ``exes``: the
    htclean executables to time one after the other on the same MS (default: this one's)."""
    ms, truth = simulate(work, "cube64", TIMING)
    size, _ = geometry(truth)
    obs = truth["observation"]
    nchan, nvis = int(obs["nchan"]), obs["rows"] * obs["nchan"]
    ws_dir = work / "cube64-ws"
    ws_dir.mkdir(exist_ok=True)
    scale = f"{truth['image']['cell_asec']:.6g}asec"
    cmd = ["wsclean", "-name", str(ws_dir / "wsclean"), "-size", str(size), str(size),
           "-scale", scale, "-data-column", "DATA", "-channels-out", str(nchan),
           "-no-mf-weighting", "-weight", "briggs", "0", "-niter", str(NITER), "-gain", "0.1",
           "-mgain", "0.8", "-auto-threshold", "3", "-use-wgridder", "-wgridder-accuracy",
           "1e-5", "-no-update-model-required", "-j", str(threads), str(ms)]
    wall = cpu = None
    if wsclean:
        print(f"[cube64] wsclean -channels-out {nchan} ... (load {vs_wsclean.load()})",
              flush=True)
        wall, peak, cpu = timed(cmd, ws_dir / "wsclean.log")
        print(f"WSClean -channels-out {nchan}: {nvis / 1e6:.2f}M visibilities, {size}², "
              f"Briggs 0, Hogbom to 3 sigma: wall {wall:.1f} s, CPU {cpu:.0f} s, peak memory "
              f"{peak:.0f} MiB, {threads} threads (load after {vs_wsclean.load()})")
    for n, exe in enumerate(exes or [vs_wsclean.htclean_exe()]):
        ht_dir = work / ("cube64-htclean" if n == 0 else f"cube64-htclean-{n}")
        ht_dir.mkdir(exist_ok=True)
        config = ht_dir / "cube.yml"
        config.write_text(cube_config(ms, truth, request_cpus, psf_oversize))
        command = htclean_cmd
        if command is None:
            valid = subprocess.run([exe, "validate", str(config)], capture_output=True,
                                   text=True)
            if valid.returncode != 0:
                why = valid.stderr.strip() or valid.stdout.strip()
                print(f"htclean: image.mode cube is not in {exe} ({why}); pass "
                      "--htclean-cmd or run again once it is")
                continue
            command = f"{shlex.quote(exe)} run {{config}} -o {{out}} --force"
        run = ht_dir / "run"
        command = command.format(ms=ms, out=run, size=size, scale=scale, nchan=nchan,
                                 threads=threads, config=config)
        print(f"[cube64] {command} ... (load {vs_wsclean.load()})", flush=True)
        h_wall, h_peak, h_cpu = timed(["bash", "-c", command], ht_dir / "htclean.log")
        ratio = (f"; ratio htclean / WSClean wall {h_wall / wall:.2f}x, CPU {h_cpu / cpu:.2f}x"
                 if wall else "")
        print(f"htclean: wall {h_wall:.1f} s, CPU {h_cpu:.0f} s, peak memory {h_peak:.0f} MiB "
              f"(largest process){ratio} (load after {vs_wsclean.load()})")
        job_types(run)
        if (ws_dir / f"wsclean-{nchan - 1:04d}-residual.fits").is_file():
            agreement(run, ws_dir, nchan)  # WSClean's planes, of this or an earlier run
        if not keep_runs:
            shutil.rmtree(run, ignore_errors=True)


def job_types(run: Path) -> None:
    """Per job type: jobs, wall s and CPU s summed, the largest peak memory (job records)."""
    import json

    rows: dict[str, list[float]] = {}
    for rec in vs_wsclean.records(run):
        kind = rec["job"].split("-")[1] if rec["job"].startswith("ch") else \
            rec["job"].split("-")[0]
        row = rows.setdefault(kind, [0, 0.0, 0.0, 0.0])
        row[0] += 1
        row[1] += rec["wall_s"]
        row[2] += rec["cpu_s"]
        row[3] = max(row[3], rec["max_rss_mb"])
    print("per job type (records): " + json.dumps(
        {k: f"{int(n)} jobs, {w:.1f} s, {c:.1f} CPU s, peak {m:.0f} MB" for k, (n, w, c, m)
         in sorted(rows.items())}))


def agreement(run: Path, ws_dir: Path, nchan: int) -> None:
    """The worst plane's max |htclean - WSClean| / the peak of WSClean's restored plane (as
    vs_wsclean.agreement), of the restored image and the residual, and the worst relative
    difference of the model's flux."""
    from htclean.imaging import fitscube

    outputs = run / "outputs"
    worst = {"image": 0.0, "residual": 0.0}
    for kind in worst:
        ours = fitscube.read_cube(outputs / f"bench-{kind}.fits").data
        for c in range(nchan):
            peak = float(np.abs(fits.read_fits(ws_dir / f"wsclean-{c:04d}-image.fits")[0]).max())
            theirs = fits.read_fits(ws_dir / f"wsclean-{c:04d}-{kind}.fits")[0]
            worst[kind] = max(worst[kind], float(np.abs(ours[c] - theirs).max()) / peak)
        del ours
    model = fitscube.read_cube(outputs / "bench-model.fits").data
    flux = 0.0
    for c in range(nchan):
        theirs = float(fits.read_fits(ws_dir / f"wsclean-{c:04d}-model.fits")[0].sum())
        flux = max(flux, abs(float(model[c].sum()) - theirs) / max(abs(theirs), 1e-30))
    print(f"against WSClean, worst plane, max |diff| / WSClean's restored peak: image "
          f"{worst['image']:.2e}, residual {worst['residual']:.2e}; model flux relative "
          f"difference {flux:.2e}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default="bench-vs-wsclean-cube", help="working directory (kept)")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--skip-check", action="store_true", help="no per-channel check")
    p.add_argument("--skip-timing", action="store_true", help="no 64-channel timing")
    p.add_argument("--no-wsclean", action="store_true",
                   help="timing: the htclean side alone (WSClean's figures from an earlier run)")
    p.add_argument("--htclean-cmd", help="shell command that images the timing MS as a cube "
                   "({ms} {out} {size} {scale} {nchan} {threads} {config})")
    p.add_argument("--htclean", nargs="+", metavar="EXE", help="timing: these htclean "
                   "executables one after the other on the same MS (e.g. main's, then a "
                   "branch's); default: the one beside this Python")
    p.add_argument("--psf-oversize", type=float, help="timing: htclean's image.psf_oversize "
                   "(default: htclean's own, 2; WSClean's PSF is the image's size, 1)")
    p.add_argument("--request-cpus", type=int, default=1,
                   help="timing: htclean's execution.request_cpus, each job's threads (default "
                   "1: a cube's channels run as chains of their own, as many at once as there "
                   "are cores; 2 gives every job both cores, as an mfs run)")
    p.add_argument("--remove-runs", action="store_true",
                   help="timing: remove each htclean run directory once measured (~2 GB)")
    args = p.parse_args(argv)
    if shutil.which("wsclean") is None:
        sys.exit("wsclean is not installed (apt-get install wsclean)")
    work = Path(args.dir).absolute()
    work.mkdir(parents=True, exist_ok=True)
    if not args.skip_check:
        check(work, args.threads)
    if not args.skip_timing:
        timing(work, args.threads, args.htclean_cmd, wsclean=not args.no_wsclean,
               exes=args.htclean, psf_oversize=args.psf_oversize,
               keep_runs=not args.remove_runs, request_cpus=args.request_cpus)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""vs_wsclean.py --wideband: WSClean's joined channels against htclean's MT-MFS, one sky.

    python benchmarks/vs_wsclean.py --wideband [--dir DIR] [--threads N] [--epsilon 1e-5]
                                    [--nterms 2] [--parts P] [--no-wsclean] [--tag TAG]
                                    [--threshold JY]

Simulates (`htclean simulate`, kept in DIR/wideband) two VLA D observations of one field, two
days apart: A 8 x 62.5 MHz from 1.0 GHz, B 8 x 62.5 MHz from 1.5 GHz, 4 h at 27 s each (3.0M
visibilities together), the VLA primary beam applied, 12 point sources at pixel centres with
spectral indices -1.5..+0.5 about 1.5 GHz out to 22' (SOURCES). Then, one after the other on
both MSs, 1024² x 8", natural weighting, Högbom, gain 0.1, mgain 0.8, auto-threshold 3 (or
both ``--threshold JY``: the same depth, since each imager's noise estimate of its own residual
decides where auto-threshold stops),
w-gridding at the same accuracy (``-use-wgridder -wgridder-accuracy EPSILON`` /
gridder.epsilon), ``-j THREADS`` / request_cpus THREADS:

- WSClean ``-join-channels -channels-out 4 -fit-spectral-pol NTERMS`` (no beam correction);
- ``htclean run`` with deconvolution.nterms NTERMS, image.primary_beam on, reference 1.5 GHz,
  partition.parts P (default 2: one per MS).

Prints, per imager, wall and CPU time (the process tree's), iterations, major cycles and peak
memory (vs_wsclean.timed), the load average before and after each; then per bright source
(apparent flux >= 20 mJy) the apparent flux at 1.5 GHz and spectral index from both with the
truth: WSClean's from a polynomial fit of degree NTERMS - 1 in x = (nu - 1.5 GHz) / 1.5 GHz to
its four channel images at the source's pixel (tt0, alpha = tt1 / tt0, as its model is),
htclean's from NAME-image-tt0 and NAME-alpha there (apparent, before the beam correction)
and NAME-alpha-pb (corrected); the truth is the band fit of the apparent spectrum over the 16
channels (what either imager can recover: ../shared/DESIGN.md, MT-MFS truth) and the
intrinsic spectral index.
"""

from __future__ import annotations

import argparse
import glob
import json
import re
from pathlib import Path

import numpy as np
import yaml
from vs_wsclean import htclean_exe, load, run_and_read, timed

SIZE, CELL_ASEC, REF = 1024, 8.0, 1.5e9
NCHAN, WIDTH = 8, 62.5e6
BANDS = (("wideband-a.ms", "2024-03-20", 1.0e9), ("wideband-b.ms", "2024-03-22", 1.5e9))
# (name, dx, dy pixels: x to the West; Jy at 1.5 GHz; spectral index)
SOURCES = (("S1", 0, 0, 1.0, -0.7), ("S2", 38, 22, 0.5, -1.5), ("S3", -45, 38, 0.3, 0.5),
           ("S4", -19, -56, 0.25, -1.0), ("S5", 60, -30, 0.15, 0.0),
           ("S6", 11, 71, 0.1, -0.3), ("S7", -75, -11, 0.08, 0.3), ("S8", -52, 60, 0.05, -1.2),
           ("S9", 90, 45, 0.2, -0.8), ("S10", -105, -75, 0.3, -0.5),
           ("S11", 120, -98, 0.4, -1.0), ("S12", -22, 163, 0.6, 0.2))
BRIGHT = 0.02  # Jy apparent at 1.5 GHz


def simulate(work: Path) -> tuple[list[Path], dict]:
    """Both MSs (simulated now, or kept from an earlier run) and the first one's truth."""
    import subprocess

    sky = work / "sources.yml"
    sky.write_text(yaml.safe_dump([{"name": n, "flux": f, "pixel_offset": [dx, dy],
                                    "spectral_index": a} for n, dx, dy, f, a in SOURCES]))
    out = []
    for k, (name, date, f0) in enumerate(BANDS):
        ms = work / name
        out.append(ms)
        if (ms / "table.dat").is_file() and Path(f"{ms}.sources.json").is_file():
            continue
        subprocess.run([htclean_exe(), "simulate", str(ms), "--force", "--configuration", "D",
                        "--date", date, "--duration", "4h", "--integration", "27s",
                        "--freq", f"{f0 + WIDTH / 2:.0f}Hz", "--nchan", str(NCHAN),
                        "--chan-width", f"{WIDTH:.0f}Hz", "--ref-freq", f"{REF:.0f}Hz",
                        "--image-size", str(SIZE), "--cell", f"{CELL_ASEC:g}asec",
                        "--primary-beam", "--sources", str(sky), "--seed", str(k + 1)],
                       check=True, stdout=subprocess.DEVNULL)
    return out, json.loads(Path(f"{out[0]}.sources.json").read_text())


def frequencies() -> np.ndarray:
    return np.concatenate([f0 + WIDTH * (np.arange(NCHAN) + 0.5) for _, _, f0 in BANDS])


def truth(doc: dict, nterms: int) -> list[dict]:
    """Per source: name, pixel (x, y), intrinsic alpha, and the band fit (tt0, alpha) of the
    apparent spectrum over both MSs' channels (a polynomial of degree nterms - 1)."""
    from htclean.imaging.simulation.sky import beam_attenuation

    freq = frequencies()
    out = []
    for s in doc["sources"]:
        spectrum = s["flux"] * (freq / REF) ** s["spectral_index"] * beam_attenuation(
            s["l"], s["m"], freq)
        tt0, tt1 = np.polynomial.polynomial.polyfit((freq - REF) / REF, spectrum, nterms - 1)[:2]
        out.append({"name": s["name"], "x": int(round(s["x"])), "y": int(round(s["y"])),
                    "alpha": s["spectral_index"], "tt0": tt0, "fit_alpha": tt1 / tt0})
    return out


def stop_args(threshold: float | None) -> list[str]:
    """WSClean's stopping rule: --threshold (Jy) where given, else -auto-threshold 3."""
    return ["-threshold", f"{threshold:g}"] if threshold else ["-auto-threshold", "3"]


def run_wsclean(ms: list[Path], work: Path, threads: int, epsilon: float, nterms: int,
                threshold: float | None = None) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    cmd = ["wsclean", "-name", str(work / "ws"), "-size", str(SIZE), str(SIZE),
           "-scale", f"{CELL_ASEC:g}asec", "-data-column", "DATA", "-weight", "natural",
           "-niter", "100000", "-gain", "0.1", "-mgain", "0.8", *stop_args(threshold),
           "-join-channels", "-channels-out", "4", "-fit-spectral-pol", str(nterms),
           "-use-wgridder", "-wgridder-accuracy", f"{epsilon:g}", "-no-update-model-required",
           "-j", str(threads), *map(str, ms)]
    wall, peak, cpu = timed(cmd, work / "wsclean.log")
    text = (work / "wsclean.log").read_text()
    cycles = re.search(r"(\d+) major iterations were performed", text)
    its = [int(i) for i in re.findall(r"Performed (\d+) iterations in total", text)]
    return {"wall": wall, "peak": peak, "cpu": cpu, "cycles": int(cycles.group(1)) if cycles
            else None, "iterations": max(its) if its else None}


def wsclean_sources(work: Path, sources: list[dict], nterms: int) -> list[tuple[float, float]]:
    """(tt0, alpha) per source from the four channel images (module docstring)."""
    from astropy.io import fits

    images, x = [], []
    for path in sorted(glob.glob(str(work / "ws-000[0-9]-image.fits"))):
        with fits.open(path) as hdul:
            images.append(hdul[0].data[0, 0])
            x.append((hdul[0].header["CRVAL3"] - REF) / REF)
    out = []
    for s in sources:
        tt0, tt1 = np.polynomial.polynomial.polyfit(
            x, [im[s["y"], s["x"]] for im in images], nterms - 1)[:2]
        out.append((tt0, tt1 / tt0))
    return out


def htclean_config(ms: list[Path], threads: int, nterms: int, parts: int | None,
                   epsilon: float, threshold: float | None = None) -> str:
    part = f"partition:\n  parts: {parts}\n" if parts else ""
    stop = f"  threshold: {threshold:g}Jy\n" if threshold else "  auto_threshold: 3.0\n"
    return (f"data:\n  ms: [{', '.join(str(m) for m in ms)}]\nimage:\n  name: bench\n"
            f"  size: {SIZE}\n  scale: {CELL_ASEC:g}asec\n  primary_beam: true\n"
            f"  reference_frequency: {REF:.0f}Hz\nweighting:\n  type: natural\n"
            f"deconvolution:\n  algorithm: hogbom\n  nterms: {nterms}\n  niter: 100000\n"
            f"  gain: 0.1\n  mgain: 0.8\n{stop}"
            f"gridder:\n  epsilon: {epsilon!r}\n{part}"
            f"execution:\n  request_cpus: {threads}\n  jobs: 0\n")


def run_htclean(ms: list[Path], work: Path, threads: int, nterms: int, parts: int | None,
                epsilon: float, threshold: float | None = None) -> dict:
    timing, recs, summary, run = run_and_read(
        htclean_config(ms, threads, nterms, parts, epsilon, threshold), work)
    decon = [r for r in recs if "deconvolve" in r["job"]]
    return {**timing, "cycles": summary["cycles"],
            "iterations": summary.get("iterations", summary.get("components")),
            "deconvolve_cpu": sum(r.get("cpu_s", 0.0) for r in decon), "outputs": run / "outputs"}


def residual_depth(path: Path) -> str:
    """'peak / robust sigma' (µJy) of a final residual (WSClean's MFS one, htclean's tt0):
    how deep each imager cleaned, whatever its stopping rule."""
    from astropy.io import fits

    if not path.is_file():
        return "-"
    with fits.open(path) as hdul:
        data = np.asarray(hdul[0].data[0, 0], np.float64)
    sigma = 1.4826 * np.median(np.abs(data - np.median(data)))
    return f"{np.max(np.abs(data)) * 1e6:.0f} / {sigma * 1e6:.0f} µJy"


def htclean_sources(outputs: Path, sources: list[dict]) -> list[tuple[float, float, float]]:
    """(tt0, alpha, alpha after the beam correction) per source."""
    from astropy.io import fits

    def pixels(name: str) -> list[float]:
        with fits.open(outputs / f"bench-{name}.fits") as hdul:
            data = hdul[0].data[0, 0]
        return [float(data[s["y"], s["x"]]) for s in sources]

    return list(zip(pixels("image-tt0"), pixels("alpha"), pixels("alpha-pb"), strict=True))


def main(args: argparse.Namespace, have_ws: bool) -> int:
    work = Path(args.dir).absolute() / "wideband"
    work.mkdir(parents=True, exist_ok=True)
    ms, doc = simulate(work)
    nvis = sum(json.loads(Path(f"{m}.sources.json").read_text())["observation"]["rows"]
               for m in ms) * NCHAN
    sources = truth(doc, args.nterms)
    ws = None
    ws_dir = work / ("wsclean" if args.nterms == 2 else f"wsclean-pol{args.nterms}")
    if have_ws:
        before = load()
        ws = run_wsclean(ms, ws_dir, args.threads, args.epsilon, args.nterms, args.threshold)
        ws["load"] = (before, load())
        print(f"[wideband] wsclean {ws['wall']:.1f} s (load {ws['load'][0]} -> {ws['load'][1]})",
              flush=True)
    before = load()
    where = work / ("htclean-" + args.tag if args.tag else "htclean")
    ht = run_htclean(ms, where, args.threads, args.nterms, args.parts or len(ms), args.epsilon,
                     args.threshold)
    ht["load"] = (before, load())
    print(f"[wideband] htclean {ht['wall']:.1f} s (load {ht['load'][0]} -> {ht['load'][1]})",
          flush=True)
    print(f"\nwideband: {nvis / 1e6:.2f}M visibilities (2 MSs, 1-2 GHz), {SIZE}² x "
          f"{CELL_ASEC:g}\", natural, gridding accuracy {args.epsilon:g}, {args.threads} "
          "threads")
    stop = f"threshold {args.threshold * 1e6:g} µJy" if args.threshold else "auto-threshold 3"
    print(f"stopping rule: {stop} (both)")
    print("| imager | wall | CPU | iterations | major cycles | peak memory | final residual "
          "peak / sigma | load before -> after |")
    print("|---|---|---|---|---|---|---|---|")
    if ws:
        print(f"| WSClean -join-channels -channels-out 4 -fit-spectral-pol {args.nterms} | "
              f"{ws['wall']:.1f} s "
              f"| {ws['cpu']:.0f} s | {ws['iterations']} | {ws['cycles']} | "
              f"{ws['peak'] / 1024:.2f} GiB | {residual_depth(ws_dir / 'ws-MFS-residual.fits')} "
              f"| {ws['load'][0]} -> {ws['load'][1]} |")
    ratio = f" ({ht['wall'] / ws['wall']:.2f}x, CPU {ht['cpu'] / ws['cpu']:.2f}x)" if ws else ""
    print(f"| htclean run, nterms {args.nterms}, primary beam ({ht['jobs']} jobs; deconvolve "
          f"{ht['deconvolve_cpu']:.1f} CPU s) | {ht['wall']:.1f} s{ratio} | {ht['cpu']:.0f} s | "
          f"{ht['iterations']} | {ht['cycles']} | {ht['peak'] / 1024:.2f} GiB (largest job "
          f"{ht['job_peak_name']}: {ht['job_peak'] / 1024:.2f}) | "
          f"{residual_depth(ht['outputs'] / 'bench-residual-tt0.fits')} | {ht['load'][0]} -> "
          f"{ht['load'][1]} |")
    have_images = (ws_dir / "ws-0000-image.fits").is_file()
    wsv = wsclean_sources(ws_dir, sources, args.nterms) if have_images \
        else [(np.nan, np.nan)] * len(sources)
    htv = htclean_sources(ht["outputs"], sources)
    print("\napparent flux at 1.5 GHz (Jy) and spectral index of the sources above "
          f"{BRIGHT * 1e3:g} mJy: truth (band fit; intrinsic alpha) / WSClean / htclean "
          "(alpha; after the beam correction)")
    print("| source | r (') | tt0 truth / WSClean / htclean | alpha truth / WSClean / htclean "
          "| alpha intrinsic / htclean pb-corrected |")
    print("|---|---|---|---|---|")
    for s, (wt, wa), (ht0, ha, hpb) in zip(sources, wsv, htv, strict=True):
        if s["tt0"] < BRIGHT:
            continue
        r = np.hypot(s["x"] - SIZE // 2, s["y"] - SIZE // 2) * CELL_ASEC / 60
        print(f"| {s['name']} | {r:.1f} | {s['tt0']:.4f} / {wt:.4f} / {ht0:.4f} | "
              f"{s['fit_alpha']:+.2f} / {wa:+.2f} / {ha:+.2f} | {s['alpha']:+.2f} / {hpb:+.2f} |")
    return 0

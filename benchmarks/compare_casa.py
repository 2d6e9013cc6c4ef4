"""htclean against CASA tclean and WSClean on Measurement Sets written by CASA itself.

    python benchmarks/compare_casa.py [--casa-python PATH] [--dir DIR] [--ms a,b,c]
                                      [--threads 2] [--no-workflow] [--force]

Needs a CASA Python (casatools + casatasks, and casadata for the antenna files and measures:
``python3 -m venv /tmp/casa && /tmp/casa/bin/pip install casatools casatasks casadata six``),
given by --casa-python or the environment variable HTCLEAN_CASA_PYTHON, and ``wsclean`` (3.1)
on PATH; it exits with a message saying which is missing. CASA runs with HOME set to DIR/casa
holding a ``.casa/config.py`` that points at casadata with automatic updates off (no network).

1. CASA's simulator (benchmarks/casa_side.py) writes three small VLA C-configuration MSs,
   unlike htclean's own simulator: ``a`` 3 GHz, 2 spectral windows x 8 channels, XX XY YX YY,
   field 0, DATA, no WEIGHT_SPECTRUM; ``b`` the same band in RR RL LR LL, a calibrator
   (field 0) and the target (field 1) in alternating scans, WEIGHT_SPECTRUM, antenna gains in
   DATA removed into CORRECTED_DATA by applycal (calwt: weights vary per baseline), flags of
   one antenna, edge channels, one baseline's channels, RR alone in one scan and RL alone in
   another; ``c`` 1.3-1.42 GHz, 1 window x 16 channels stored with descending frequencies
   (as lower-sideband windows are), XX YY, Dec -25, unflagged autocorrelations, flags of an
   antenna, a channel and a time range. Each has point and
   Gaussian components and noise.
2. For each MS and weighting (natural, Briggs 0): htclean's one-process reference
   (reference.image_ms) with polarization_rule ``tclean`` and no w-correction against tclean
   (gridder standard); with rule ``wsclean`` and w-gridding against WSClean
   (``-use-wgridder -no-small-inversion``) and tclean (gridder wproject). tclean runs twice
   (niter 0 for the dirty image, then a Hogbom CLEAN to the threshold), WSClean once (its
   CLEAN run writes the dirty image too). All clean with gain 0.1 to the same threshold
   (htclean and WSClean mgain 0.8). Printed: max |diff| / peak of the PSF and dirty image
   (all normalised to PSF peak 1, FITS orientation), the clean beams, the restored image at
   each component (max over the 3 x 3 pixels about its position), the residual rms, the
   CLEAN wall times and their ratios.
3. ``htclean run`` (the workflow, 3 parts along time and 3 along channel, Briggs 0, the
   default rule) against the reference imager with the same settings.

Known, documented differences (DESIGN.md, imaging/ms/msread.py, imaging/gridding/weighting.py):
tclean grids at LSRK frequencies in mfs mode (~1e-3 of the peak on these MSs; an LSRK-labelled
copy of the MS removes it); tclean's standard gridder (spheroidal) differs from ducc0's at
~1e-4; WSClean's Briggs density is a half-plane grid of the padded image, CASA's (htclean's) a
full grid of the image (~1e-2); tclean counts unflagged autocorrelations in the Briggs density
(MS c) while imaging only cross-correlations.

Measured (casatools/casatasks 6.7.0.31, WSClean 3.1.0, 2 shared cores), max |diff| / peak:
- htclean rule wsclean + w-gridding vs WSClean, natural: PSF 1.6e-7 / 2.3e-7 / 1.0e-6, dirty
  5.6e-7 / 2.0e-7 / 2.5e-6 (MS a / b / c; b with one-hand flags and calwt weights); Briggs 0:
  4.6e-3 to 1.0e-2 (the density grids).
- htclean rule tclean, no w vs tclean standard: PSF 7.4e-5 to 1.4e-4, dirty 6.4e-4 / 8.5e-4 /
  2.2e-3 natural; with the MS labelled LSRK 1.8e-4 / 3.4e-4 / 1.5e-4. Briggs 0: PSF 1.6e-4 /
  3.1e-4, dirty 1.1e-3 / 1.3e-3 (a / b); MS c 0.21 with its autocorrelations, PSF 3.4e-4 and
  dirty 4.0e-3 once they are flagged. Against tclean wproject (htclean rule tclean, w):
  PSF 6.4e-4 to 1.3e-3, dirty 7.2e-4 to 2.3e-3.
- Clean beams: htclean within 2 % (bmaj, bmin) and 1.4 deg (bpa) of tclean's; WSClean fits
  its own (a box of N x the theoretical beam): bmaj +12 % to -10 %, bpa up to 33 deg away,
  from the same PSF.
- Restored peaks of the point sources (truth 1.0, 0.8, 0.3, 0.7 Jy; bandwidth smearing takes
  ~1.5 % at b's offsets): htclean 0.9998 / 0.7857 / 0.2960 / 0.7000, tclean 0.9998 / 0.7855 /
  0.2960 / 0.7000, WSClean 1.0000 / 0.7872 / 0.2968 / 0.7002 (natural). Residual rms within 1 %
  of tclean's and WSClean's (MS a natural: 5.61e-5, 5.61e-5, 5.42e-5 Jy/beam) but on MS b
  natural (htclean's 8 % and 12 % lower; not investigated) and MS c Briggs (tclean's other
  weights).
- CLEAN wall time (one process, 256^2): htclean / tclean 0.13-0.33 (0.16-0.55 against
  tclean's own time without CASA's start-up), htclean / WSClean 0.58-1.0.
- htclean run, 3 parts, Briggs 0, vs the reference: along time PSF, dirty and restored image
  equal to 5e-8 of the peak, same iterations; along channel PSF and dirty to 1e-7, but on MS a
  and b (extended Gaussians) the Hogbom choices part after a few cycles (restored image 1.2e-4
  and 6.5e-4 of the peak, 2-3 more iterations): the parts' gridding differs at epsilon 1e-6,
  and with gridder.epsilon 1e-7 the channel run equals the reference. Wall 22-40 s against
  5-6 s for the reference (the engine's per-job cost on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from casa_observations import OBSERVATIONS, WEIGHTINGS  # noqa: E402

ASEC = math.pi / 180 / 3600
HERE = Path(__file__).resolve().parent


class Casa:
    """Runs benchmarks/casa_side.py with the CASA Python, HOME pointing at a CASA config."""

    def __init__(self, python: str, where: Path):
        self.python = python
        self.env = dict(os.environ)
        probe = subprocess.run([python, "-c", "import casatools, casatasks, casadata; "
                                "print(casadata.datapath)"], capture_output=True, text=True)
        if probe.returncode != 0:
            last = (probe.stderr.strip().splitlines() or ["?"])[-1]
            raise SystemExit(f"{python} cannot import casatools, casatasks and casadata ({last}); "
                             "pip install casatools casatasks casadata six into it")
        datapath = probe.stdout.strip().splitlines()[-1]
        home = where / "casa"
        (home / ".casa").mkdir(parents=True, exist_ok=True)
        (home / ".casa" / "config.py").write_text(
            f"datapath = [{datapath!r}]\nmeasurespath = {datapath!r}\n"
            "measures_auto_update = False\ndata_auto_update = False\nnologfile = True\n")
        self.env["HOME"] = str(home)

    def run(self, command: str, args: dict, json_path: Path) -> float:
        json_path.write_text(json.dumps(args))
        start = time.perf_counter()
        proc = subprocess.run([self.python, str(HERE / "casa_side.py"), command, str(json_path)],
                              capture_output=True, text=True, env=self.env,
                              cwd=json_path.parent)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise SystemExit(f"CASA {command} failed ({json_path}):\n{tail}")
        return time.perf_counter() - start


def find_casa_python(given: str | None) -> str:
    python = given or os.environ.get("HTCLEAN_CASA_PYTHON")
    if not python:
        raise SystemExit("no CASA Python: give --casa-python PATH or set HTCLEAN_CASA_PYTHON "
                         "(a venv with casatools, casatasks and casadata from PyPI)")
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise SystemExit(f"CASA Python {python} is not an executable file")
    return python


def raw_config(ms: Path, obs: dict, weighting: str, rule: str, wgridding: bool,
               threads: int, name: str) -> dict:
    """The htclean configuration (raw YAML form) of one comparison."""
    return {"data": {"ms": str(ms), "field": obs["field"], "column": obs["column"],
                     "polarization_rule": rule},
            "image": {"name": name, "size": obs["size"], "scale": f"{obs['cell']}asec"},
            "weighting": WEIGHTINGS[weighting],
            "gridder": {"wgridding": wgridding, "threads": threads, "device": "cpu",
                        "chunk_rows": 50000},
            "deconvolution": {"algorithm": "hogbom", "niter": 50000, "gain": 0.1, "mgain": 0.8,
                              "threshold": f"{obs['threshold']!r}Jy", "max_cycles": 30},
            "execution": {"request_memory": "2GB", "retries": 0}}


def htclean_psf_dirty(raw: dict) -> dict:
    """htclean's normalised PSF (cropped to the image) and dirty image, no deconvolution."""
    from htclean.imaging.geometry import crop_centre
    from htclean.imaging.ms import partials, parts
    from htclean.workflows import config

    settings = config.parse(config.resolve(raw))
    ms = raw["data"]["ms"]
    density = parts.part_density(ms, settings) if raw["weighting"]["type"] != "natural" else None
    partial = parts.part_psf_dirty(ms, settings, density)
    images = partials.normalise(partial)
    return {"psf": crop_centre(images["psf"], partial.geom.shape), "dirty": images["dirty"]}


def htclean_reference(raw: dict) -> tuple[object, float]:
    from htclean.imaging import reference
    from htclean.workflows import config

    settings = config.parse(config.resolve(raw))
    start = time.perf_counter()
    products = reference.image_ms(raw["data"]["ms"], settings)
    return products, time.perf_counter() - start


def run_wsclean(ms: Path, obs: dict, weighting: str, threads: int, name: Path) -> float:
    weight = ["-weight", "natural"] if weighting == "natural" else ["-weight", "briggs", "0"]
    cmd = ["wsclean", "-quiet", "-reorder", "-use-wgridder", "-no-small-inversion",
           "-wgridder-accuracy", "1e-6", "-size", str(obs["size"]), str(obs["size"]),
           "-scale", f"{obs['cell']}asec", *weight, "-niter", "50000", "-gain", "0.1",
           "-mgain", "0.8", "-threshold", f"{obs['threshold']!r}", "-make-psf",
           "-no-update-model-required", "-field", str(obs["field"]), "-data-column",
           obs["column"], "-j", str(threads), "-name", str(name), str(ms)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"wsclean failed: {' '.join(cmd)}\n{proc.stdout[-2000:]}"
                         f"{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def wsclean_products(name: Path) -> dict:
    from htclean.imaging import fits

    out = {}
    for kind in ("psf", "dirty", "residual", "image"):
        out[kind], _, header = fits.read_fits(f"{name}-{kind}.fits")
        if kind == "image":
            bpa = (float(header["BPA"]) + 90.0) % 180.0 - 90.0  # WSClean writes [0, 180)
            out["beam"] = (header["BMAJ"] * 3600, header["BMIN"] * 3600, bpa)
    return out


def tclean_products(casa: Casa, ms: Path, obs: dict, weighting: str, where: Path,
                    gridder: str, niter: int) -> dict:
    name = where / f"tc-{gridder}-{niter}"
    args = {"ms": str(ms), "name": str(name), "field": obs["field"],
            "column": "corrected" if obs["column"] == "CORRECTED_DATA" else "data",
            "size": obs["size"], "cell_asec": obs["cell"], "gridder": gridder,
            "weighting": weighting, "robust": 0.0, "niter": niter, "gain": 0.1,
            "threshold_jy": obs["threshold"] if niter else 0.0}
    wall = casa.run("tclean", args, Path(f"{name}.args.json"))
    summary = json.loads(Path(f"{name}.json").read_text())
    out = {"wall": wall, "wall_tclean": summary["wall_s"], "iterations": summary["iterations"],
           "beam": tuple(summary["beam_asec_deg"])}
    for kind in ("psf", "residual", "image"):
        path = Path(f"{name}-{kind}.npy")
        if path.exists():
            out[kind] = np.load(path)
    if niter == 0:
        out["dirty"] = out.pop("residual")
    return out


def rel(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b|."""
    return float(np.abs(a - b).max() / np.abs(b).max())


def component_pixels(obs_spec: dict, field: int, geom) -> list[tuple[int, int, str]]:
    """(x, y, label) of each component of the imaged field, nearest pixel."""
    out = []
    for c in obs_spec["fields"][field]["components"]:
        x, y = geom.radec_to_pixel(math.radians(c["ra_deg"]), math.radians(c["dec_deg"]))
        kind = "pt" if c["shape"] == "point" else "G"
        out.append((int(round(x)), int(round(y)), f"{c['flux']:g}{kind}"))
    return out


def peaks(image: np.ndarray, pixels: list[tuple[int, int, str]]) -> str:
    return " ".join(f"{image[y - 1:y + 2, x - 1:x + 2].max():.4f}" for x, y, _ in pixels)


def compare(key: str, ms: Path, casa: Casa, weighting: str, threads: int, root: Path) -> None:
    title, spec, obs = OBSERVATIONS[key]
    where = root / f"{key}-{weighting}"
    where.mkdir(parents=True, exist_ok=True)
    ht_t, t_ht_t = htclean_reference(raw_config(ms, obs, weighting, "tclean", False, threads,
                                                "ht"))
    ht_w, t_ht_w = htclean_reference(raw_config(ms, obs, weighting, "wsclean", True, threads,
                                                "ht"))
    tc0 = tclean_products(casa, ms, obs, weighting, where, "standard", 0)
    tcw = tclean_products(casa, ms, obs, weighting, where, "wproject", 0)
    ht_tw = htclean_psf_dirty(raw_config(ms, obs, weighting, "tclean", True, threads, "ht"))
    tcc = tclean_products(casa, ms, obs, weighting, where, "standard", 50000)
    t_ws = run_wsclean(ms, obs, weighting, threads, where / "ws")
    ws = wsclean_products(where / "ws")
    pix = component_pixels(spec, obs["field"], ht_t.geom)

    print(f"\nMS {key}: {title}; {weighting}; {obs['size']}^2 x {obs['cell']} asec, CLEAN to "
          f"{obs['threshold'] * 1e3:g} mJy")
    heads = ("PSF", "dirty", "bmaj\"", "bmin\"", "bpa", "res rms", "iter", "wall s")
    print(f"  {'':30s} {heads[0]:>8s} {heads[1]:>8s}  {heads[2]:>6s} {heads[3]:>6s} "
          f"{heads[4]:>6s}  restored at {' '.join(p[2] for p in pix)} (Jy/beam)  "
          f"{heads[5]:>8s} {heads[6]:>6s} {heads[7]:>7s}")

    def row(label: str, psf_d: float | None, dirty_d: float | None, beam, restored, residual,
            iters, wall) -> None:
        d = (f"{psf_d:8.1e} {dirty_d:8.1e}" if psf_d is not None else f"{'-':>8s} {'-':>8s}")
        print(f"  {label:30s} {d}  {beam[0]:6.2f} {beam[1]:6.2f} {beam[2]:6.1f}  "
              f"{peaks(restored, pix):>24s}  {residual.std():8.2e} {iters:>6} {wall:7.1f}")

    def hbeam(p) -> tuple[float, float, float]:
        return p.beam.bmaj / ASEC, p.beam.bmin / ASEC, p.beam.bpa

    row("htclean rule tclean, no w", None, None, hbeam(ht_t), ht_t.restored, ht_t.residual,
        ht_t.iterations, t_ht_t)
    row("  tclean standard", rel(ht_t.psf, tc0["psf"]), rel(ht_t.dirty, tc0["dirty"]),
        tcc["beam"], tcc["image"], tcc["residual"], tcc["iterations"], tcc["wall"])
    row("htclean rule wsclean, w", None, None, hbeam(ht_w), ht_w.restored, ht_w.residual,
        ht_w.iterations, t_ht_w)
    row("  WSClean wgridder", rel(ht_w.psf, ws["psf"]),
        rel(ht_w.dirty, ws["dirty"]), ws["beam"], ws["image"], ws["residual"], "-", t_ws)
    print(f"  {'tclean wproject (niter 0)':30s} {rel(ht_tw['psf'], tcw['psf']):8.1e} "
          f"{rel(ht_tw['dirty'], tcw['dirty']):8.1e}  {tcw['beam'][0]:6.2f} {tcw['beam'][1]:6.2f} "
          f"{tcw['beam'][2]:6.1f}  (vs htclean rule tclean, w; dirty only) {tcw['wall']:12.1f}")
    print(f"  tclean standard vs WSClean: PSF {rel(tc0['psf'], ws['psf']):.1e}, dirty "
          f"{rel(tc0['dirty'], ws['dirty']):.1e}; restored max|diff|/peak htclean-tclean "
          f"{rel(ht_t.restored, tcc['image']):.1e}, htclean-WSClean "
          f"{rel(ht_w.restored, ws['image']):.1e}")
    print(f"  CLEAN wall time ratios: htclean / tclean {t_ht_t / tcc['wall']:.2f} (tclean's "
          f"own {tcc['wall_tclean']:.1f} s without CASA start-up: "
          f"{t_ht_t / tcc['wall_tclean']:.2f}), htclean / WSClean {t_ht_w / t_ws:.2f}")


def lsrk_check(key: str, ms: Path, casa: Casa, threads: int, root: Path) -> None:
    """tclean on a copy of the MS whose spectral windows are labelled LSRK (no frame
    conversion in tclean) against htclean rule tclean: what remains without the LSRK shift."""
    import casacore.tables as ct

    _, _, obs = OBSERVATIONS[key]
    copy = root / f"{key}-lsrk.ms"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(ms, copy)
    with ct.table(str(copy / "SPECTRAL_WINDOW"), readonly=False, ack=False) as spw:
        spw.putcol("MEAS_FREQ_REF", np.ones(spw.nrows(), np.int32))  # 1 = LSRK
    where = root / f"{key}-lsrk"
    where.mkdir(exist_ok=True)
    ht, _ = htclean_reference({**raw_config(ms, obs, "natural", "tclean", False, threads, "ht"),
                               "deconvolution": {"niter": 0}})
    tc_topo = tclean_products(casa, ms, obs, "natural", where, "standard", 0)
    tc = tclean_products(casa, copy, obs, "natural", where, "standard", 0)
    print(f"\nMS {key} natural, htclean rule tclean vs tclean standard: dirty "
          f"{rel(ht.dirty, tc_topo['dirty']):.1e} (TOPO spectral windows, tclean grids at LSRK "
          f"frequencies), {rel(ht.dirty, tc['dirty']):.1e} (the same MS labelled LSRK); PSF "
          f"{rel(ht.psf, tc_topo['psf']):.1e} / {rel(ht.psf, tc['psf']):.1e}")
    shutil.rmtree(copy)


def autocorrelation_check(key: str, ms: Path, casa: Casa, threads: int, root: Path) -> None:
    """tclean Briggs on a copy of the MS with its autocorrelations flagged against htclean
    (which never uses them): tclean counts unflagged autocorrelations in its density grid."""
    import casacore.tables as ct

    _, _, obs = OBSERVATIONS[key]
    copy = root / f"{key}-noauto.ms"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(ms, copy)
    with ct.table(str(copy), readonly=False, ack=False) as t:
        auto = t.getcol("ANTENNA1") == t.getcol("ANTENNA2")
        if not auto.any():
            shutil.rmtree(copy)
            return
        flag = t.getcol("FLAG")
        flag[auto] = True
        t.putcol("FLAG", flag)
    where = root / f"{key}-noauto"
    where.mkdir(exist_ok=True)
    ht = htclean_psf_dirty(raw_config(ms, obs, "briggs", "tclean", False, threads, "ht"))
    tc_auto = tclean_products(casa, ms, obs, "briggs", where, "standard", 0)
    tc = tclean_products(casa, copy, obs, "briggs", where, "standard", 0)
    print(f"\nMS {key} Briggs 0, {int(auto.sum())} autocorrelation rows: htclean rule tclean vs "
          f"tclean standard: PSF {rel(ht['psf'], tc_auto['psf']):.1e}, dirty "
          f"{rel(ht['dirty'], tc_auto['dirty']):.1e} (autocorrelations unflagged: tclean weights "
          f"with them); PSF {rel(ht['psf'], tc['psf']):.1e}, dirty "
          f"{rel(ht['dirty'], tc['dirty']):.1e} (autocorrelations flagged)")
    shutil.rmtree(copy)


def workflow(key: str, ms: Path, threads: int, root: Path) -> None:
    """``htclean run`` with 3 parts along time and along channel against the reference."""
    from htclean.imaging import fits

    _, _, obs = OBSERVATIONS[key]
    raw = raw_config(ms, obs, "briggs", "available", True, 1, f"wf{key}")
    ref, t_ref = htclean_reference(raw)
    for axis in ("time", "channel"):
        where = root / f"{key}-run-{axis}"
        where.mkdir(parents=True, exist_ok=True)
        cfg = where / "config.yml"
        cfg.write_text(yaml.safe_dump({**raw, "partition": {"parts": 3, "axis": axis}}))
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "htclean.workflows.cli", "run", str(cfg),
                               "-o", str(where / "run"), "--force", "--jobs", str(threads)],
                              capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"htclean run {cfg} failed:\n{proc.stderr[-3000:]}")
        out = where / "run" / "outputs"
        diffs = []
        for kind, mine in (("psf", ref.psf), ("dirty", ref.dirty), ("residual", ref.residual),
                           ("image", ref.restored)):
            img, _, _ = fits.read_fits(out / f"wf{key}-{kind}.fits")
            diffs.append(f"{kind} {rel(img, mine):.1e}")
        summary = json.loads((out / f"wf{key}-summary.json").read_text())
        iters = summary["iterations"]
        print(f"MS {key}: htclean run, 3 parts along {axis:7s}, Briggs 0: vs the reference "
              f"{', '.join(diffs)} (max|diff|/peak); iterations {iters} vs {ref.iterations}; "
              f"wall {wall:.1f} s vs {t_ref:.1f} s ({wall / t_ref:.1f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--casa-python", help="CASA venv python (default: $HTCLEAN_CASA_PYTHON)")
    ap.add_argument("--dir", default="/tmp/htclean-casa", help="scratch directory")
    ap.add_argument("--ms", default="a,b,c", help="which observations (a, b, c)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-workflow", action="store_true", help="skip the htclean run part")
    ap.add_argument("--force", action="store_true", help="simulate the MSs again")
    args = ap.parse_args()
    python = find_casa_python(args.casa_python)
    if shutil.which("wsclean") is None:
        raise SystemExit("wsclean is not on PATH (Debian: apt-get install wsclean)")
    keys = [k.strip() for k in args.ms.split(",") if k.strip()]
    unknown = [k for k in keys if k not in OBSERVATIONS]
    if unknown:
        raise SystemExit(f"--ms: unknown observation(s) {unknown}; choose from a, b, c")
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    casa = Casa(python, root)
    version = subprocess.run(["wsclean", "-version"], capture_output=True, text=True).stdout
    print(next((ln.strip() for ln in version.splitlines() if "version" in ln.lower()), "?"))
    for key in keys:
        ms = root / f"{key}.ms"
        if args.force or not (ms / "table.dat").exists():
            spec = {**OBSERVATIONS[key][1], "ms": str(ms)}
            wall = casa.run("simulate", spec, root / f"{key}.sim.json")
            print(f"simulated {ms} with CASA in {wall:.1f} s")
    for key in keys:
        for weighting in WEIGHTINGS:
            compare(key, root / f"{key}.ms", casa, weighting, args.threads, root)
    for key in keys:
        lsrk_check(key, root / f"{key}.ms", casa, args.threads, root)
    for key in keys:
        autocorrelation_check(key, root / f"{key}.ms", casa, args.threads, root)
    if not args.no_workflow:
        print()
        for key in keys:
            workflow(key, root / f"{key}.ms", args.threads, root)


if __name__ == "__main__":
    main()

"""What htclean's grid step costs over calling ducc0 directly, and whether its memory is bounded.

    python benchmarks/grid_overhead.py [--dir DIR] [--size 1024] [--threads 2] [--repeat 5]
                                       [--chunk-rows 8000]

1. Simulates (once, kept in DIR) a VLA C-configuration part of ~3M Stokes I visibilities
   (47k rows x 64 channels, RR LL) and a quarter-size one.
2. Peak RSS (resource.getrusage, and VmHWM, in a fresh subprocess started before this one
   grows: a child inherits its parent's getrusage peak) of part_psf_dirty on the two parts
   with the same chunk_rows, and with one chunk holding the whole part.
3. Times, best of --repeat (wall and CPU of all threads; CPU is steadier on a shared machine):
   - ducc0 direct: the arrays in memory, vis2dirty twice (PSF and dirty), as a hand-written
     script would call it;
   - gridding.dirty twice on the same arrays (htclean's wrapper: shape checks, dtypes, transpose);
   - the whole psf-dirty grid step, parts.part_psf_dirty (chunked read, Stokes I, weights, two
     gridding calls per chunk), against a minimal script doing the same with casacore getcol
     in one piece and ducc0;
   - one gridding call on one small chunk: the fixed per-call cost that chunking multiplies.
Prints one line per figure.

Measured (2 shared cores, load ~7, 2 threads, 1024^2, epsilon 1e-6): wrapper -0.2% CPU;
part_psf_dirty in one chunk +6% CPU and wall over the minimal script; with 8000-row chunks
+94%, because every gridding call pays ~0.4 s CPU of FFTs over the w planes (keep chunks at
millions of visibilities); peak RSS 192 -> 203 MB for 0.76M -> 3.03M visibilities chunked,
191 -> 373 MB in one chunk.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from htclean.imaging.geometry import ImageGeometry
from htclean.imaging.gridding import gridding
from htclean.imaging.ms import msread, parts
from htclean.imaging.simulation import simulate

FLIPS = {"flip_u": False, "flip_v": True, "flip_w": False, "divide_by_n": False}


def make_part(path: Path, integration: float) -> Path:
    if not (path / "table.dat").exists():
        spec = simulate.SimulationSpec(configuration="C", nchan=64, chan_width=2e6,
                                       integration=integration, hour_angle_h=(-1.5, 1.5))
        simulate.simulate(str(path), spec, force=True)
    return path


def settings_for(ms: Path, size: int, cell: float, threads: int, chunk_rows: int) -> dict:
    from htclean.workflows import config

    raw = {"data": {"ms": str(ms)},
           "image": {"size": size, "scale": f"{cell * 206264.806:.6f}asec",
                     "psf_oversize": 1.0},  # the image-sized PSF the ducc0 script grids
           "gridder": {"threads": threads, "chunk_rows": chunk_rows, "device": "cpu",
                       "epsilon": 1e-6, "precision": "double"},
           "execution": {"request_memory": "16GB"}}
    return config.parse(config.resolve(raw))


def best(fns: list, repeat: int) -> list[tuple[float, float]]:
    """(best wall s, best CPU s of all threads) of each function, the functions interleaved so
    that load from other processes on a shared machine hits them alike. CPU time is the
    steadier figure when the machine is shared."""
    wall = [[] for _ in fns]
    cpu = [[] for _ in fns]
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return [(min(w), min(c)) for w, c in zip(wall, cpu, strict=True)]


def overhead(ours: tuple[float, float], theirs: tuple[float, float]) -> str:
    return (f"{ours[0]:.3f} s wall / {ours[1]:.3f} s CPU vs {theirs[0]:.3f} s / {theirs[1]:.3f} s"
            f": overhead {100 * (ours[0] / theirs[0] - 1):+.1f}% wall, "
            f"{100 * (ours[1] / theirs[1] - 1):+.1f}% CPU")


def direct_script(ms: Path, geom: ImageGeometry, threads: int) -> None:
    """A minimal hand-written grid step: getcol everything, Stokes I, two ducc0 calls."""
    import casacore.tables as ct
    from ducc0.wgridder.experimental import vis2dirty

    with ct.table(str(ms), ack=False) as t:
        uvw = t.getcol("UVW")
        data = t.getcol("DATA")
        flag = t.getcol("FLAG") | t.getcol("FLAG_ROW")[:, None, None]
        w = t.getcol("WEIGHT")
    with ct.table(str(ms / "SPECTRAL_WINDOW"), ack=False) as s:
        freq = s.getcell("CHAN_FREQ", 0)
    ok = ~flag
    weight = (w[:, None, :].astype(np.float64) * ok).sum(axis=-1)
    vis = (data * ok).sum(axis=-1) / np.maximum(ok.sum(axis=-1), 1)
    kw = dict(uvw=uvw, freq=freq, wgt=weight, npix_x=geom.nx, npix_y=geom.ny,
              pixsize_x=geom.cell, pixsize_y=geom.cell, epsilon=1e-6, do_wgridding=True,
              nthreads=threads, **FLIPS)
    vis2dirty(vis=np.ones_like(vis, np.complex128), **kw)
    vis2dirty(vis=vis.astype(np.complex128), **kw)


def _hwm_mb() -> float:
    """This process's own peak RSS (VmHWM, reset by exec) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_child(ms: str, size: int, cell: float, threads: int, chunk_rows: int) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    p = parts.part_psf_dirty(ms, settings_for(Path(ms), size, cell, threads, chunk_rows))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"visibilities": p.visibilities, "baseline_mb": before / 1024,
                      "peak_mb": peak / 1024, "hwm_mb": _hwm_mb()}))


def rss(ms: Path, size: int, cell: float, threads: int, chunk_rows: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--rss-child", str(ms), str(size), repr(cell),
                          str(threads), str(chunk_rows)], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--rss-child":
        ms, size, cell, threads, chunk_rows = sys.argv[2:7]
        rss_child(ms, int(size), float(cell), int(threads), int(chunk_rows))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="/tmp/htclean-bench")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=min(2, len(os.sched_getaffinity(0))))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--chunk-rows", type=int, default=8000)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    big = make_part(d / "part-3m.ms", 80.0)
    small = make_part(d / "part-0.75m.ms", 320.0)
    cell = 2.9 / 206264.806
    # memory first, while this process is small: a child inherits its parent's peak RSS
    for label, rows in (("chunked", args.chunk_rows), ("one chunk", 10**9)):
        a = rss(small, args.size, cell, args.threads, rows)
        b = rss(big, args.size, cell, args.threads, rows)
        print(f"peak RSS (getrusage; VmHWM), {label:9s}: {a['visibilities'] / 1e6:.2f}M vis "
              f"{a['peak_mb']:.0f}; {a['hwm_mb']:.0f} MB, {b['visibilities'] / 1e6:.2f}M vis "
              f"{b['peak_mb']:.0f}; {b['hwm_mb']:.0f} MB "
              f"(growth {b['peak_mb'] - a['peak_mb']:+.0f} MB for "
              f"{(b['visibilities'] - a['visibilities']) / 1e6:.2f}M more visibilities)")

    settings = settings_for(big, args.size, cell, args.threads, 10**9)
    geom = ImageGeometry.from_settings(settings, str(big))
    params = gridding.GridParams.from_settings(settings)
    (chunk,) = list(msread.read_chunks(big, chunk_rows=10**9))
    nvis = int(np.count_nonzero(chunk.weight))
    print(f"part: {big.name}, {chunk.vis.shape[0]} rows x {chunk.vis.shape[1]} channels = "
          f"{nvis / 1e6:.2f}M Stokes I visibilities; image {args.size}^2 at 2.9 asec; "
          f"epsilon 1e-6, w-gridding, double, {args.threads} threads")

    from ducc0.wgridder.experimental import vis2dirty

    ones = np.ones_like(chunk.vis)
    kw = dict(uvw=chunk.uvw, freq=chunk.freq, wgt=chunk.weight, npix_x=geom.nx, npix_y=geom.ny,
              pixsize_x=geom.cell, pixsize_y=geom.cell, epsilon=1e-6, do_wgridding=True,
              nthreads=args.threads, **FLIPS)
    t_ducc, t_wrap = best([
        lambda: (vis2dirty(vis=ones, **kw), vis2dirty(vis=chunk.vis, **kw)),
        lambda: (gridding.dirty(chunk.uvw, chunk.freq, ones, chunk.weight, geom, params),
                 gridding.dirty(chunk.uvw, chunk.freq, chunk.vis, chunk.weight, geom, params))],
        args.repeat)
    print(f"gridding.dirty x 2 (PSF + dirty) vs ducc0 vis2dirty x 2 on the same arrays: "
          f"{overhead(t_wrap, t_ducc)}")
    n = args.chunk_rows
    ((t_one, c_one),) = best([lambda: gridding.dirty(chunk.uvw[:n], chunk.freq, chunk.vis[:n],
                                                     chunk.weight[:n], geom, params)],
                             args.repeat)
    print(f"one gridding call on a {n}-row chunk ({n * len(chunk.freq) / 1e6:.2f}M vis): "
          f"{t_one:.3f} s wall / {c_one:.3f} s CPU (the per-call FFT and w-plane cost)")

    whole = settings_for(big, args.size, cell, args.threads, 10**9)
    chunked = settings_for(big, args.size, cell, args.threads, args.chunk_rows)
    t_script, t_whole, t_chunked = best([
        lambda: direct_script(big, geom, args.threads),
        lambda: parts.part_psf_dirty(big, whole),
        lambda: parts.part_psf_dirty(big, chunked)], args.repeat)
    for label, t_step in (("one chunk", t_whole), (f"chunk_rows {args.chunk_rows}", t_chunked)):
        print(f"part_psf_dirty ({label}) vs a minimal getcol + Stokes I + ducc0 script: "
              f"{overhead(t_step, t_script)}")



if __name__ == "__main__":
    main()

"""Reproducible gridding against ducc0's own threads: one part file's dirty image gridded
as ``htclean.imaging.gridding.gridding`` does it (the plan's thread count of |w| streams, each
on one ducc0 thread, summed in order) and as one ducc0 call on that many threads (faster by a
few per cent at most, and not bit-reproducible), alternately, REPEATS times each; wall seconds,
and whether each way repeats its own bits.

    python benchmarks/stream_gridding.py PART.vis.npz [--threads 2] [--repeats 2]
        [--size 4096] [--cell-asec 0.91] [--epsilon 1e-5]

PART: a part file of a finished run (``run/outputs/*-part-000.vis.npz``; the 50m one of
``benchmarks/vs_wsclean.py`` is what the README quotes).
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from htclean.imaging.geometry import ImageGeometry
from htclean.imaging.gridding import gridding
from htclean.imaging.ms import partfile


def one_call(uvw, freq, vis, wgt, geom: ImageGeometry, params: gridding.GridParams):
    from ducc0.wgridder.experimental import vis2dirty

    return vis2dirty(uvw=uvw, freq=freq, vis=vis, wgt=wgt, npix_x=geom.nx, npix_y=geom.ny,
                     pixsize_x=geom.cell, pixsize_y=geom.cell, epsilon=params.epsilon,
                     do_wgridding=True, nthreads=params.threads, flip_v=True,
                     divide_by_n=False).T


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--cell-asec", type=float, default=0.91)
    p.add_argument("--epsilon", type=float, default=1e-5)
    args = p.parse_args(argv)
    chunks = list(partfile.read_chunks(args.part, partfile.read_header(args.part)))
    uvw = np.concatenate([c.uvw for c in chunks])
    freq = chunks[0].freq
    vis = np.concatenate([c.vis for c in chunks]).astype(np.complex64)
    wgt = np.concatenate([c.weight for c in chunks]).astype(np.float32)
    del chunks
    geom = ImageGeometry(nx=args.size, ny=args.size, cell=math.radians(args.cell_asec / 3600),
                         ra=0.0, dec=0.0, freq=float(freq.mean()))
    params = gridding.GridParams(epsilon=args.epsilon, precision="single",
                                 threads=args.threads, device="cpu")
    ways = {"streams": lambda: gridding.dirty(uvw, freq, vis, wgt, geom, params),
            "one call": lambda: one_call(uvw, freq, vis, wgt, geom, params)}
    times: dict[str, list[float]] = {k: [] for k in ways}
    images: dict[str, list[np.ndarray]] = {k: [] for k in ways}
    for _ in range(args.repeats):
        for name, grid in ways.items():
            t0 = time.perf_counter()
            images[name].append(np.array(grid()))
            times[name].append(time.perf_counter() - t0)
    print(f"{len(uvw)} rows x {len(freq)} channels, {args.size}², {args.threads} threads")
    for name in ways:
        same = all(np.array_equal(images[name][0], im) for im in images[name][1:])
        print(f"{name:9s} " + " ".join(f"{t:.2f}" for t in times[name])
              + f" s; repeats its bits: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""htclean-cube: stack a cube's output channels into the cube files.

    htclean-cube --config R-config.yml --record R-cube.record.json --name NAME
                 --channels NAME-0000 NAME-0001 ... --frequencies F0 F1 ... --width HZ
                 --specsys LSRK

Each output channel was imaged and restored by its own loop (workflows/cube.py): it left
``PREFIX-{image,model,residual,psf,dirty}.fits`` and ``PREFIX-summary.json``. This job
writes the cubes NAME-image.fits, -model, -residual, -psf, -dirty (imaging/fitscube.py:
RA, DEC, FREQ, STOKES; FREQ from --frequencies in the frame --specsys; RESTFRQ from
``image.rest_frequency``), each channel's clean beam in a BEAMS table, or with
``restore.common_beam`` one common beam in the header and NAME-image.fits restored with it
(imaging/spectral/stack.py), and NAME-summary.json. A channel given as ``-`` had no
unflagged data: its planes are NaN (as the products module reads a flagged plane) and its
BEAMS row zeros. One cube is held at a time by the job process. Where htclean has
imaging/spectral/products.py, it also writes the moment maps (NAME-mom0.fits,
NAME-mom1.fits, with a rest frequency) and NAME-channels.png through it, and the summary
with its ``cube_summary``: the image cube is written first, then the moments and the
preview are made from it in forked children (executables/forked.py), each holding the image
cube, while the job stacks the other four cubes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from htclean.executables.record import Job, job_parser, run_job
from htclean.imaging.errors import InputError

PROG = "htclean-cube"


def build_parser() -> argparse.ArgumentParser:
    parser = job_parser(PROG, __doc__)
    parser.add_argument("--name", required=True, help="product prefix: NAME-image.fits, ...")
    parser.add_argument("--channels", required=True, nargs="+", metavar="PREFIX",
                        help="each output channel's product prefix, in frequency-axis order; "
                        "'-' for a channel with no data (a blank plane, no beam)")
    parser.add_argument("--frequencies", required=True, nargs="+", type=float, metavar="HZ",
                        help="each output channel's frequency")
    parser.add_argument("--width", required=True, type=float, metavar="HZ",
                        help="an output channel's width (the axis step of a 1-channel cube)")
    parser.add_argument("--specsys", required=True, help="FITS SPECSYS of the frequencies")
    return parser


def products_module() -> Any:
    """imaging/spectral/products.py (names.PRODUCTS_MODULE) where this htclean has it, else
    None: the cube job then writes the cubes and its own summary only."""
    from importlib.util import find_spec

    from htclean.workflows.names import PRODUCTS_MODULE

    if find_spec(PRODUCTS_MODULE) is None:
        return None
    from importlib import import_module

    return import_module(PRODUCTS_MODULE)


BLANK = "-"  # an output channel with no data
BLANK_SUMMARY = {"blank": True, "beam": None, "peak_jy": None, "noise_jy": None, "cycles": 0,
                 "iterations": 0}


def channel_header(job: Job, prefix: str) -> tuple[Any, Any]:
    """(geometry, clean beam or None) of one output channel, from its restored image."""
    from htclean.imaging.beams.beam import Beam
    from htclean.imaging.fits import read_fits

    _, geom, header = read_fits(job.read(f"{prefix}-image.fits", "--channels"), np.float32)
    beam = None
    if header.get("BMAJ", 0) > 0:
        beam = Beam(np.radians(header["BMAJ"]), np.radians(header["BMIN"]),
                    float(header["BPA"]))
    return geom, beam


def plane(job: Job, prefix: str, kind: str, shape: tuple[int, int]) -> np.ndarray:
    """One channel's ``kind`` image (ny, nx) float32; NaN for a blank channel."""
    from htclean.imaging.fits import read_fits

    if prefix == BLANK:
        return np.full(shape, np.nan, np.float32)
    return read_fits(job.read(f"{prefix}-{kind}.fits", "--channels"), np.float32)[0]


def work(args: argparse.Namespace, job: Job) -> None:
    from htclean.executables.forked import run_forked
    from htclean.imaging.cpus import planned_threads
    from htclean.imaging.spectral.stack import common_beam
    from htclean.workflows.names import CUBE_KINDS

    settings = job.settings
    if len(args.channels) != len(args.frequencies):
        raise InputError(f"--frequencies: {len(args.frequencies)} for "
                         f"{len(args.channels)} channels")
    headers = {p: channel_header(job, p) for p in args.channels if p != BLANK}
    if not headers:
        raise InputError("--channels: every channel is blank")
    geom = next(iter(headers.values()))[0]
    for prefix, (g, _) in headers.items():
        if g.shape != geom.shape or g.cell != geom.cell or (g.ra, g.dec) != (geom.ra, geom.dec):
            raise InputError(f"--channels: {prefix}'s pixel grid differs from the first "
                             "channel's")
    beams = [headers[p][1] if p in headers else None for p in args.channels]
    beam: Any = common_beam(beams) if settings["restore"]["common_beam"] else beams
    stack = Stacker(job, args, geom, beam, planned_threads(settings))
    rest, products = settings["image"]["rest_frequency"], products_module()
    stack(CUBE_KINDS[0])  # the image cube first: the moments and the preview read it
    side = side_products(products, args.name, rest)
    # the other cubes here, the moments and the preview in forked children meanwhile
    run_forked([lambda: [stack(kind) for kind in CUBE_KINDS[1:]], *(f for f, _ in side)])
    for _, paths in side:
        for path in paths:
            job.output(path)
    per_channel = []
    for i, (f, p) in enumerate(zip(args.frequencies, args.channels, strict=True)):
        own = BLANK_SUMMARY if p == BLANK else \
            json.loads(job.read(f"{p}-summary.json", "--channels").read_text())
        per_channel.append({"channel": i, "frequency_hz": f, **own,
                            "velocity_kms": velocity(f, rest)})
    summary = Path(f"{args.name}-summary.json")
    if products is None:
        job.write_json(summary, {"name": args.name, "mode": "cube", "channels": per_channel})
    else:
        job.output(products.cube_summary(per_channel, summary, rest_freq=rest))


class Stacker:
    """Writes one cube (``NAME-KIND.fits``) at a time from the channels' planes."""

    def __init__(self, job: Job, args: argparse.Namespace, geom: Any, beam: Any,
                 threads: int) -> None:
        self.job, self.args, self.geom, self.beam, self.threads = job, args, geom, beam, threads

    def __call__(self, kind: str) -> None:
        from htclean.imaging.fitscube import write_cube
        from htclean.imaging.spectral.stack import restore_plane

        job, args, geom = self.job, self.args, self.geom
        settings = job.settings
        cube = np.empty((len(args.channels), *geom.shape), np.float32)
        for i, p in enumerate(args.channels):
            if kind == "image" and settings["restore"]["common_beam"] and p != BLANK:
                cube[i] = restore_plane(plane(job, p, "model", geom.shape),
                                        plane(job, p, "residual", geom.shape), self.beam,
                                        geom.cell, threads=self.threads)
            else:
                cube[i] = plane(job, p, kind, geom.shape)
        path = Path(f"{args.name}-{kind}.fits")
        write_cube(path, cube, geom, np.asarray(args.frequencies), specsys=args.specsys,
                   rest_freq=settings["image"]["rest_frequency"], beams=self.beam,
                   width=args.width, bunit="Jy/pixel" if kind == "model" else "Jy/beam",
                   history=[f"htclean-cube: {len(args.channels)} channels, each cleaned on "
                            "its own"])
        job.output(path)


def side_products(products: Any, name: str, rest: float | None
                  ) -> list[tuple[Callable[[], None], list[Path]]]:
    """The pieces that read the image cube once it is written, each with the paths it
    writes: the moment maps (with a rest frequency) and the channel preview, where
    products.py exists (none otherwise)."""
    if products is None:
        return []
    cube = Path(f"{name}-image.fits")
    png = Path(f"{name}-channels.png")
    out: list[tuple[Callable[[], None], list[Path]]] = []
    if rest:
        moments = [Path(f"{name}-mom0.fits"), Path(f"{name}-mom1.fits")]
        out.append((lambda: check_paths(products.write_moments(cube, Path("."), name),
                                        moments), moments))
    out.append((lambda: check_paths([products.channel_preview(cube, png)], [png]), [png]))
    return out


def check_paths(written: list[Path], expected: list[Path]) -> None:
    """Raise when a product was written under another name than the one declared."""
    if [Path(p).name for p in written] != [p.name for p in expected]:
        raise RuntimeError(f"wrote {[str(p) for p in written]}, expected "
                           f"{[str(p) for p in expected]}")


def velocity(frequency: float, rest: float | None) -> float | None:
    """Radio velocity (km/s) of ``frequency`` for the rest frequency ``rest`` (None without)."""
    from htclean.imaging.spectral.moments import radio_velocity

    return None if rest is None else float(radio_velocity(np.array([frequency]), rest)[0])


def main(argv: list[str] | None = None) -> int:
    return run_job(PROG, build_parser(), work, argv)


if __name__ == "__main__":
    sys.exit(main())

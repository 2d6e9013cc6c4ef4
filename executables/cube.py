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
unflagged data: its planes are zeros and its BEAMS row zeros. Where htclean has
imaging/spectral/products.py, it also writes the moment maps (NAME-mom0.fits,
NAME-mom1.fits, with a rest frequency) and NAME-channels.png through it, and the summary
with its ``cube_summary``.
"""

from __future__ import annotations

import argparse
import json
import sys
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


def blank_channel(planes: dict[str, Any], geom: Any) -> tuple[dict[str, Any], Any, dict]:
    """A channel with no data: zero planes, no beam."""
    return ({k: np.zeros_like(v) for k, v in planes.items()}, geom,
            {"blank": True, "beam_object": None})


def read_channel(job: Job, prefix: str) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """({kind: (ny, nx) float32}, geometry, summary) of one output channel."""
    from htclean.imaging.beams.beam import Beam
    from htclean.imaging.fits import read_fits
    from htclean.workflows.names import CUBE_KINDS

    planes, geom, beam = {}, None, None
    for kind in CUBE_KINDS:
        data, g, header = read_fits(job.read(f"{prefix}-{kind}.fits", "--channels"),
                                    np.float32)
        planes[kind] = data
        if kind == "image":
            geom = g
            if "BMAJ" in header and header["BMAJ"] > 0:
                beam = Beam(np.radians(header["BMAJ"]), np.radians(header["BMIN"]),
                            float(header["BPA"]))
    summary = json.loads(job.read(f"{prefix}-summary.json", "--channels").read_text())
    return planes, geom, {**summary, "beam_object": beam}


def work(args: argparse.Namespace, job: Job) -> None:
    from htclean.imaging.cpus import planned_threads
    from htclean.imaging.fitscube import write_cube
    from htclean.imaging.spectral.stack import common_beam, restore_plane
    from htclean.workflows.names import CUBE_KINDS

    settings = job.settings
    if len(args.channels) != len(args.frequencies):
        raise InputError(f"--frequencies: {len(args.frequencies)} for "
                         f"{len(args.channels)} channels")
    imaged = {p: read_channel(job, p) for p in args.channels if p != BLANK}
    if not imaged:
        raise InputError("--channels: every channel is blank")
    first = next(iter(imaged.values()))
    geom = first[1]
    channels = [imaged.get(p) or blank_channel(first[0], geom) for p in args.channels]
    for (_, g, _), prefix in zip(channels, args.channels, strict=True):
        if g.shape != geom.shape or g.cell != geom.cell or (g.ra, g.dec) != (geom.ra, geom.dec):
            raise InputError(f"--channels: {prefix}'s pixel grid differs from "
                             f"{args.channels[0]}'s")
    beams = [s.pop("beam_object") for _, _, s in channels]
    cubes = {kind: np.stack([c[0][kind] for c in channels]) for kind in CUBE_KINDS}
    beam: Any = beams
    if settings["restore"]["common_beam"]:
        beam = common_beam(beams)
        threads = planned_threads(settings)
        cubes["image"] = np.stack([restore_plane(c["model"], c["residual"], beam, geom.cell,
                                                 threads=threads) for c, _, _ in channels])
    rest = settings["image"]["rest_frequency"]
    for kind in CUBE_KINDS:
        path = Path(f"{args.name}-{kind}.fits")
        write_cube(path, cubes[kind], geom, np.asarray(args.frequencies), specsys=args.specsys,
                   rest_freq=rest, beams=beam, width=args.width,
                   bunit="Jy/pixel" if kind == "model" else "Jy/beam",
                   history=[f"htclean-cube: {len(channels)} channels, each cleaned on its own"])
        job.output(path)
    per_channel = [{"channel": i, "frequency_hz": f, **s}
                   for i, (f, (_, _, s)) in enumerate(zip(args.frequencies, channels,
                                                          strict=True))]
    write_products(job, args.name, rest, per_channel)


def write_products(job: Job, name: str, rest: float | None, per_channel: list[dict]) -> None:
    """NAME-summary.json, and the moments and channel preview where products.py exists."""
    products = products_module()
    summary = Path(f"{name}-summary.json")
    if products is None:
        job.write_json(summary, {"name": name, "mode": "cube", "channels": per_channel})
    else:
        cube = Path(f"{name}-image.fits")
        if rest:
            for path in products.write_moments(cube, Path("."), name):
                job.output(path)
        job.output(products.channel_preview(cube, Path(f"{name}-channels.png")))
        products.cube_summary(per_channel, summary)
        job.output(summary)


def main(argv: list[str] | None = None) -> int:
    return run_job(PROG, build_parser(), work, argv)


if __name__ == "__main__":
    sys.exit(main())

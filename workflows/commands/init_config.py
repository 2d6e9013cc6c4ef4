"""Write a configuration with every key commented, ready to edit.

Refuses to overwrite an existing file unless --force is given.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from htclean.imaging.errors import InputError

HELP = "write a commented configuration to start from"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", default="htclean.yml",
                        help="where to write it (default htclean.yml; '-' for standard output)")
    parser.add_argument("--ms", help="fill in data.ms with this Measurement Set, and the image "
                        "size and cell that `htclean inspect` suggests for it")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")


def suggested_geometry(ms: Path) -> dict:
    """image.size and image.scale that `htclean inspect` suggests for ``ms`` (none if the MS
    is not readable here: validate then says why)."""
    from htclean.imaging import units
    from htclean.imaging.ms import msinfo

    if not ms.exists():
        return {}
    try:
        info = msinfo.describe(ms)
    except InputError:
        return {}
    cell = info.suggested_cell / units.ANGLE_UNITS["asec"]
    return {"image.size": int(info.suggested_size), "image.scale": f"{cell:.3g}asec"}


def run(args: argparse.Namespace) -> int:
    from htclean.workflows import config

    values = {}
    if args.ms:
        values = {"data.ms": args.ms, **suggested_geometry(Path(args.ms))}
    text = config.template(values)
    if args.file == "-":
        sys.stdout.write(text)
        return 0
    path = Path(args.file)
    if path.exists() and not args.force:
        raise InputError(f"{path} exists; use --force to overwrite it")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    print(f"wrote {path}; edit it, then: htclean validate {path}")
    return 0

"""htclean-partition: split a Measurement Set into parts, one part file per grid job.

    htclean-partition --config R-config.yml --record R-partition.record.json
                      --ms OBS.ms.tar --axis time|baseline|channel
                      --outputs R-part-000.vis.npz R-part-001.vis.npz ...
                      --manifest R-partitions.json

Only the rows the imaging reads go into the parts: those of ``data.field`` (and of
``data.spw`` when set), cross-correlations only (msparts.imaged_rows). time: contiguous time
ranges of about equal rows (a timestamp is never split); baseline: groups of whole baselines of
about equal rows; channel: contiguous channel ranges, every part keeping all those rows. Each
part is written once as a part file (imaging/partfile.py: Stokes I complex64 by
``data.polarization_rule``, weights float32 with the flags folded in, uvw phased to the image
centre, channel frequencies), ``gridder.chunk_rows`` rows at a time; every cycle reads it as it
is. The manifest lists the rows selected and, per part: file, rows, channels, channel range,
time range (MJD s) and bytes. Every selected row and every channel is in exactly one part.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from htclean.executables import msparts
from htclean.executables.record import Job, job_parser, run_job
from htclean.imaging.errors import InputError

PROG = "htclean-partition"


def build_parser() -> argparse.ArgumentParser:
    parser = job_parser(PROG, __doc__)
    parser.add_argument("--ms", required=True, metavar="MS.tar",
                        help="the Measurement Set: a tar of one MS, or an MS directory")
    parser.add_argument("--axis", choices=("time", "baseline", "channel"),
                        help="split along this axis (default: partition.axis of the config)")
    parser.add_argument("--outputs", required=True, nargs="+", metavar="PART.vis.npz",
                        help="one part file per part, in order; their number is the number of "
                        "parts")
    parser.add_argument("--manifest", required=True, metavar="R-partitions.json",
                        help="where to write the list of parts (JSON)")
    return parser


def _table_shape(ms: Path) -> tuple[int, int]:
    """(rows, channels) of the MS; channels must be the same in every spectral window for the
    channel axis (checked there)."""
    from casacore.tables import table

    t = table(str(ms), ack=False)
    try:
        nrow = t.nrows()
    finally:
        t.close()
    spw = table(str(ms / "SPECTRAL_WINDOW"), ack=False)
    try:
        nchan = int(max(spw.getcol("NUM_CHAN"), default=0))
    finally:
        spw.close()
    return nrow, nchan


def work(args: argparse.Namespace, job: Job) -> None:
    from htclean.imaging import parts as imaging_parts
    from htclean.imaging.partfile import SUFFIX

    outputs = [Path(o) for o in args.outputs]
    if len(set(outputs)) != len(outputs):
        raise InputError("--outputs: the same file is named twice")
    for o in outputs:
        if not o.name.endswith(SUFFIX):
            raise InputError(f"--outputs: {o} must end in {SUFFIX}")
    axis = args.axis or job.settings["partition"]["axis"]
    block = int(job.settings["gridder"]["chunk_rows"])
    src = job.read(args.ms, "--ms", allow_dir=True)
    nparts = len(outputs)
    parts = []
    with msparts.unpacked(src, scratch=outputs[0].parent) as ms:
        nrow, nchan = _table_shape(ms)
        if nrow == 0:
            raise InputError(f"--ms: {src} has no rows")
        data = job.settings["data"]
        wanted = msparts.imaged_rows(ms, data["field"], data["spw"], block)
        if wanted is not None:
            nrow = len(wanted)
        if axis == "channel":
            nchan = msparts.channel_count(ms)
            selections = msparts.split_channel(nchan, nparts)
        else:
            selections = msparts.key_ranges(ms, axis, nparts, block, wanted)
        for out, sel in zip(outputs, selections, strict=True):
            if axis == "channel":
                picked, chans = wanted, sel
            else:
                picked = msparts.rows_in_range(ms, axis, sel[0], sel[1], block, wanted)
                chans = None
            imaging_parts.write_part(ms, job.settings, out, rows=picked, channels=chans)
            job.output(out)
            c0, c1 = chans or (0, nchan)
            parts.append({"file": out.name, "rows": nrow if picked is None else len(picked),
                          "channels": c1 - c0, "channel_range": [int(c0), int(c1)],
                          "time_range": list(msparts.time_range(ms, block, picked)),
                          "bytes": out.stat().st_size})
    job.visibilities = nrow * nchan
    manifest = {"ms": src.name, "axis": axis, "rows": nrow, "channels": nchan,
                "parts": parts}
    job.write_json(args.manifest, manifest)


def main(argv: list[str] | None = None) -> int:
    return run_job(PROG, build_parser(), work, argv)


if __name__ == "__main__":
    sys.exit(main())

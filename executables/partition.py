"""htclean-partition: split a Measurement Set into parts, one tarred MS per grid job.

    htclean-partition --config R-config.yml --record R-partition.record.json
                      --ms OBS.ms.tar --axis time|baseline|channel
                      --outputs R-part-000.ms.tar R-part-001.ms.tar ... --manifest R-partitions.json

Only the rows the imaging reads go into the parts: those of ``data.field`` (and of
``data.spw`` when set), cross-correlations only (msparts.imaged_rows). time: contiguous time
ranges of about equal rows (a timestamp is never split); baseline: groups of whole baselines of
about equal rows; channel: contiguous channel ranges, every part keeping all those rows. Each
part is a valid MS with all subtables, written ``gridder.chunk_rows`` rows at a time. The
manifest lists the rows selected and, per part: file, rows, channels, channel range, time
range (MJD s) and bytes. Every selected row and every channel is in exactly one part.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
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
    parser.add_argument("--outputs", required=True, nargs="+", metavar="PART.ms.tar",
                        help="one tar per part, in order; their number is the number of parts")
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
    outputs = [Path(o) for o in args.outputs]
    if len(set(outputs)) != len(outputs):
        raise InputError("--outputs: the same file is named twice")
    for o in outputs:
        if not o.name.endswith(".tar"):
            raise InputError(f"--outputs: {o} must end in .tar")
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
        scratch = Path(tempfile.mkdtemp(prefix=".partition.", dir=outputs[0].parent))
        try:
            for out, sel in zip(outputs, selections, strict=True):
                part = scratch / out.name.removesuffix(".tar")
                if axis == "channel":
                    msparts.copy_channels(ms, sel[0], sel[1], part, block, wanted)
                    rows, chans = nrow, sel
                else:
                    picked = msparts.rows_in_range(ms, axis, sel[0], sel[1], block, wanted)
                    msparts.copy_rows(ms, picked, part)
                    rows, chans = len(picked), (0, nchan)
                t0, t1 = msparts.time_range(part, block)
                msparts.pack(part, out)
                shutil.rmtree(part)
                job.output(out)
                parts.append({"file": out.name, "rows": int(rows), "channels": chans[1] - chans[0],
                              "channel_range": [int(chans[0]), int(chans[1])],
                              "time_range": [t0, t1], "bytes": out.stat().st_size})
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    job.visibilities = nrow * nchan
    manifest = {"ms": src.name, "axis": axis, "rows": nrow, "channels": nchan,
                "parts": parts}
    job.write_json(args.manifest, manifest)


def main(argv: list[str] | None = None) -> int:
    return run_job(PROG, build_parser(), work, argv)


if __name__ == "__main__":
    sys.exit(main())

"""htclean-partition: split Measurement Sets into parts, one part file per grid job.

    htclean-partition --config R-config.yml --record R-partition.record.json
                      --ms OBS.ms.tar [OBS2.ms.tar ...] --axis time|baseline|channel
                      [--channels C0:C1 [C0:C1 ...]]
                      --outputs R-part-000.vis.npz R-part-001.vis.npz ...
                      --manifest R-partitions.json

Only the rows the imaging reads go into the parts: those of ``data.field`` (and of
``data.spw`` when set), cross-correlations only (msparts.imaged_rows). time: contiguous time
ranges of about equal rows (a timestamp is never split); baseline: groups of whole baselines of
about equal rows; channel: contiguous channel ranges, every part keeping all those rows. Each
part is written once as a part file (imaging/ms/partfile.py: Stokes I complex64 by
``data.polarization_rule``, weights float32 with the flags folded in, uvw phased to the image
centre, channel frequencies), ``gridder.chunk_rows`` rows at a time; every cycle reads it as it
is. The manifest lists the rows selected and, per part: file, rows, channels, channel range,
time range (MJD s) and bytes. Every selected row and every channel is in exactly one part.

Several MSs (``data.ms`` a list) are imaged as one: each gets parts in proportion to the
samples it holds (rows x channels, at least one part each) and is split along the axis as
above; every part is phased to one centre, ``image.phase_centre`` or the first MS's, so the
weighting, the normalisation and the image are global. The MSs may differ in spectral
windows, channel counts and flags.

``--channels``: only these MS channel ranges (``[C0, C1)`` of the window; ``image.start`` /
``image.nchan``), each its own set of parts: the outputs are split into as many equal runs
as ranges, in order (a cube's output channels, workflows/cube.py), and each run into parts
as above within its range. ``data.continuum`` subtracts each spectrum's continuum, fitted to
its line-free channels over the whole window, before the channels are cut out
(imaging/ms/parts.py).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from htclean.executables import msparts
from htclean.executables.record import Job, job_parser, run_job
from htclean.imaging.errors import InputError

PROG = "htclean-partition"


def build_parser() -> argparse.ArgumentParser:
    parser = job_parser(PROG, __doc__)
    parser.add_argument("--ms", required=True, nargs="+", metavar="MS.tar",
                        help="the Measurement Set(s): tars of one MS each, or MS directories")
    parser.add_argument("--axis", choices=("time", "baseline", "channel"),
                        help="split along this axis (default: partition.axis of the config)")
    parser.add_argument("--outputs", required=True, nargs="+", metavar="PART.vis.npz",
                        help="one part file per part, in order; their number is the number of "
                        "parts")
    parser.add_argument("--channels", nargs="+", metavar="C0:C1",
                        help="only these channel ranges, each its own run of the outputs")
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


def share_parts(samples: list[int], nparts: int) -> list[int]:
    """Parts per MS: about in proportion to its samples, at least one each (largest
    remainder). InputError when there are fewer parts than MSs."""
    if nparts < len(samples):
        raise InputError(f"--outputs: {nparts} parts for {len(samples)} Measurement Sets; each "
                         "needs at least one")
    total = sum(samples) or 1
    spare = nparts - len(samples)
    exact = [spare * n / total for n in samples]
    share = [1 + int(e) for e in exact]
    order = sorted(range(len(samples)), key=lambda i: (int(exact[i]) - exact[i], i))
    for i in order[:nparts - sum(share)]:
        share[i] += 1
    return share


def _split(ms: Path, job: Job, axis: str, nparts: int, block: int,
           outputs: list[list[Path]], centre: tuple[float, float] | None,
           ranges: list[tuple[int, int] | None]) -> tuple[int, int, list[dict]]:
    """Write the ``nparts`` parts of one MS for each channel range (``outputs[r]``: range
    r's parts; a None range: every channel); (rows, channels, manifest entries). Along time
    or baseline every row selection is read once for all the ranges (parts.write_parts)."""
    from htclean.imaging.ms import parts as imaging_parts

    nrow, nchan = _table_shape(ms)
    if nrow == 0:
        raise InputError(f"--ms: {ms.name} has no rows")
    settings, data = job.settings, job.settings["data"]
    wanted = msparts.imaged_rows(ms, data["field"], data["spw"], block)
    if wanted is not None:
        nrow = len(wanted)
    if axis == "channel":
        nchan = msparts.channel_count(ms)
    spans = [r or (0, nchan) for r in ranges]
    entries: list[list[dict]] = [[] for _ in ranges]

    def entry(out: Path, picked, chans: tuple[int, int], times: list) -> dict:
        job.output(out)
        return {"file": out.name, "rows": nrow if picked is None else len(picked),
                "channels": chans[1] - chans[0], "channel_range": [int(c) for c in chans],
                "time_range": times, "bytes": out.stat().st_size}

    if axis == "channel":
        times = list(msparts.time_range(ms, block, wanted))
        for r, (c0, c1) in enumerate(spans):
            for out, (a, b) in zip(outputs[r], msparts.split_channel(c1 - c0, nparts),
                                   strict=True):
                imaging_parts.write_part(ms, settings, out, rows=wanted,
                                         channels=(c0 + a, c0 + b), centre=centre)
                entries[r].append(entry(out, wanted, (c0 + a, c0 + b), times))
    else:
        for j, sel in enumerate(msparts.key_ranges(ms, axis, nparts, block, wanted)):
            picked = msparts.rows_in_range(ms, axis, sel[0], sel[1], block, wanted)
            outs = [o[j] for o in outputs]
            if ranges == [None]:
                imaging_parts.write_part(ms, settings, outs[0], rows=picked, centre=centre)
            else:
                imaging_parts.write_parts(ms, settings, outs, rows=picked, ranges=spans,
                                          centre=centre)
            times = list(msparts.time_range(ms, block, picked))
            for r, out in enumerate(outs):
                entries[r].append(entry(out, picked, spans[r], times))
    return nrow, sum(c1 - c0 for c0, c1 in spans), [e for es in entries for e in es]


def _first_centre(ms: Path, data: dict) -> tuple[float, float]:
    from htclean.imaging.ms import msread

    return msread.describe(ms, field=data["field"], spw=data["spw"]).phase_centre


def work(args: argparse.Namespace, job: Job) -> None:
    from htclean.imaging.ms.partfile import SUFFIX

    outputs = [Path(o) for o in args.outputs]
    if len(set(outputs)) != len(outputs):
        raise InputError("--outputs: the same file is named twice")
    for o in outputs:
        if not o.name.endswith(SUFFIX):
            raise InputError(f"--outputs: {o} must end in {SUFFIX}")
    axis = args.axis or job.settings["partition"]["axis"]
    block = int(job.settings["gridder"]["chunk_rows"])
    sources = [job.read(m, "--ms", allow_dir=True) for m in args.ms]
    if len({s.name for s in sources}) != len(sources):
        raise InputError("--ms: the same Measurement Set is named twice")
    ranges = channel_ranges(args.channels, len(outputs))
    per = len(outputs) // len(ranges)
    scratch = outputs[0].parent
    with contextlib.ExitStack() as stack:
        opened = [stack.enter_context(msparts.unpacked(s, scratch=scratch)) for s in sources]
        several = len(opened) > 1
        shares = share_parts(
            [imaged_samples(ms, job.settings["data"], block) for ms in opened],
            per) if several else [per]
        centre = _first_centre(opened[0], job.settings["data"]) if several else None
        done, results = 0, []
        for src, ms, n in zip(sources, opened, shares, strict=True):
            mine = [outputs[r * per + done:r * per + done + n] for r in range(len(ranges))]
            results.append((src, *_split(ms, job, axis, n, block, mine, centre, ranges)))
            done += n
    job.visibilities = sum(nrow * nchan for _, nrow, nchan, _ in results)
    if not several:
        src, nrow, nchan, entries = results[0]
        manifest = {"ms": src.name, "axis": axis, "rows": nrow, "channels": nchan,
                    "parts": entries}
    else:
        manifest = {"ms": [src.name for src, *_ in results], "axis": axis,
                    "rows": sum(r[1] for r in results),
                    "parts": [{**e, "ms": src.name} for src, _, _, entries in results
                              for e in entries]}
    job.write_json(args.manifest, manifest)


def channel_ranges(text: list[str] | None, outputs: int) -> list[tuple[int, int] | None]:
    """``--channels`` as ``[(c0, c1), ...]`` ([None]: every channel); InputError unless the
    outputs split evenly among them."""
    if not text:
        return [None]
    ranges = []
    for item in text:
        try:
            c0, c1 = (int(v) for v in item.split(":"))
        except ValueError:
            raise InputError(f"--channels: {item!r} is not C0:C1") from None
        if not 0 <= c0 < c1:
            raise InputError(f"--channels: {item!r} is not a channel range (0 <= C0 < C1)")
        ranges.append((c0, c1))
    if outputs % len(ranges):
        raise InputError(f"--outputs: {outputs} parts do not split evenly among "
                         f"{len(ranges)} channel ranges")
    return ranges


def imaged_samples(ms: Path, data: dict, block: int) -> int:
    """Rows the imaging reads x the widest window's channels: the MS's share of the work."""
    nrow, nchan = _table_shape(ms)
    wanted = msparts.imaged_rows(ms, data["field"], data["spw"], block)
    return (nrow if wanted is None else len(wanted)) * nchan


def main(argv: list[str] | None = None) -> int:
    return run_job(PROG, build_parser(), work, argv)


if __name__ == "__main__":
    sys.exit(main())

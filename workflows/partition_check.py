"""Every partition error at plan time: what the partition job would refuse, refused by
``htclean plan`` in one line before anything is written or submitted.

The check runs the partition job's own splitters (executables.msparts, and the share of parts
among several MSs of executables.partition) on the rows the job would read, so it refuses
exactly what the job would: more parts than timestamps, baselines or channels on the chosen
axis (rows of one timestamp or baseline stay in one part), a ``max_size`` that asks for that,
fewer parts than MSs. A URL, or a tar larger than mscheck's unpack limit, is left to the job
(its content is not read at plan time).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from htclean.imaging.errors import InputError

UNITS = {"time": "timestamps", "baseline": "baselines", "channel": "channels"}


def origin(settings: dict[str, Any]) -> str:
    """The key the part count came from, with its value, for the error line."""
    part = settings["partition"]
    if part["parts"] is None and part["max_size"] is not None:
        return f"partition.max_size: {part['max_size']:.0f} bytes gives"
    return "partition.parts:"


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Path | None]:
    """The MS directory of a local MS or tar (None for a tar too large to unpack here)."""
    from htclean.executables import msparts
    from htclean.imaging.ms.mscheck import UNPACK_LIMIT

    if path.is_dir():
        yield path
        return
    if path.stat().st_size > UNPACK_LIMIT:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="htclean-partcheck-") as tmp, \
            msparts.unpacked(path, scratch=tmp) as ms:
        yield ms


def _check_one(ms: Path, shown: str, settings: dict[str, Any], nparts: int,
               where: str) -> None:
    from htclean.executables import msparts

    data, axis = settings["data"], settings["partition"]["axis"]
    block = int(settings["gridder"]["chunk_rows"])
    try:
        if axis == "channel":
            msparts.split_channel(msparts.channel_count(ms), nparts)
        else:
            wanted = msparts.imaged_rows(ms, data["field"], data["spw"], block)
            msparts.key_ranges(ms, axis, nparts, block, wanted)
    except msparts.TooFewUnits as exc:
        units = UNITS[axis]
        raise InputError(f"{where} {nparts} parts along {axis} for {shown}, which has "
                         f"{exc.units} {units} (one part holds whole {units}): use at most "
                         f"{exc.units} parts, or another partition.axis") from None


def check_partition(sources: list[Path | None], settings: dict[str, Any], parts: int) -> None:
    """InputError (one line naming the key and the MS) when the partition job would refuse
    to split ``sources`` (local MS directories or tars; None for a URL) into ``parts``."""
    from htclean.executables.partition import imaged_samples, share_parts

    where = origin(settings)
    if parts < len(sources):
        raise InputError(f"{where} {parts} parts for {len(sources)} Measurement Sets; "
                         "each MS needs at least one part")
    block = int(settings["gridder"]["chunk_rows"])
    with contextlib.ExitStack() as stack:
        opened = [None if s is None else stack.enter_context(_opened(s)) for s in sources]
        if any(ms is None for ms in opened):
            return  # a URL or a large tar (and the shares need every MS): the job checks
        shares = [parts] if len(opened) == 1 else share_parts(
            [imaged_samples(ms, settings["data"], block) for ms in opened], parts)
        for src, ms, n in zip(sources, opened, shares, strict=True):
            _check_one(ms, str(src), settings, n, where)

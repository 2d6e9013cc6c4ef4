"""CASA's channel-range syntax, as ``data.continuum.linefree`` takes it.

``"0~5;55~62"`` is channels 0..5 and 55..62 (both ends included); a single channel is a plain
number (``"7"``); one spectral-window prefix is accepted (``"0:0~5;55~62"``), and must name the
window being imaged when that is known. Frequency ranges (``"1.40~1.41GHz"``), strides
(``"0~10^2"``) and several windows (``"0:0~5,1:2~9"``) are not supported: each is an InputError
that names the key and says what is wrong, never a silently different selection.
"""

from __future__ import annotations

import re

import numpy as np

from htclean.imaging.errors import InputError

KEY = "data.continuum.linefree"
_RANGE = re.compile(r"^(\d+)(?:~(\d+))?$")
_SPW = re.compile(r"^(\d+|\*)$")


def parse_channels(text: object, nchan: int, *, spw: int | None = None,
                   key: str = KEY) -> np.ndarray:
    """The channels that ``text`` selects, as sorted unique indices ``(n,) int64``.

    nchan: the spectral window's channel count (valid channels 0..nchan-1); spw: the window
    being imaged, checked against a prefix (None: any one prefix is accepted). Raises
    InputError naming ``key`` for a value that is not a string, empty, not CASA channel
    syntax, several windows, another window than ``spw``, a reversed range or a channel
    outside 0..nchan-1.
    """
    if not isinstance(nchan, (int, np.integer)) or nchan < 1:
        raise InputError(f"{key}: the spectral window has no channels (nchan {nchan!r})")
    if not isinstance(text, str):
        raise InputError(f"{key}: expected CASA channel ranges such as '0~5;55~62', "
                         f"got {text!r}")
    spec = "".join(text.split())
    if not spec:
        raise InputError(f"{key}: empty; give the line-free channels, e.g. '0~5;55~62'")
    if "," in spec:
        raise InputError(f"{key}: {text!r} names several spectral windows; one is supported")
    if ":" in spec:
        prefix, _, spec = spec.partition(":")
        if not _SPW.match(prefix):
            raise InputError(f"{key}: {text!r} has a bad spectral-window prefix {prefix!r} "
                             "(expected 'N:' such as '0:0~5;55~62')")
        if spw is not None and prefix != "*" and int(prefix) != spw:
            raise InputError(f"{key}: {text!r} selects spectral window {prefix}, "
                             f"but spectral window {spw} is imaged")
    chosen = np.zeros(nchan, dtype=bool)
    for item in spec.split(";"):
        start, stop = _range(item, text, key)
        if stop >= nchan:
            raise InputError(f"{key}: range {item!r} goes past the spectral window's last "
                             f"channel {nchan - 1} ({nchan} channels)")
        chosen[start:stop + 1] = True
    return np.flatnonzero(chosen).astype(np.int64)


def _range(item: str, text: str, key: str) -> tuple[int, int]:
    m = _RANGE.match(item)
    if m is None:
        raise InputError(f"{key}: {item!r} in {text!r} is not a channel range "
                         "(expected 'start~end' or a channel number, e.g. '0~5;55~62')")
    start = int(m.group(1))
    stop = int(m.group(2)) if m.group(2) is not None else start
    if stop < start:
        raise InputError(f"{key}: range {item!r} is reversed (start {start} > end {stop})")
    return start, stop

"""``data.continuum`` on a Measurement Set's Stokes I chunks, as the partition reads them.

Every chunk is read with all the channels of its spectral window, each spectrum's continuum
is fitted to the line-free channels (channels.py: CASA syntax, counted in the window's stored
order) and subtracted (contsub.py), and only then are the imaged channels ``[c0, c1)`` cut
out: a cube's output channel gets the fit of the whole window, not of its own few channels.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import replace

import numpy as np

from htclean.imaging.ms.msread import VisChunk
from htclean.imaging.spectral.channels import parse_channels
from htclean.imaging.spectral.contsub import subtract_chunk


def window_frequencies(ms: str | os.PathLike) -> dict[int, np.ndarray]:
    """CHAN_FREQ (Hz, stored order) of the spectral window of every DATA_DESC_ID."""
    from casacore.tables import table

    path = os.fspath(ms)
    with table(f"{path}/DATA_DESCRIPTION", ack=False) as dd, \
            table(f"{path}/SPECTRAL_WINDOW", ack=False) as sw:
        return {d: np.asarray(sw.getcell("CHAN_FREQ", int(s)), np.float64)
                for d, s in enumerate(dd.getcol("SPECTRAL_WINDOW_ID"))}


def subtracted(chunks: Iterable[VisChunk], windows: dict[int, np.ndarray], linefree: str,
               fitorder: int, channels: tuple[int, int] | None,
               spw: int | None = None) -> Iterator[VisChunk]:
    """The chunks (all their window's channels) with the continuum subtracted, cut to the
    window's channels ``[c0, c1)`` (None: all). Spectra that cannot be fitted (too few
    usable line-free channels) are flagged, as contsub.subtract does."""
    selected: dict[int, np.ndarray] = {}
    for chunk in chunks:
        spw_freq = windows[chunk.ddid]
        if chunk.ddid not in selected:
            selected[chunk.ddid] = parse_channels(linefree, spw_freq.size, spw=spw)
        out, _ = subtract_chunk(chunk, spw_freq, selected[chunk.ddid], fitorder=fitorder)
        yield cut(out, windows, channels)
        del chunk, out


def cut(chunk: VisChunk, windows: dict[int, np.ndarray],
        channels: tuple[int, int] | None) -> VisChunk:
    """The window channels ``[c0, c1)`` (stored order; None: all) of a chunk read with all
    its window's channels (matched by frequency: the chunk's are ascending)."""
    if channels is None:
        return chunk
    keep = np.isin(chunk.freq, windows[chunk.ddid][channels[0]:channels[1]])
    return replace(chunk, freq=chunk.freq[keep], vis=np.ascontiguousarray(chunk.vis[:, keep]),
                   weight=np.ascontiguousarray(chunk.weight[:, keep]))

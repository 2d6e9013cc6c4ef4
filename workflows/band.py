"""What ``htclean plan`` reads of the MSs' bands and pointings for wideband imaging.

The default Taylor reference frequency of a multi-term run (``mean_frequency``), and the
pointing the primary beam is centred on (``check_pointing``).

``image.reference_frequency`` null with ``deconvolution.nterms`` > 1: ``htclean plan`` writes
the mean frequency of the samples the run images into the resolved configuration (as it
writes ``partition.parts``), so every grid job uses the same one: every channel of every
imaged row (``data.field``, ``data.spw``, cross-correlations) of every MS counts once. It
reads the row-selection columns and the spectral windows, not the data, weights or flags.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from htclean.imaging.errors import InputError


def _window_frequencies(ms: Path) -> list[np.ndarray]:
    from casacore.tables import table

    with table(str(ms / "DATA_DESCRIPTION"), ack=False) as dd:
        spw_of = dd.getcol("SPECTRAL_WINDOW_ID")
    with table(str(ms / "SPECTRAL_WINDOW"), ack=False) as spw:
        return [np.asarray(spw.getcell("CHAN_FREQ", int(s)), np.float64) for s in spw_of]


def sums(ms: str | Path, data: dict, block: int = 1000000,
         channels: tuple[int, int] | None = None) -> tuple[float, float]:
    """(sum of channel frequencies over the imaged samples, number of samples) of one MS (a
    directory or a tar of one); ``channels``: only the window channels ``[c0, c1)``
    (``image.start``/``image.nchan``)."""
    from casacore.tables import table

    from htclean.executables import msparts

    with msparts.unpacked(ms) as path:
        freqs = _window_frequencies(path)
        if channels is not None:
            freqs = [f[channels[0]:channels[1]] for f in freqs]
        rows = msparts.imaged_rows(path, data["field"], data["spw"], block)
        with table(str(path), ack=False) as t:
            ddid = t.getcol("DATA_DESC_ID")
    ddid = ddid if rows is None else ddid[rows]
    counts = np.bincount(ddid, minlength=len(freqs))
    total = sum(float(c) * float(freqs[d].sum()) for d, c in enumerate(counts) if c)
    n = sum(float(c) * len(freqs[d]) for d, c in enumerate(counts) if c)
    return total, n


def mean_frequency(paths: list[str | Path], data: dict,
                   channels: tuple[int, int] | None = None) -> float:
    """The mean frequency (Hz) of the imaged samples (of the window channels ``channels``,
    where given) of every MS in ``paths``."""
    total, n = 0.0, 0.0
    for p in paths:
        t, c = sums(p, data, channels=channels)
        total, n = total + t, n + c
    if not n > 0:
        raise InputError("image.reference_frequency: no samples to take a mean frequency of")
    return total / n


POINTING_TOLERANCE = 1e-6  # radians (0.2 arcsec): the same pointing


def check_pointing(paths: list[str | Path], data: dict, phase_centre) -> None:
    """InputError unless every MS points where the image is centred: the primary beam is
    centred on the image centre (one pointing; no mosaics, no shifted image centre)."""
    from htclean.executables import msparts
    from htclean.imaging.ms import msread

    centres = []
    for p in paths:
        with msparts.unpacked(p) as path:
            centres.append(msread.describe(path, field=data["field"],
                                           spw=data["spw"]).phase_centre)
    target = tuple(phase_centre) if phase_centre is not None else centres[0]
    for p, (ra, dec) in zip(paths, centres, strict=True):
        d = math.acos(min(1.0, math.sin(dec) * math.sin(target[1]) + math.cos(dec)
                          * math.cos(target[1]) * math.cos(ra - target[0])))
        if d > POINTING_TOLERANCE:
            raise InputError(f"image.primary_beam: {Path(p).name} points "
                             f"{math.degrees(d) * 3600:.1f} arcsec from the image centre; the "
                             "beam is modelled for one pointing at the image centre (no mosaics)")

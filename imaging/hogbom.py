"""Högbom CLEAN as WSClean runs it: the largest |residual|, gain x it subtracted as the
shifted PSF, repeated, on the pixels that can still be chosen.

A component is only ever taken where |residual| is above the cycle's floor (the threshold and
the mgain level, ``StopRule.floor``), so the cycle runs on the list of those pixels
(``clark.list_clean``: exact there, with the whole PSF), then subtracts its components from
the whole residual at once (shifted PSFs for a few, an FFT convolution for many) and starts
again if a pixel outside the list rose above the floor meanwhile. This is Clark's cycle with
no exterior-sidelobe limit, as WSClean's Högbom with its sub-minor loop: the same components
as the textbook loop over every pixel, in the same order, except when a pixel outside the
list rises above the list's limit in the middle of a list (it is taken in the next list).
Each iteration costs the list's length, not the image's: at 4096² with a 2x PSF, the deep last
cycle of the 50M benchmark (37 000 components, as many as WSClean's) took 1005 CPU s over
every pixel, 21 CPU s on the list.
"""

from __future__ import annotations

import numpy as np

from htclean.imaging.clark import listed_clean
from htclean.imaging.clean import CleanParams, MinorCycleResult


def run(residual: np.ndarray, psf: np.ndarray, params: CleanParams, *, iterations_done: int,
        threshold: float) -> MinorCycleResult:
    """Högbom minor cycle on ``residual`` (modified in place and returned in the result);
    ``psf`` normalised to 1 at its centre (``clean.prepare`` makes both)."""
    return listed_clean(residual, psf, params, iterations_done=iterations_done,
                        threshold=threshold, ext=0.0)

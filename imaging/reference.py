"""The one-process reference imager: the whole MS, the full major/minor loop, in memory.

It calls exactly what the distributed workflow's jobs call (parts.py for the weights, the PSF
and dirty image and every residual; clean.minor_cycle; loop.decide; beam and restore), with
the whole MS as one part, so it is the yardstick the distributed result must equal.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from htclean.imaging.deconvolution import loop
from htclean.imaging.geometry import ImageGeometry, crop_centre
from htclean.imaging.ms import partials, parts


@dataclass
class Products:
    """Images (ny, nx) float64: psf (peak 1; the central crop of psf_full, as NAME-psf.fits),
    dirty, residual (Jy/beam), model (Jy/pixel), restored (Jy/beam); psf_full (pny, pnx): the
    ``image.psf_oversize`` x image PSF the minor cycles and the beam fit use; beam (clean
    beam), components (ComponentList), cycles (minor cycles run), iterations (components
    subtracted), decisions (loop.Decision of every major cycle; the last says why it stopped),
    geom, weight_sum and visibilities."""

    psf: np.ndarray
    psf_full: np.ndarray
    dirty: np.ndarray
    residual: np.ndarray
    model: np.ndarray
    restored: np.ndarray
    beam: Any
    components: Any
    cycles: int
    iterations: int
    geom: ImageGeometry
    weight_sum: float
    visibilities: int
    decisions: list[loop.Decision] = field(default_factory=list)

    @property
    def stop_reason(self) -> str:
        return self.decisions[-1].reason if self.decisions else "niter"


def _peak(image: np.ndarray) -> float:
    return float(np.max(np.abs(image)))


def image_ms(ms: str | os.PathLike, settings: dict[str, Any],
             progress: Callable[[str], None] | None = None) -> Products:
    """Image ``ms`` with ``settings`` (parsed configuration) in this process.

    progress: called with one line of text after each step (None: silent). Returns Products.
    """
    from htclean.imaging.beams.beam import fit_clean_beam
    from htclean.imaging.beams.restore import restore
    from htclean.imaging.deconvolution.clean import CleanParams, minor_cycle
    from htclean.imaging.deconvolution.components import ComponentList

    say = progress or (lambda _line: None)
    density = None
    if settings["weighting"]["type"] != "natural":
        density = parts.part_density(ms, settings)
        say(f"weight density of {density.visibilities} visibilities")
    first = parts.part_psf_dirty(ms, settings, density)
    images = partials.normalise(first)
    psf_full, dirty = images["psf"], images["dirty"]
    geom = first.geom
    say(f"PSF and dirty image from {first.visibilities} visibilities, peak {_peak(dirty):.4g}")

    params = CleanParams.from_settings(settings)
    limits = loop.LoopLimits.from_settings(settings)
    components = ComponentList.empty(geom.nx, geom.ny)
    residual, iterations, cycle = dirty, 0, 0
    decision = loop.decide(loop.LoopState(0, 0, _peak(dirty), params.cycle_threshold(dirty)),
                           limits)
    decisions = [decision]
    while decision.go_on:
        minor = minor_cycle(residual, psf_full, params, iterations_done=iterations,
                            threshold=decision.threshold)
        components = components.merge(minor.components)
        iterations += minor.iterations
        cycle += 1
        residual = partials.normalise(parts.part_residual(ms, settings, components,
                                                       density))["residual"]
        decision = loop.decide(loop.LoopState(
            cycle, iterations, _peak(residual), params.cycle_threshold(residual),
            previous_peak=minor.peak_start, minor_stop=minor.stop_reason,
            minor_iterations=minor.iterations), limits)
        decisions.append(decision)
        say(f"cycle {cycle}: {minor.iterations} components ({minor.stop_reason}), "
            f"residual peak {_peak(residual):.4g}, {decision.reason}")

    beam = fit_clean_beam(psf_full, geom.cell)
    restored = restore(components, residual, beam, geom.cell)
    return Products(psf=crop_centre(psf_full, geom.shape), psf_full=psf_full, dirty=dirty,
                    residual=residual, model=components.to_image(), restored=restored,
                    beam=beam, components=components, cycles=cycle, iterations=iterations,
                    geom=geom, weight_sum=first.weight_sum, visibilities=first.visibilities,
                    decisions=decisions)

"""The major-cycle loop's decision: go on with another minor cycle, or stop and restore.

One function, ``decide``, called after every major cycle (and once on the dirty image) by the
one-process reference imager and by the distributed ``next`` job, so both stop identically.
Checked in this order:

1. ``niter``: the component budget is spent (or niter is 0: no deconvolution at all);
2. ``threshold``: the new residual's peak is at or below the threshold
   ``max(deconvolution.threshold, auto_threshold x robust sigma of the residual)``, or the last
   minor cycle found no peak. As CASA tclean, the test is on the residual re-made from the
   visibilities, not on the minor cycle's own estimate: when a minor cycle reached its
   threshold on its PSF-approximated residual but the new residual's peak is still more than
   ``THRESHOLD_TOLERANCE`` above the threshold (the PSF is not exactly shift-invariant: w-term,
   bandwidth), another minor cycle runs. The tolerance keeps an auto-threshold, which falls a
   little every cycle as the noise estimate cleans up, from being chased cycle after cycle;
3. ``diverged``: the new residual's peak grew by more than ``deconvolution.divergence`` times the
   peak the last minor cycle started from;
4. ``max_cycles``: ``deconvolution.max_cycles`` minor cycles are done;
5. ``no-progress``: the last minor cycle subtracted no component;
otherwise ``continue``, with the threshold the next minor cycle must use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

THRESHOLD_TOLERANCE = 0.25  # fraction of the threshold; see the module docstring

REASONS = ("niter", "threshold", "diverged", "max_cycles", "no-progress", "continue")


@dataclass(frozen=True)
class LoopLimits:
    """The stopping settings: niter (components in total), max_cycles (minor cycles),
    divergence (peak growth factor > 1)."""

    niter: int
    max_cycles: int
    divergence: float

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> LoopLimits:
        d = settings["deconvolution"]
        return cls(niter=int(d["niter"]), max_cycles=int(d["max_cycles"]),
                   divergence=float(d["divergence"]))


@dataclass(frozen=True)
class LoopState:
    """Where the loop stands after a major cycle.

    cycle: minor cycles done so far (0 = only the dirty image exists); iterations: components
    subtracted in total; peak: max |residual| (Jy/beam) of the residual just made; threshold:
    the absolute threshold for that residual (Jy, ``CleanParams.cycle_threshold``);
    previous_peak, minor_stop, minor_iterations: the last minor cycle's starting peak, stop
    reason and component count (None at cycle 0).
    """

    cycle: int
    iterations: int
    peak: float
    threshold: float
    previous_peak: float | None = None
    minor_stop: str | None = None
    minor_iterations: int | None = None


@dataclass(frozen=True)
class Decision:
    """go_on: run another minor cycle; reason: one of REASONS; threshold: Jy, for the next
    minor cycle; cycle: the state's cycle."""

    go_on: bool
    reason: str
    threshold: float
    cycle: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(state: LoopState, limits: LoopLimits) -> Decision:
    """Whether to run another minor cycle (see the module docstring for the order)."""
    def stop(reason: str) -> Decision:
        return Decision(False, reason, state.threshold, state.cycle)

    if limits.niter == 0 or state.iterations >= limits.niter:
        return stop("niter")
    reached = state.peak <= state.threshold or (
        state.minor_stop == "threshold"
        and state.peak <= (1 + THRESHOLD_TOLERANCE) * state.threshold)
    if state.minor_stop == "no-peak" or reached:
        return stop("threshold")
    if state.previous_peak is not None and state.peak > limits.divergence * state.previous_peak:
        return stop("diverged")
    if state.cycle >= limits.max_cycles:
        return stop("max_cycles")
    if state.minor_iterations == 0:
        return stop("no-progress")
    return Decision(True, "continue", state.threshold, state.cycle)

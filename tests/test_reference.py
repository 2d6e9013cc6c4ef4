"""The loop decision, and the one-process reference imager against a distributed emulation."""

from __future__ import annotations

import numpy as np
import pytest
import tinyms

from htclean.imaging import reference
from htclean.imaging.deconvolution import loop
from htclean.imaging.deconvolution.clean import CleanParams, minor_cycle
from htclean.imaging.deconvolution.components import ComponentList
from htclean.imaging.ms import partials, parts

LIMITS = loop.LoopLimits(niter=100, max_cycles=5, divergence=1.5)


@pytest.mark.parametrize("state, limits, go_on, reason", [
    (loop.LoopState(0, 0, 1.0, 0.1), LIMITS, True, "continue"),
    (loop.LoopState(0, 0, 1.0, 0.1), loop.LoopLimits(0, 5, 1.5), False, "niter"),
    (loop.LoopState(0, 0, 0.05, 0.1), LIMITS, False, "threshold"),
    (loop.LoopState(2, 100, 0.5, 0.1, 0.6, "niter", 40), LIMITS, False, "niter"),
    # the minor cycle reached its threshold and the re-made residual is within the tolerance
    (loop.LoopState(2, 60, 0.12, 0.1, 0.6, "threshold", 40), LIMITS, False, "threshold"),
    # ... or well above it (the minor cycle's PSF approximation missed flux): go on
    (loop.LoopState(2, 60, 0.3, 0.1, 0.6, "threshold", 40), LIMITS, True, "continue"),
    (loop.LoopState(2, 60, 0.12, 0.1, 0.6, "mgain", 40), LIMITS, True, "continue"),
    (loop.LoopState(2, 60, 0.5, 0.1, 0.6, "no-peak", 0), LIMITS, False, "threshold"),
    (loop.LoopState(2, 60, 0.95, 0.1, 0.6, "mgain", 40), LIMITS, False, "diverged"),
    (loop.LoopState(2, 60, 0.85, 0.1, 0.6, "mgain", 40), LIMITS, True, "continue"),
    (loop.LoopState(5, 60, 0.5, 0.1, 0.6, "mgain", 40), LIMITS, False, "max_cycles"),
    (loop.LoopState(2, 60, 0.5, 0.1, 0.6, "mgain", 0), LIMITS, False, "no-progress"),
])
def test_decide(state, limits, go_on, reason):
    d = loop.decide(state, limits)
    assert (d.go_on, d.reason, d.threshold, d.cycle) == (go_on, reason, state.threshold,
                                                         state.cycle)
    assert d.to_dict()["reason"] == reason


@pytest.fixture(scope="module")
def observation(tmp_path_factory):
    ms = str(tmp_path_factory.mktemp("ref") / "ref.ms")
    sources = [(0.0, 0.0, 1.0), (16 * tinyms.ASEC, -10 * tinyms.ASEC, 0.5)]
    truth = tinyms.write_ms(ms, tinyms.TinyObs(nant=10, ntime=16, nchan=2, noise=0.02,
                                               sources=sources))
    settings = tinyms.settings_for(
        ms, cell=2 * tinyms.ASEC, weighting="briggs", robust=0.0, chunk_rows=200,
        deconvolution={"niter": 300, "gain": 0.2, "mgain": 0.7, "auto_threshold": 3.0,
                       "max_cycles": 6})
    return ms, settings, truth["rows_per_block"]


def test_reference_imager_cleans_the_sources(observation):
    ms, settings, _ = observation
    lines = []
    out = reference.image_ms(ms, settings, progress=lines.append)
    assert out.cycles >= 2 and len(out.decisions) == out.cycles + 1
    assert out.stop_reason in ("threshold", "niter") and not out.decisions[-1].go_on
    assert len(lines) == out.cycles + 2  # density, psf/dirty, one per cycle
    assert out.psf[32, 32] == pytest.approx(1.0, abs=1e-6)
    assert np.abs(out.residual).max() < 0.1 * np.abs(out.dirty).max()
    model = out.components.to_image()
    assert model[29:36, 29:36].sum() == pytest.approx(1.0, rel=0.05)
    assert model[24:31, 21:28].sum() == pytest.approx(0.5, rel=0.1)  # 8 px east, 5 px south
    assert out.restored[32, 32] == pytest.approx(1.0, rel=0.05)
    assert out.beam.bmaj >= out.beam.bmin > 0
    # the final residual is the data minus the final model, re-gridded
    again = partials.normalise(parts.part_residual(ms, settings, out.components,
                                                parts.part_density(ms, settings)))["residual"]
    assert np.abs(again - out.residual).max() <= 1e-12 * np.abs(out.dirty).max()


def test_distributed_loop_equals_the_reference(observation):
    """The workflow's steps (4 parts by time, gathered sums, one minor cycle per level, the
    same decision) give the reference imager's components and residual."""
    ms, settings, nrows = observation
    ref = reference.image_ms(ms, settings)
    sels = np.array_split(np.arange(nrows), 4)

    def gathered(make):
        total = None
        for rows in sels:
            p = make(rows)
            total = p if total is None else total + p
        return partials.normalise(total)

    density = sum((parts.part_density(ms, settings, rows=r) for r in sels[1:]),
                  parts.part_density(ms, settings, rows=sels[0]))
    first = gathered(lambda r: parts.part_psf_dirty(ms, settings, density, rows=r))
    psf, residual = first["psf"], first["dirty"]
    params = CleanParams.from_settings(settings)
    limits = loop.LoopLimits.from_settings(settings)
    model = ComponentList.empty(64, 64)
    peak = float(np.abs(residual).max())
    decision = loop.decide(loop.LoopState(0, 0, peak, params.cycle_threshold(residual)), limits)
    cycle = iterations = 0
    while decision.go_on:
        minor = minor_cycle(residual, psf, params, iterations_done=iterations,
                            threshold=decision.threshold)
        model = model.merge(minor.components)
        iterations += minor.iterations
        cycle += 1
        residual = gathered(lambda r, m=model: parts.part_residual(ms, settings, m, density,
                                                                   rows=r))["residual"]
        decision = loop.decide(loop.LoopState(
            cycle, iterations, float(np.abs(residual).max()), params.cycle_threshold(residual),
            minor.peak_start, minor.stop_reason, minor.iterations), limits)
    assert (cycle, iterations, decision.reason) == (ref.cycles, ref.iterations,
                                                   ref.stop_reason)
    for name in ("x", "y", "scale"):
        np.testing.assert_array_equal(getattr(model, name), getattr(ref.components, name))
    np.testing.assert_allclose(model.flux, ref.components.flux, rtol=1e-6, atol=1e-9)
    assert np.abs(residual - ref.residual).max() <= 1e-6 * np.abs(ref.dirty).max()

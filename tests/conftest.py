"""Shared fixtures: simulated VLA Measurement Sets, built once per test session.

``small_ms``: VLA D, 20 integrations of 540 s around transit, 4 x 16 MHz at 1.4 GHz, RR LL,
6 point sources of the demo (1 Jy .. 5 mJy, at pixel centres of a 128 x 128 image at the
suggested 10 arcsec cell), 20 mJy noise per visibility part (image noise ~0.08 mJy).
``clean_ms``: the same observation with the noise off (DATA is the exact model).
Each returns ``SimulatedMS(path, truth)``; ``truth`` is the dict of ``<path>.sources.json``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import pytest

from htclean.imaging.simulation.simulate import DEMO_SOURCES, SimulationSpec, simulate


class SimulatedMS(NamedTuple):
    path: str
    truth: dict


def small_spec(**changes) -> SimulationSpec:
    """The small test observation (see the module docstring), with ``changes`` applied."""
    spec = replace(SimulationSpec.demo(), integration=540.0, sources=DEMO_SOURCES[:6],
                   image_size=128)
    return replace(spec, **changes)


@pytest.fixture(scope="session")
def small_ms(tmp_path_factory) -> SimulatedMS:
    path = str(tmp_path_factory.mktemp("small") / "small.ms")
    return SimulatedMS(path, simulate(path, small_spec()))


@pytest.fixture(scope="session")
def clean_ms(tmp_path_factory) -> SimulatedMS:
    path = str(tmp_path_factory.mktemp("clean") / "clean.ms")
    return SimulatedMS(path, simulate(path, small_spec(noise=0.0)))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The pool tests first: under ``-n 2 --dist loadgroup`` one worker then waits on the pool
    from the start while the other runs the rest (most of a pool test is HTCondor's time)."""
    items.sort(key=lambda item: item.get_closest_marker("pool") is None)

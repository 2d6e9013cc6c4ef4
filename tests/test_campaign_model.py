"""The campaign model (htclean model): the real planner's job counts, the test pool's
recorded 1-cycle run, HTClean's published HUDF figures within 30 %."""

from __future__ import annotations

from collections import Counter

import pytest

from htclean.workflows import graph
from htclean.workflows.campaign import campaign, htclean_graph, hudf, metrics, pool, simulate
from htclean.workflows.campaign.dag import INTERNAL

# The recorded run "fx2" on the idle test pool (tests/poolkit's tiny run: 2 parts, 64^2,
# 1 cycle, site condor, request_cpus 1; the minor cycle on the submit host, stage-ins only
# for the pool jobs' inputs; jobstate.log of its 3 levels, read with
# benchmarks/pool_cycle.py): DAGMAN_STARTED to DAGMAN_FINISHED 155 s, next-c00 to next-c01
# 48 s, 25 jobs of these kinds.
FX = {"wall_s": 155.0, "cycle_s": 48.0,
      "jobs": {"partition": 1, "grid": 2, "next": 2, "deconvolve": 1, "residual": 2,
               "restore": 1, "stage-out": 7, "stage-in": 3, "create-dir": 3,
               "sub-workflow": 2, "cleanup": 1}}


def fx_campaign(parts: int = 2, cycles: int = 1) -> campaign.Campaign:
    raw = {"data": {"ms": "/nowhere/obs.ms"}, "image": {"size": 64, "scale": "2asec"},
           "execution": {"site": "condor", "request_cpus": 1, "request_memory": "1GB",
                         "container": None},
           "partition": {"parts": parts}, "deconvolution": {"max_cycles": cycles}}
    return campaign.from_config(raw, ".", data_bytes=540e3, visibilities=2.9e3)


def test_the_graph_is_the_planners():
    c = fx_campaign(parts=12, cycles=3)
    nodes = htclean_graph.build(c, pool.load("testpool"))
    ctx = c.context()
    planned = Counter(j.split("-")[0] for j in graph.top_workflow(ctx).jobs)
    for k in (1, 2, 3):
        planned.update(j.split("-")[0] for j in graph.cycle_workflow(ctx, k)[0].jobs)
    planned.update(j.split("-")[0] for j in graph.final_workflow(ctx, 3)[0].jobs)
    planned["sub-workflow"] = planned.pop("cycle")
    modelled = Counter(n.kind for n in nodes if n.kind in planned and
                       (n.where != INTERNAL or n.kind == "sub-workflow"))
    assert modelled == planned


def test_the_recorded_test_pool_run_within_20_percent():
    p = pool.load("testpool")
    nodes = htclean_graph.build(fx_campaign(), p)
    s = metrics.summarise(nodes, simulate.simulate(nodes, p, seed=1))
    assert dict(s.jobs) == FX["jobs"]
    assert s.wall_s == pytest.approx(FX["wall_s"], rel=0.2)
    assert s.cycles[1].loop_s == pytest.approx(FX["cycle_s"], rel=0.2)


def test_the_readme_demo_cycle_on_the_idle_test_pool():
    # README, The cost of a cycle: 2 parts, 5 cycles, 55 s a cycle (53-57 s) on the idle pool
    p = pool.load("testpool")
    nodes = htclean_graph.build(fx_campaign(cycles=5), p)
    s = metrics.summarise(nodes, simulate.simulate(nodes, p, seed=1))
    loops = [c.loop_s for c in s.cycles if 1 <= c.cycle <= 5]
    assert sum(loops) / len(loops) == pytest.approx(55.0, rel=0.2)


def test_htclean_2023_figures_within_30_percent():
    s = hudf.htclean2023_run(pool.load("htclean2023"))
    for figure in hudf.PUBLISHED:
        assert figure.modelled(s) == pytest.approx(figure.published, rel=0.3), figure.name


def test_a_pool_file_with_an_unknown_key_is_refused(tmp_path):
    from htclean.imaging.errors import InputError

    bad = tmp_path / "p.yml"
    bad.write_text("slots: 3\n")
    with pytest.raises(InputError, match="slots"):
        pool.load(bad)
    assert {"testpool", "ospool", "htclean2023"} <= set(pool.shipped())

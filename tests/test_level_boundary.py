"""A pool run's level boundary between the minor cycle and the residual jobs (graph.py): each
level is next-cKK then cycle K+1's residual jobs; those read next's decision and write an
empty partial at once when it says stop; a level whose next can only stop plans none; the
local site's graph keeps a level per cycle."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from test_executables import run, tiny, write_config  # noqa: F401
from test_plan import make_plan, tiny_ms  # noqa: F401

from htclean.imaging.ms import partials
from htclean.workflows import graph, names

R = "run1"


def ids(wf) -> Counter:
    return Counter(j.split("-")[0] for j in wf.jobs)


@pytest.mark.parametrize("cycles", [1, 3])
def test_each_level_is_next_then_the_next_cycles_residual_jobs(tmp_path, tiny_ms,  # noqa: F811
                                                                cycles):
    _, ctx, _ = make_plan(tmp_path, tiny_ms, "condor", 9, deconvolution={"max_cycles": cycles})
    assert ctx.minor_cycle_in_next
    top = graph.top_workflow(ctx)
    assert [j for j in top.jobs if j.startswith("residual-")] == \
        [names.residual_job(1, i, 9) for i in range(9)]
    for k in range(1, cycles + 1):
        wf, inline = graph.cycle_workflow(ctx, k)
        jobs = list(wf.jobs)
        assert jobs[0] == names.next_job(k)  # the head: sums the parent level's partials
        ahead = k < cycles  # next-c(max_cycles) can only stop: no residual jobs after it
        assert ids(wf) == Counter({"next": 1, "cycle": 1, **(
            {"residual": 9, "gather": 3} if ahead else {})}), k
        roots = graph.residual_roots(ctx, k)
        assert roots == [names.residual_node(R, k, 1, j) for j in range(3)]
        assert set(roots) <= set(inline)  # the parent level's staging copies
        nxt = wf.jobs[names.next_job(k)]
        args = list(map(str, nxt.args))
        assert args[args.index("--gather") + 1:][:3] == roots
        assert {u.file.lfn for u in nxt.uses if u.file.lfn in roots} == set(roots)
        assert all(u.bypass for u in nxt.uses if u.file.lfn in roots)  # no stage-in
        carried = graph.carried(ctx, k)
        assert set(graph.residual_roots(ctx, k + 1)) <= set(carried) if ahead else \
            not any("-residual-c" in lfn and lfn.endswith(".npz") for lfn in carried)
        for i in range(9 if ahead else 0):
            job = wf.jobs[names.residual_job(k + 1, i, 9)]
            reads = {u.file.lfn for u in job.uses if u._type == "input"}
            assert {names.decision(R, k), names.model(R, k + 1)} <= reads
            assert names.decision(R, k) not in inline and names.model(R, k + 1) not in inline


def test_no_residual_jobs_where_next_can_only_stop(tmp_path, tiny_ms):  # noqa: F811
    _, ctx, _ = make_plan(tmp_path, tiny_ms, "condor", 2, deconvolution={"niter": 0})
    assert not graph.goes_on(ctx, 0)
    assert ids(graph.top_workflow(ctx))["residual"] == 0
    assert not any(lfn.startswith(f"{R}-residual-") for lfn in graph.carried(ctx, 0))


@pytest.mark.parametrize("where", ["auto", "submit"])
def test_the_local_site_keeps_a_cycle_per_level(tmp_path, tiny_ms, where):  # noqa: F811
    """The embedded engine's graph: a level per cycle, the minor cycle in a deconvolve job
    or (``submit``) in the next job above; no residual job reads a decision."""
    _, ctx, _ = make_plan(tmp_path, tiny_ms, "local", 3, execution={"deconvolve_on": where})
    assert ctx.minor_cycle_in_next == (where == "submit") and not graph.split_cycles(ctx)
    assert not any(j.startswith("residual-") for j in graph.top_workflow(ctx).jobs)
    wf, _ = graph.cycle_workflow(ctx, 1)
    first = names.residual_job(1, 0, 3) if where == "submit" else names.deconvolve_job(1)
    assert list(wf.jobs)[0] == first and list(wf.jobs)[-2] == names.next_job(1)
    job = wf.jobs[names.residual_job(1, 0, 3)]
    assert "--decision" not in map(str, job.args)


def decision(where: Path, go_on: bool) -> None:
    (where / "R-next-c00.json").write_text(json.dumps(
        {"go_on": go_on, "reason": "continue" if go_on else "threshold", "cycle": 0}))


def test_a_residual_job_after_a_stop_writes_an_empty_partial(tiny, tmp_path,  # noqa: F811
                                                             monkeypatch, capsys):
    write_config(tmp_path, tiny)
    (tmp_path / "R-model-c01.json").write_text("not read")
    decision(tmp_path, go_on=False)
    residual = ["--mode", "residual", "--part", "absent.vis.npz", "--model", "R-model-c01.json",
                "--decision", "R-next-c00.json"]
    for i in range(2):  # neither the part nor the model is read
        assert run("grid", [*residual, "--output", f"r{i}.npz"], tmp_path, monkeypatch) == 0
    empty = partials.load_partial(tmp_path / "r0.npz")
    assert partials.is_skipped(empty) and not empty.images
    # an inner gather passes one on; a root (or a mix with a real partial) is bad input
    assert run("gather", ["--inputs", "r0.npz", "r1.npz", "--output", "g.npz"],
               tmp_path, monkeypatch) == 0
    assert partials.is_skipped(partials.load_partial(tmp_path / "g.npz"))
    assert run("gather", ["--inputs", "g.npz", "--image-fits", "x.fits"],
               tmp_path, monkeypatch) == 2
    assert "the loop stopped" in capsys.readouterr().err
    (tmp_path / "R-next-c00.json").write_text("{}")
    assert run("grid", [*residual, "--output", "r.npz"], tmp_path, monkeypatch) == 2
    assert "not a decision" in capsys.readouterr().err


def test_a_residual_job_after_go_on_grids(tiny, tmp_path, monkeypatch):  # noqa: F811
    write_config(tmp_path, tiny)
    assert run("grid", ["--mode", "psf-dirty", "--part", str(tiny), "--output", "i.npz"],
               tmp_path, monkeypatch) == 0
    decision(tmp_path, go_on=True)
    from htclean.imaging.deconvolution import model as models

    (tmp_path / "m.json").write_text(models.to_json(models.empty(64, 64, 1), None))
    for d in ([], ["--decision", "R-next-c00.json"]):
        assert run("grid", ["--mode", "residual", "--part", str(tiny), "--model", "m.json",
                            *d, "--output", f"r{len(d)}.npz"], tmp_path, monkeypatch) == 0
    a, b = (partials.load_partial(tmp_path / f"r{n}.npz") for n in (0, 2))
    assert not partials.is_skipped(b) and a.images.keys() == b.images.keys() == {"residual"}
    assert (a.images["residual"] == b.images["residual"]).all()


def test_a_gather_refuses_empty_and_real_partials_together(tiny, tmp_path, monkeypatch,  # noqa: F811
                                                          capsys):
    write_config(tmp_path, tiny)
    (tmp_path / "m.json").write_text("not read")
    decision(tmp_path, go_on=False)
    assert run("grid", ["--mode", "residual", "--part", "absent.vis.npz", "--model", "m.json",
                        "--decision", "R-next-c00.json", "--output", "empty.npz"],
               tmp_path, monkeypatch) == 0
    assert run("grid", ["--mode", "psf-dirty", "--part", str(tiny), "--output", "real.npz"],
               tmp_path, monkeypatch) == 0
    for inputs in (["empty.npz", "real.npz"], ["real.npz", "empty.npz"]):
        assert run("gather", ["--inputs", *inputs, "--output", "g.npz"],
                   tmp_path, monkeypatch) == 2
        assert "empty.npz is an empty partial (the loop stopped), real.npz is not" \
            in capsys.readouterr().err
    assert not (tmp_path / "g.npz").exists()

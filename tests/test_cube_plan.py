"""htclean plan of a cube (image.mode cube): the documents validate and hold together on every
site, each output channel is its own chain of levels (job ids chNNNN-, its own configuration),
the cube job waits for every chain and nothing else does; bad input is one line, exit 2, at
plan time, with nothing written."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import tinyms
from test_plan import (
    EXEC_SITE,
    SITES,
    assert_valid,
    check_classads,
    check_graph,
    load_yaml,
    write_config,
)
from test_plan import schemas as schemas  # noqa: F401 (the fixture)

from htclean.workflows import cli, config, graph, names, serialize
from htclean.workflows.context import RunContext
from htclean.workflows.cube import group_contexts
from htclean.workflows.plan import plan

NCHAN = 8


@pytest.fixture(scope="module")
def line_ms(tmp_path_factory) -> Path:
    ms = tmp_path_factory.mktemp("ms") / "line.ms"
    tinyms.write_ms(str(ms), tinyms.TinyObs(ntime=12, nchan=NCHAN, dfreq=1e6))
    return ms


def cube_plan(tmp_path: Path, ms, site: str, parts: int, **image):
    data = {"ms": [str(m) for m in ms] if isinstance(ms, list) else str(ms)}
    cfg = write_config(tmp_path, "unused", site, parts, data=data,
                       image={"mode": "cube", **image}, weighting={"type": "briggs"})
    return cfg, plan(cfg, tmp_path / f"plan-{site}")


def kinds(doc: dict) -> Counter:
    """Job kinds with the channel tag dropped (ch0001-grid-c00-p000 -> grid)."""
    out: Counter = Counter()
    for j in doc["jobs"]:
        parts = j["id"].split("-")
        rest = parts[1:] if parts[0].startswith("ch") and parts[0][2:].isdigit() else parts
        out["gather-weights" if rest[:2] == ["gather", "weights"] else rest[0]] += 1
    return out


@pytest.mark.parametrize("site", SITES)
def test_a_cube_plan_validates_on_every_site(tmp_path, line_ms, schemas, site):  # noqa: F811
    _, result = cube_plan(tmp_path, line_ms, site, 2, start=2, nchan=6, width=2,
                          rest_frequency="1420.405752MHz")
    docs = {name: load_yaml(p) for name, p in result.files.items()
            if name.endswith(".yml") and name != "config.yml"}
    for kind, name in (("sc", "sites.yml"), ("tc", "transformations.yml"),
                       ("rc", "replicas.yml")):
        assert_valid(schemas[kind], docs[name], f"{site}/{name}")
    top = docs["workflow.yml"]
    assert_valid(schemas["wf"], top, f"{site}/workflow.yml")
    rc_lfns = {r["lfn"] for r in docs["replicas.yml"]["replicas"]}
    check_graph(top, docs["transformations.yml"], rc_lfns, EXEC_SITE[site], fan_in=4)
    assert sum(check_classads(j.get("profiles", {})) for j in top["jobs"]) > 0 or site == "local"
    # 3 output channels of 2 parts each: per channel 2 weights, a weights gather, 2 grids,
    # next-c00, (the minor cycle in next) cycle 1's 2 residual jobs and the SubWorkflow job
    # of its cycle 01; one partition and one cube job
    ahead = 6 if site != "local" else 0  # a pool site, the minor cycle on the submit host
    assert kinds(top) == Counter({"partition": 1, "weights": 6, "gather-weights": 3,
                                  "grid": 6, "next": 3, "cycle": 3, "cube": 1,
                                  **({"residual": ahead} if ahead else {})})
    jobs = {j["id"]: j for j in top["jobs"]}
    part = [str(a) for a in jobs[names.PARTITION]["arguments"]]
    assert part[part.index("--channels") + 1:part.index("--outputs")] == \
        ["2:4", "4:6", "6:8"]
    cube_parents = {d["id"] for d in top["jobDependencies"] if "cube" in d["children"]}
    assert cube_parents == {"ch0000-cycle-01", "ch0001-cycle-01", "ch0002-cycle-01"}
    assert not any("cube" in d["id"] for d in top["jobDependencies"])
    # only the cube job reads across channels; the channels' jobs each read their own files
    for job in top["jobs"]:
        if job["id"].startswith("ch"):
            tag = job["id"].split("-")[0]
            own = {u["lfn"] for u in job["uses"] if u["type"] == "input"}
            assert all(f"-{tag}-" in lfn for lfn in own if "-ch0" in lfn), job["id"]
            assert f"run1-{tag}-config.yml" in own or job["type"] != "job"
    cube = jobs["cube"]
    assert cube.get("profiles", {}).get("selector", {}).get("execution.site") == "local"
    args = [str(a) for a in cube["arguments"]]
    freqs = [float(a) for a in args[args.index("--frequencies") + 1:args.index("--width")]]
    assert freqs == pytest.approx([1.4e9 + 1e6 * (2.5 + 2 * g) for g in range(3)], rel=1e-12)
    assert float(args[args.index("--width") + 1]) == pytest.approx(2e6)
    # every channel has its own configuration: an mfs run of its channels
    resolved = config.read_yaml(result.files["config.yml"])
    ctx = RunContext.from_config(resolved, config.parse(resolved))
    for g, c in enumerate(group_contexts(ctx)):
        own = config.load(result.out_dir / f"config-ch{g:04d}.yml", check_files=False)[1]
        assert own["image"]["mode"] == "mfs" and own["output"]["group"] == g
        assert (own["image"]["start"], own["image"]["nchan"]) == (2 + 2 * g, 2)
        assert own["image"]["name"] == f"htclean-{g:04d}"
        for doc in (graph.cycle_workflow(c, 1)[0], graph.final_workflow(c, 1)[0]):
            d = serialize.as_dict(doc)
            assert_valid(schemas["wf"], d, f"{site}/ch{g:04d}")
            assert all(j["id"].startswith(f"ch{g:04d}-") for j in d["jobs"])
            inline = {r["lfn"] for r in d.get("replicaCatalog", {}).get("replicas", [])}
            check_graph(d, docs["transformations.yml"], inline, EXEC_SITE[site], fan_in=4)


def test_a_local_cube_runs_each_minor_cycle_in_next(tmp_path, line_ms):
    """On site local a cube's channels fold the minor cycle into next (execution.deconvolve_on
    auto), as a pool without a GPU does: a cycle's level is its residual jobs and its next; an
    mfs run on site local keeps its deconvolve job."""
    cfg, result = cube_plan(tmp_path, line_ms, "local", 1, start=2, nchan=4, width=2)
    resolved = config.read_yaml(result.files["config.yml"])
    ctx = RunContext.from_config(resolved, config.parse(resolved))
    assert not ctx.minor_cycle_in_next  # the top level has no minor cycle of its own
    for c in group_contexts(ctx):
        assert c.minor_cycle_in_next
        level = kinds(serialize.as_dict(graph.cycle_workflow(c, 2)[0]))
        assert level == Counter({"residual": 1, "next": 1, "cycle": 1}), level
        args = [str(a) for a in next(j for j in serialize.as_dict(
            graph.cycle_workflow(c, 2)[0])["jobs"] if j["id"].endswith("next-c02"))["arguments"]]
        assert args[args.index("--output-model") + 1].endswith("-model-c03.json")
    mfs = {**resolved, "image": {**resolved["image"], "mode": "mfs"},
           "output": {**resolved["output"], "group": None}}
    mctx = RunContext.from_config(mfs, config.parse(mfs))
    assert not mctx.minor_cycle_in_next
    assert "deconvolve" in kinds(serialize.as_dict(graph.cycle_workflow(mctx, 2)[0]))


def bad(tmp_path, capsys, ms, **image) -> str:
    cfg = write_config(tmp_path, "unused", "local", 2,
                       data={"ms": [str(m) for m in ms] if isinstance(ms, list) else str(ms),
                             **image.pop("data", {})},
                       image={"mode": "cube", **image})
    out = tmp_path / "plan"
    assert cli.main(["plan", str(cfg), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".plan")]
    return err[0]


def test_a_linefree_range_outside_the_window_is_refused(tmp_path, line_ms, capsys):
    err = bad(tmp_path, capsys, line_ms, data={"continuum": {"linefree": "0~1;6~8"}})
    assert "data.continuum.linefree" in err and "last channel 7" in err


def test_a_width_that_does_not_divide_is_refused(tmp_path, line_ms, capsys):
    err = bad(tmp_path, capsys, line_ms, start=1, width=2)  # 7 channels from 1
    assert "image.width" in err and "does not divide the 7 channels" in err
    err = bad(tmp_path, capsys, line_ms, nchan=6, width=4)  # caught by the configuration
    assert "image.width" in err and "image.nchan 6" in err


def test_a_cube_over_ms_whose_channels_differ_is_refused(tmp_path, line_ms, capsys):
    other = tmp_path / "other.ms"
    tinyms.write_ms(str(other), tinyms.TinyObs(ntime=6, nchan=NCHAN, dfreq=1e6, freq0=1.41e9))
    err = bad(tmp_path, capsys, [line_ms, other])
    assert "data.ms" in err and "other.ms" in err and "coincide" in err


def test_cube_and_mtmfs_do_not_mix(tmp_path, line_ms, capsys):
    cfg = write_config(tmp_path, str(line_ms), "local", 1, image={"mode": "cube"},
                       deconvolution={"nterms": 2})
    assert cli.main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "deconvolution.nterms" in err[0] and "mfs" in err[0]


def test_cube_keys_need_a_cube(tmp_path, line_ms, capsys):
    cfg = write_config(tmp_path, str(line_ms), "local", 1, image={"width": 2})
    assert cli.main(["validate", str(cfg)]) == 2
    assert "image.width: only applies to image.mode cube" in capsys.readouterr().err


def test_a_channel_selection_sets_nchan_and_the_reference_frequency(tmp_path, line_ms):
    """mfs with image.start: the plan writes image.nchan (to the end of the window) and, with
    nterms 2, the Taylor reference frequency of the selected channels only."""
    cfg = write_config(tmp_path, str(line_ms), "local", 1, image={"start": 4},
                       deconvolution={"nterms": 2})
    result = plan(cfg, tmp_path / "plan")
    image = config.read_yaml(result.files["config.yml"])["image"]
    assert (image["start"], image["nchan"]) == (4, NCHAN - 4)
    assert image["reference_frequency"] == pytest.approx(1.4e9 + 1e6 * 5.5, rel=1e-12)
    part = next(j for j in load_yaml(result.files["workflow.yml"])["jobs"]
                if j["id"] == names.PARTITION)
    args = [str(a) for a in part["arguments"]]
    assert args[args.index("--channels") + 1] == f"4:{NCHAN}"

"""Requests sized to the job (workflows/requests.py): small jobs ask for small slots, large
ones for more, never above execution.request_cpus / request_memory, as HTCondor parses them;
and the plan's thread count (which fixes the images' bits) stays the configuration's."""

from __future__ import annotations

from pathlib import Path

import pytest
import tinyms
import yaml

from htclean.workflows import config, graph, requests, serialize
from htclean.workflows.context import RunContext
from htclean.workflows.plan import plan

REMOTE = "osdf:///ospool/ap40/data/u/obs.ms.tar"
KEYS = ("request_cpus", "request_memory", "request_disk")


@pytest.fixture(scope="module")
def tiny_ms(tmp_path_factory) -> Path:
    ms = tmp_path_factory.mktemp("ms") / "obs.ms"
    tinyms.write_ms(str(ms), tinyms.TinyObs(ntime=12))
    return ms


def plan_jobs(where: Path, ms: str, size: int, parts: int, **sections) -> dict[str, dict]:
    """The condor profiles of every job of the top level, cycle-01 and final, by job id."""
    raw = {"data": {"ms": ms}, "image": {"size": size, "scale": "2asec"},
           "partition": {"parts": parts, "fan_in": 4}, "output": {"run_id": "run1"},
           "execution": {"site": "ospool", "staging": "osdf:///ospool/ap40/data/u/st"}}
    if "://" in ms:
        raw["data"].update(size="200GB", rows=100000)
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    where.mkdir(parents=True, exist_ok=True)
    cfg = where / "config.yml"
    cfg.write_text(yaml.safe_dump(raw))
    result = plan(cfg, where / "plan")
    resolved = config.read_yaml(result.files["config.yml"])
    ctx = RunContext.from_config(resolved, config.parse(resolved))
    docs = [yaml.safe_load(result.files["workflow.yml"].read_text()),
            serialize.as_dict(graph.cycle_workflow(ctx, 1)[0]),
            serialize.as_dict(graph.final_workflow(ctx, 1)[0])]
    jobs = {j["id"]: j["profiles"]["condor"] for d in docs for j in d["jobs"]
            if j["type"] == "job"}
    jobs["config"] = resolved
    return jobs


def memory(jobs: dict, job_id: str) -> int:
    return int(jobs[job_id]["request_memory"])


def test_small_jobs_ask_for_small_slots(tmp_path, tiny_ms):
    jobs = plan_jobs(tmp_path, str(tiny_ms), 64, 2, weighting={"type": "briggs"})
    for job_id in ("partition", "weights-p000", "grid-c00-p000", "gather-weights-g1-000",
                   "residual-c01-p000", "restore"):
        assert jobs[job_id]["request_cpus"] in ("1", "2"), job_id
        assert memory(jobs, job_id) <= 512, job_id      # was 8192 for every job
    assert jobs["grid-c00-p000"]["request_cpus"] == "1"   # a tiny part: one core
    assert jobs["gather-weights-g1-000"]["request_cpus"] == "1"
    assert jobs["partition"]["request_cpus"] == "1"
    # no deconvolve job on a condor plan: next-c00 runs minor cycle 1 on the plan's threads
    assert "deconvolve-c01" not in jobs
    assert jobs["next-c00"]["request_cpus"] == str(jobs["config"]["gridder"]["threads"])
    assert memory(jobs, "next-c00") == 1024              # the submit host's floor


def test_large_images_and_parts_ask_for_more_within_the_caps(tmp_path, tiny_ms):
    small = plan_jobs(tmp_path / "s", str(tiny_ms), 64, 2)
    large = plan_jobs(tmp_path / "l", REMOTE, 4096, 8,
                      execution={"request_memory": "16GB", "request_cpus": 4})
    for job_id in ("grid-c00-p000", "residual-c01-p000", "deconvolve-c01", "restore",
                   "gather-c00-g1-000", "next-c00"):
        if job_id in small:
            assert memory(large, job_id) > memory(small, job_id), job_id
    assert memory(large, "next-c00") > 1024
    # a 25 GB part and a 8192^2 PSF: the plan's threads (4), and the memory cap
    assert large["grid-c00-p000"]["request_cpus"] == "4"
    assert memory(large, "grid-c00-p000") == 16 * 1024
    assert memory(small, "partition") < memory(large, "partition") <= 16 * 1024
    assert large["gather-c00-g1-000"]["request_cpus"] == "1"
    assert memory(large, "gather-c00-g1-000") < 16 * 1024   # image-sized, not part-sized


def test_caps_hold_and_requests_parse_as_classads(tmp_path, tiny_ms):
    import classad2

    for name, ms, size, cpus, mem in (("a", REMOTE, 2048, 1, "3GB"),
                                      ("b", str(tiny_ms), 256, 3, "1GB")):
        jobs = plan_jobs(tmp_path / name, ms, size, 12, weighting={"type": "uniform"},
                         execution={"request_cpus": cpus, "request_memory": mem})
        cap = config.parse(jobs.pop("config"))["execution"]["request_memory"] // 2**20
        assert len(jobs) > 12
        for job_id, condor in jobs.items():
            values = {k: classad2.ExprTree(condor[k]).eval() for k in KEYS}
            assert all(isinstance(v, int) and v >= 1 for v in values.values()), job_id
            assert values["request_cpus"] <= cpus, job_id
            if not job_id.startswith("next-"):  # next: the submit host, its own estimate
                assert values["request_memory"] <= cap, job_id


def test_fewer_cpus_than_threads_keeps_the_planned_threads(tmp_path, tiny_ms):
    """Grid jobs of tiny parts ask for one CPU; the thread count the images' bits depend on
    is still execution.request_cpus, written into config.yml (imaging.cpus)."""
    jobs = plan_jobs(tmp_path, str(tiny_ms), 64, 2, execution={"request_cpus": 3})
    assert jobs["grid-c00-p000"]["request_cpus"] == "1"
    assert jobs["config"]["gridder"]["threads"] == 3


def settings(**changes) -> dict:
    s = {"image": {"nx": 2048, "ny": 2048, "psf_oversize": 2.0},
         "gridder": {"precision": "auto", "epsilon": 1e-5, "threads": 2, "chunk_rows": 200000},
         "deconvolution": {"nterms": 1, "algorithm": "hogbom", "scales": None},
         "execution": {"request_cpus": 2}}
    for key, value in changes.items():
        section, name = key.split("__")
        s[section] = {**s[section], name: value}
    return s


@pytest.mark.parametrize("category", ["grid", "residual", "gather", "next", "deconvolve",
                                      "restore", "weights"])
def test_estimates_grow_with_what_the_job_holds(category):
    job = requests.Job(category, "image" if category != "residual" else "residual", 4,
                       2**28, 2**30)

    def mem(**changes) -> int:
        return requests.estimate(settings(**changes), job)[1]

    base = mem()
    assert mem(image__nx=4096, image__ny=4096) > base
    if category in ("grid", "gather", "next", "deconvolve", "restore"):
        assert mem(deconvolution__nterms=2) > base
        assert mem(image__psf_oversize=1.0) < base
    if category in ("grid", "residual"):
        assert mem(gridder__epsilon=1e-7) > base             # double precision
        assert requests.estimate(settings(), requests.Job(category, part_bytes=2**20))[1] < base
    if category == "deconvolve":
        assert mem(deconvolution__algorithm="multiscale") > base


def test_gather_memory_does_not_grow_past_three_inputs():
    s = settings()
    two, three, many = (requests.estimate(s, requests.Job("gather", "image", n))[1]
                        for n in (2, 3, 64))
    assert two <= three == many

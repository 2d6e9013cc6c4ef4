"""htclean plan: every generated workflow and catalog against the Pegasus 5 schemas, and what
the schemas cannot check (transformations per site, file provenance, acyclicity, gather
fan-in, ClassAd expressions, disk requests, the job counts of the graph), for every site."""

from __future__ import annotations

import copy
import math
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import tinyms
import yaml

from htclean.workflows import cli, config, graph, names, properties, serialize
from htclean.workflows.context import RunContext
from htclean.workflows.plan import plan

SCHEMA_DIR = Path(os.environ.get("HTCLEAN_PEGASUS_SCHEMA",
                                 Path(__file__).resolve().parents[2] / "shared" / "pegasus-schema"))
SITES = ("local", "condor", "ospool", "path")
EXEC_SITE = {"local": "local", "condor": "condorpool", "ospool": "condorpool",
             "path": "condorpool"}


@pytest.fixture(scope="session")
def schemas():
    """Draft-7 validators of wf/sc/tc/rc-5.0.yml; skipped without the folder, except in CI."""
    if not (SCHEMA_DIR / "wf-5.0.yml").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Pegasus schemas are missing from {SCHEMA_DIR} (set "
                        "HTCLEAN_PEGASUS_SCHEMA)")
        pytest.skip(f"no Pegasus schemas in {SCHEMA_DIR} (set HTCLEAN_PEGASUS_SCHEMA)")
    import jsonschema
    import referencing
    from referencing import Registry, Resource

    docs = {p.name: yaml.safe_load(p.read_text()) for p in SCHEMA_DIR.glob("*.yml")}
    registry = Registry().with_resources(
        (name, Resource.from_contents(doc, default_specification=referencing.jsonschema.DRAFT7))
        for name, doc in docs.items())
    return {kind: jsonschema.Draft7Validator(docs[f"{kind}-5.0.yml"], registry=registry)
            for kind in ("wf", "sc", "tc", "rc")}


def assert_valid(validator, doc: dict, what: str) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(doc)]
    assert not errors, f"{what}: {errors[:3]}"


@pytest.fixture(scope="session")
def tiny_ms(tmp_path_factory) -> Path:
    ms = tmp_path_factory.mktemp("ms") / "obs.ms"
    tinyms.write_ms(str(ms), tinyms.TinyObs(ntime=12))  # 252 rows
    return ms


@pytest.fixture(scope="module")
def long_ms(tmp_path_factory) -> Path:
    """200 timestamps: enough for 200 parts along time (4200 rows)."""
    ms = tmp_path_factory.mktemp("ms") / "long.ms"
    tinyms.write_ms(str(ms), tinyms.TinyObs(ntime=200))
    return ms


def load_yaml(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def write_config(tmp_path: Path, ms: str, site: str, parts: int, **sections) -> Path:
    raw = {"data": {"ms": ms}, "image": {"size": 64, "scale": "2asec"},
           "partition": {"parts": parts, "fan_in": 4}, "output": {"run_id": "run1"},
           "execution": {"site": site, "project": "Proj", "requirements": "OpSysMajorVer >= 8",
                         "attributes": {"WantOSPoolGPUs": True}}}
    if site in ("ospool", "path"):
        raw["execution"]["staging"] = "osdf:///ospool/ap40/data/u/staging"
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    path = tmp_path / f"{site}-{parts}.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


def make_plan(tmp_path: Path, ms: Path, site: str, parts: int, **sections):
    """(plan directory, context, documents by name incl. cycle-01, cycle-02 and final)."""
    cfg = write_config(tmp_path, str(ms), site, parts, **sections)
    result = plan(cfg, tmp_path / f"plan-{site}-{parts}")
    resolved = config.read_yaml(result.files["config.yml"])
    ctx = RunContext.from_config(resolved, config.parse(resolved))
    docs = {name: load_yaml(p) for name, p in result.files.items()
            if name.endswith(".yml") and name != "config.yml"}
    docs["cycle-01"] = serialize.as_dict(graph.cycle_workflow(ctx, 1)[0])
    docs["cycle-02"] = serialize.as_dict(graph.cycle_workflow(ctx, 2)[0])
    docs["final"] = serialize.as_dict(graph.final_workflow(ctx, 2)[0])
    return result, ctx, docs


def tree_size(leaves: int, fan_in: int) -> int:
    """Gather jobs in a tree over ``leaves`` (one level at least)."""
    total, width = 0, leaves
    while True:
        width = math.ceil(width / fan_in)
        total += width
        if width == 1:
            return total


def check_graph(doc: dict, tc: dict, rc_lfns: set[str], exec_site: str, fan_in: int) -> None:
    """Transformations per site, one producer per file, acyclic, inputs from ancestors or the
    replica catalog, gather fan-in (the inner gather jobs and the root, the next job)."""
    sites = {t["name"]: {s["name"] for s in t["sites"]} for t in tc["transformations"]}
    jobs = {j["id"]: j for j in doc["jobs"]}
    producer: dict[str, str] = {}
    for job in doc["jobs"]:
        if job["type"] == "job":
            site = job.get("profiles", {}).get("selector", {}).get("execution.site", exec_site)
            assert site in sites[job["name"]], f"{job['id']}: {job['name']} not on {site}"
        for use in job["uses"]:
            if use["type"] == "output":
                assert use["lfn"] not in producer, f"{use['lfn']} produced twice"
                producer[use["lfn"]] = job["id"]
    parents: dict[str, set[str]] = {j: set() for j in jobs}
    for dep in doc.get("jobDependencies", []):
        for child in dep["children"]:
            parents[child].add(dep["id"])
    ancestors: dict[str, set[str]] = {}
    for job_id in jobs:  # jobs are listed parents first: a cycle shows as a missing key
        ancestors[job_id] = set()
        for p in parents[job_id]:
            assert p in ancestors, f"{p} -> {job_id}: not in topological order (cycle?)"
            ancestors[job_id] |= {p} | ancestors[p]
    for job in doc["jobs"]:
        for use in job["uses"]:
            if use["type"] == "input":
                lfn = use["lfn"]
                assert producer.get(lfn) in ancestors[job["id"]] or lfn in rc_lfns, \
                    f"{job['id']}: input {lfn} has no source"
        if job["id"].startswith(("gather-", "next-")):  # next is the image trees' root
            args = job["arguments"]
            start = args.index("--inputs" if job["id"].startswith("gather-") else "--gather") + 1
            n = next(i for i in range(start, len(args)) if str(args[i]).startswith("--")) - start
            assert 1 <= n <= fan_in, f"{job['id']}: fan-in {n} > {fan_in}"


CLASSAD_KEYS = ("requirements", "require_gpus", "periodic_remove")


def check_classads(profiles: dict) -> int:
    """Parse every ClassAd expression among condor profiles; returns how many there were."""
    import classad2

    condor = profiles.get("condor", {})
    exprs = [v for k, v in condor.items() if k in CLASSAD_KEYS or k.startswith("+")]
    for expr in exprs:
        classad2.ExprTree(str(expr))  # raises classad2.ClassAdException when malformed
    return len(exprs)


def kinds(doc: dict) -> Counter:
    return Counter(j["id"].split("-")[0] if not j["id"].startswith("gather-weights")
                   else "gather-weights" for j in doc["jobs"])


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("parts", [1, 8, 200])
def test_every_document_validates_and_holds_together(tmp_path, tiny_ms, long_ms, schemas, site,
                                                     parts):
    weighting = "natural" if parts == 8 else "briggs"
    ms = long_ms if parts > 12 else tiny_ms  # tiny_ms has 12 timestamps
    result, ctx, docs = make_plan(tmp_path, ms, site, parts, weighting={"type": weighting},
                                  gridder={"device": "gpu" if site == "ospool" else "auto"})
    for kind, name in (("sc", "sites.yml"), ("tc", "transformations.yml"),
                       ("rc", "replicas.yml")):
        assert_valid(schemas[kind], docs[name], f"{site}/{parts}/{name}")
    rc_lfns = {r["lfn"] for r in docs["replicas.yml"]["replicas"]}
    for name in ("workflow.yml", "cycle-01", "cycle-02", "final"):
        doc = docs[name]
        assert_valid(schemas["wf"], doc, f"{site}/{parts}/{name}")
        inline = {r["lfn"] for r in doc.get("replicaCatalog", {}).get("replicas", [])}
        check_graph(doc, docs["transformations.yml"], inline if inline else rc_lfns,
                    EXEC_SITE[site], fan_in=4)
        parsed = sum(check_classads(j.get("profiles", {})) for j in doc["jobs"])
        assert (parsed > 0) == (site != "local")  # requirements on every pool job
    for entry in docs["sites.yml"]["sites"]:
        check_classads(entry.get("profiles", {}))

    weighted = weighting != "natural"
    tree = tree_size(parts, 4)
    # the minor cycle: a deconvolve job of its own, or run by the next job, whose level then
    # ends with the next cycle's residual jobs (condor and path here: on the submit host;
    # ospool: on a GPU of the pool; local: the engine's graph)
    folded = ctx.minor_cycle_in_next
    assert folded == (site in ("condor", "path"))
    ahead = {"residual": parts} if folded else {}
    assert kinds(docs["workflow.yml"]) == Counter(  # next-cKK is the trees' root
        {"partition": 1, "grid": parts, "gather": (tree - 1) * (2 if folded else 1),
         "next": 1, "cycle": 1, **ahead, **({"weights": parts} if weighted else {}),
         **({"gather-weights": tree} if weighted and parts > 1 else {})})
    assert kinds(docs["cycle-02"]) == Counter(
        {"residual": parts, "gather": tree - 1, "next": 1, "cycle": 1,
         **({} if folded else {"deconvolve": 1})})
    assert kinds(docs["final"]) == Counter({"restore": 1})
    inline = {r["lfn"] for r in docs["cycle-02"]["replicaCatalog"]["replicas"]}
    m = 2 if folded else 1  # the model and state the level starts from, made by the one above
    assert inline == {names.config("run1"), names.psf_fits("run1"), names.model("run1", m),
                      names.state("run1", m), names.partitions("run1"),
                      *(graph.residual_roots(ctx, 2) if folded else
                        [names.residual_fits("run1", 1)]),
                      *(names.part("run1", i, parts) for i in range(parts)),
                      *([names.weights_root("run1", parts)] if weighted else [])}
    check_hand_off(docs, ctx)


def check_hand_off(docs: dict, ctx: RunContext) -> None:
    """next reads only its declared inputs; each SubWorkflow job declares what its level
    made for the levels below (so Pegasus orders it after them, hands their staging copies
    down and keeps them); the top level's files are named at the top staging copy first."""
    for name, k in (("workflow.yml", 0), ("cycle-01", 1), ("cycle-02", 2)):
        jobs = {j["id"]: j for j in docs[name]["jobs"]}
        nxt = jobs[names.next_job(k)]
        reads = {u["lfn"] for u in nxt["uses"] if u["type"] == "input"}
        args = set(nxt["arguments"])
        assert reads == {lfn for lfn in args if lfn.startswith("run1-")} - {
            lfn for u in nxt["uses"] if u["type"] == "output" for lfn in [u["lfn"]]}
        sub = jobs[names.cycle_job(k + 1)]
        made = {u["lfn"] for j in jobs.values() for u in j["uses"] if u["type"] == "output"}
        handed = {u["lfn"] for u in sub["uses"] if u["type"] == "input"}
        assert set(graph.carried(ctx, k)) <= handed <= made
        assert all(not u.get("registerReplica") for j in jobs.values() for u in j["uses"])
    top = graph.carried(ctx, 0)
    props = properties.properties(ctx)
    first = re.compile(props["pegasus.selector.replica.regex.rank.1"])
    assert props["pegasus.selector.replica"] == "Regex"
    for entry in docs["final"]["replicaCatalog"]["replicas"]:
        urls = [p["pfn"] for p in entry["pfns"]]
        ranked = [u for u in urls if first.fullmatch(u)]
        if entry["lfn"] in top:  # the top staging copy ranks first; the output copy remains
            assert len(urls) == 2 and ranked == [u for u in urls if f"/{ctx.run_id}/" in u]
            assert any(u.endswith(f"/outputs/{entry['lfn']}") for u in urls)
        else:
            assert len(urls) == 1 and not ranked


def test_the_graph_checks_catch_a_broken_graph(tmp_path, tiny_ms):
    """check_graph itself: a missing dependency, a file made twice, a gather too wide."""
    _, _, docs = make_plan(tmp_path, tiny_ms, "condor", 9)
    tc, rc = docs["transformations.yml"], {r["lfn"] for r in docs["replicas.yml"]["replicas"]}
    check_graph(docs["workflow.yml"], tc, rc, "condorpool", fan_in=4)
    with pytest.raises(AssertionError, match="fan"):
        check_graph(docs["workflow.yml"], tc, rc, "condorpool", fan_in=2)
    broken = copy.deepcopy(docs["workflow.yml"])
    broken["jobDependencies"] = [d for d in broken["jobDependencies"] if d["id"] != "partition"]
    with pytest.raises(AssertionError, match="no source"):
        check_graph(broken, tc, rc, "condorpool", fan_in=4)
    twice = copy.deepcopy(docs["workflow.yml"])
    twice["jobs"][1]["uses"].append({"lfn": names.partitions("run1"), "type": "output"})
    with pytest.raises(AssertionError, match="produced twice"):
        check_graph(twice, tc, rc, "condorpool", fan_in=4)


def test_subworkflow_jobs_and_pool_profiles(tmp_path, tiny_ms):
    import classad2

    _, ctx, docs = make_plan(tmp_path, tiny_ms, "ospool", 3, gridder={"device": "gpu"})
    top = {j["id"]: j for j in docs["workflow.yml"]["jobs"]}
    sub = top["cycle-01"]
    assert sub["type"] == "pegasusWorkflow" and sub["file"] == "cycle-01.yml"
    args = sub["arguments"]
    assert args[args.index("--basename") + 1] == "cycle-01"
    assert args[args.index("--output-sites") + 1] == "local"
    assert args[args.index("--staging-site") + 1] == "condorpool=staging"
    assert "--conf" not in args and sub["profiles"]["dagman"]["RETRY"] == "0"
    assert top["next-c00"]["profiles"]["selector"]["execution.site"] == "local"
    grid, root = top["grid-c00-p000"]["profiles"], top["next-c00"]["profiles"]
    assert grid["dagman"]["RETRY"] == "3 UNLESS-EXIT 2" and grid["condor"]["request_gpus"] == "1"
    assert "request_gpus" not in root["condor"] and "gather-c00-g1-000" not in top  # 3 parts
    assert int(root["dagman"]["PRIORITY"]) > int(grid["dagman"]["PRIORITY"])
    pool = next(s for s in docs["sites.yml"]["sites"] if s["name"] == "condorpool")
    assert pool["profiles"]["condor"]["universe"] == "container"
    assert check_classads(grid) == 2 and check_classads(pool["profiles"]) == 3
    with pytest.raises(classad2.ClassAdException):
        classad2.ExprTree("Capability >= && 8")
    staging = next(s for s in docs["sites.yml"]["sites"] if s["name"] == "staging")
    assert staging["profiles"]["pegasus"]["auxillary.local"] == "true"
    tc = docs["transformations.yml"]
    assert tc["containers"][0]["type"] == "singularity"
    assert all(s["type"] == "installed" for t in tc["transformations"] for s in t["sites"])


@pytest.mark.parametrize(("device", "deconvolve_on", "where"),
                         [("auto", "auto", "local"), ("cpu", "submit", "local"),
                          ("gpu", "auto", "condorpool"), ("cpu", "pool", "condorpool")])
def test_the_minor_cycle_runs_on_the_submit_host_unless_it_wants_a_gpu(
        tmp_path, tiny_ms, device, deconvolve_on, where):
    """execution.deconvolve_on: the minor cycle runs on the submit host, inside the next job
    of the cycle before (no negotiation and no job of its own on the cycle's serial path),
    unless it runs on a GPU or is sent to the pool, as a deconvolve job of the level; its
    transformation is catalogued where it runs, and the inputs it reads from earlier levels
    are marked for bypass (a job on the submit host reads them where they are)."""
    _, _, docs = make_plan(tmp_path, tiny_ms, "condor", 2, gridder={"device": device},
                           execution={"deconvolve_on": deconvolve_on})
    sites = {t["name"]: [s["name"] for s in t["sites"]]
             for t in docs["transformations.yml"]["transformations"]}
    assert sites["htclean-deconvolve"] == [where] and sites["htclean-next"] == ["local"]
    ids = {j["id"] for j in docs["cycle-02"]["jobs"]}
    if where == "local":  # next-c01 ran minor cycle 2 before this level: no deconvolve here
        assert "deconvolve-c02" not in ids
        job = next(j for j in docs["cycle-01"]["jobs"] if j["id"] == "next-c01")
        args = job["arguments"]
        assert args[args.index("--output-model") + 1] == "run1-model-c02.json"
        assert args[args.index("--model") + 1] == "run1-model-c01.json"
        assert job["profiles"]["selector"]["execution.site"] == "local"
        external = {"run1-psf.fits", "run1-model-c01.json", "run1-deconvolve-c01.json"}
        assert all(u.get("bypass") for u in job["uses"] if u["lfn"] in external), job["uses"]
        return
    job = next(j for j in docs["cycle-02"]["jobs"] if j["id"] == "deconvolve-c02")
    assert "selector" not in job.get("profiles", {})
    assert ("request_gpus" in job["profiles"]["condor"]) == (device == "gpu")
    external = {"run1-psf.fits", "run1-model-c01.json", "run1-deconvolve-c01.json"}
    assert all(u.get("bypass") for u in job["uses"] if u["lfn"] in external), job["uses"]


def test_jobs_use_an_installed_pegasus_instead_of_the_worker_package(tmp_path, tiny_ms,
                                                                   monkeypatch):
    """PEGASUS_HOME (which makes pegasus-plan ship no worker package to a site's jobs): on the
    submit host, its own Pegasus found on PATH at plan time; on the pool, only where
    execution.pegasus_home says Pegasus is installed there."""
    home = tmp_path / "pegasus"
    (home / "bin").mkdir(parents=True)
    for tool in ("pegasus-plan", "pegasus-kickstart"):
        (home / "bin" / tool).write_text("#!/bin/sh\n")
        (home / "bin" / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{home / 'bin'}:{os.environ['PATH']}")

    def env(docs: dict) -> dict[str, dict]:
        return {s["name"]: s.get("profiles", {}).get("env", {})
                for s in docs["sites.yml"]["sites"]}
    _, _, docs = make_plan(tmp_path, tiny_ms, "condor", 2)
    assert env(docs)["local"]["PEGASUS_HOME"] == str(home)
    assert "PEGASUS_HOME" not in env(docs)["condorpool"]
    (tmp_path / "b").mkdir()
    _, _, docs = make_plan(tmp_path / "b", tiny_ms, "condor", 2,
                           execution={"pegasus_home": "/opt/pegasus"})
    assert env(docs)["condorpool"]["PEGASUS_HOME"] == "/opt/pegasus"
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no Pegasus on PATH: nothing assumed
    (tmp_path / "c").mkdir()
    _, _, docs = make_plan(tmp_path / "c", tiny_ms, "condor", 2)
    assert "PEGASUS_HOME" not in env(docs)["local"]


def test_request_disk_grows_with_the_inputs(tmp_path):
    def disk(size: str) -> dict[str, int]:
        sub = tmp_path / size
        sub.mkdir()
        cfg = write_config(sub, "osdf:///ospool/ap40/data/u/obs.ms.tar", "ospool", 4,
                           data={"size": size, "rows": 1000})
        result = plan(cfg, sub / "plan")
        jobs = load_yaml(result.files["workflow.yml"])["jobs"]
        return {j["id"]: int(j["profiles"]["condor"]["request_disk"]) for j in jobs
                if j["type"] == "job"}

    small, large = disk("1GB"), disk("100GB")
    margin_kib = 1e9 / 1024
    assert large["partition"] > small["partition"] >= 2 * 1e9 / 1024 + margin_kib - 1
    assert large["grid-c00-p000"] > small["grid-c00-p000"]
    assert large["next-c00"] == small["next-c00"]  # the tree's root reads image-size partials


def test_next_asks_for_the_memory_its_gather_holds():
    """next's request_memory (the submit host's job) covers what it was measured to use at
    4096^2 (998 MB: the 2x PSF and the dirty image), and grows with nterms and the image."""
    from types import SimpleNamespace

    from htclean.workflows import profiles

    def need(n: int, nterms: int = 1, oversize: float = 2.0) -> int:
        ctx = SimpleNamespace(image_shape=(n, n), settings={
            "image": {"psf_oversize": oversize}, "deconvolution": {"nterms": nterms}})
        return profiles.next_memory_mb(ctx)

    assert need(512) == profiles.NEXT_MEMORY_MB
    assert need(4096) > 998 * 1.2
    assert need(4096, nterms=2) > need(4096) > need(4096, oversize=1.0)
    assert need(8192) > need(4096)


def test_same_inputs_same_bytes(tmp_path, tiny_ms):
    """A second plan, in another process with another hash seed, writes the same workflow."""
    a, _, _ = make_plan(tmp_path, tiny_ms, "condor", 5)
    cfg = write_config(tmp_path, str(tiny_ms), "condor", 5)
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-m", "htclean.workflows.cli", "plan", str(cfg), "-o",
                    str(tmp_path / "b")], check=True, env=env, capture_output=True)
    for name in ("workflow.yml", "transformations.yml"):
        assert a.files[name].read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_bad_configuration_or_occupied_directory_writes_nothing(tmp_path, tiny_ms, capsys):
    bad = write_config(tmp_path, str(tiny_ms), "local", 2, image={"size": 63})
    out = tmp_path / "out"
    assert cli.main(["plan", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "image.size" in err
    assert not out.exists()
    assert cli.main(["plan", str(bad), "-o", str(out), "--site", "ospool"]) == 2
    assert not out.exists() and list(tmp_path.glob(".out*")) == []
    good = write_config(tmp_path, str(tiny_ms), "local", 2)
    assert cli.main(["plan", str(good), "-o", str(out)]) == 0
    assert "pegasus-plan --conf" in capsys.readouterr().out
    before = (out / "workflow.yml").read_bytes()
    assert cli.main(["plan", str(good), "-o", str(out)]) == 2  # a plan is there: no --force
    assert (out / "workflow.yml").read_bytes() == before
    assert cli.main(["plan", str(good), "-o", str(out), "--force"]) == 0
    too_many = write_config(tmp_path, str(tiny_ms), "local", 300)
    assert cli.main(["plan", str(too_many), "-o", str(tmp_path / "o2")]) == 2
    assert "252 rows" in capsys.readouterr().err


def test_a_tar_without_a_measurement_set_is_refused_before_anything_is_written(tmp_path):
    import tarfile

    junk = tmp_path / "junk.ms.tar"
    (tmp_path / "notes.txt").write_text("not a table")
    with tarfile.open(junk, "w") as tar:
        tar.add(tmp_path / "notes.txt", arcname="junk.ms/notes.txt")
    cfg = write_config(tmp_path, str(junk), "local", 2)
    out = tmp_path / "plan"
    assert cli.main(["plan", str(cfg), "-o", str(out)]) == 2
    assert not out.exists()


def test_the_container_can_be_switched_off(tmp_path, tiny_ms):
    _, _, docs = make_plan(tmp_path, tiny_ms, "condor", 1, execution={"container": None})
    tc = docs["transformations.yml"]
    assert "containers" not in tc
    assert all("container" not in site for t in tc["transformations"] for site in t["sites"])


@pytest.mark.parametrize("image, where", [
    ("/cvmfs/singularity.opensciencegrid.org/htclean/htclean:0.1.0", "condorpool"),
    ("osdf:///ospool/ap40/data/u/containers/htclean.sif", None),
    ("/data/images/htclean.sif", "local")])
def test_the_image_is_used_where_it_lives(tmp_path, tiny_ms, image, where):
    """Pegasus's container staging bypass: no stage-in job copies the image."""
    _, _, docs = make_plan(tmp_path, tiny_ms, "ospool", 1, execution={"container": image})
    box = docs["transformations.yml"]["containers"][0]
    assert box["bypass"] is True and box["image"].endswith(image.split("://")[-1])
    assert box.get("image.site") == where


def test_validate_refuses_an_image_name_the_planner_refuses(tmp_path, tiny_ms, capsys):
    cfg = write_config(tmp_path, str(tiny_ms), "ospool", 1, execution={
        "container": "osdf:///ospool/ap40/data/u/containers/htclean-0.1.0.sif"})
    assert cli.main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "execution.container" in err[0] and "htclean-0_1_0.sif" in err[0]


@pytest.mark.parametrize("site", SITES)
def test_several_ms_are_all_catalogued_and_partitioned(tmp_path, tiny_ms, schemas, site):
    """data.ms a list: each MS tarred, named in replicas.yml and read by the partition job;
    the plan validates and holds together on every site."""
    other = tmp_path / "other.ms"
    tinyms.write_ms(str(other), tinyms.TinyObs(ntime=6, freq0=1.7e9))
    result, ctx, docs = make_plan(tmp_path, tiny_ms, site, 3,
                                  data={"ms": [str(tiny_ms), str(other)]})
    assert ctx.ms_lfns == ("obs.ms.tar", "other.ms.tar")
    assert {p.name for p in (result.out_dir / "inputs").iterdir()} == set(ctx.ms_lfns)
    rc = {r["lfn"]: r for r in docs["replicas.yml"]["replicas"]}
    assert set(ctx.ms_lfns) <= set(rc)
    assert_valid(schemas["rc"], docs["replicas.yml"], "replicas.yml")
    assert_valid(schemas["wf"], docs["workflow.yml"], "workflow.yml")
    check_graph(docs["workflow.yml"], docs["transformations.yml"], set(rc), EXEC_SITE[site],
                fan_in=4)
    part = next(j for j in docs["workflow.yml"]["jobs"] if j["id"] == names.PARTITION)
    args = [str(a) for a in part["arguments"]]
    assert args[args.index("--ms") + 1:args.index("--axis")] == list(ctx.ms_lfns)
    assert {u["lfn"] for u in part["uses"] if u["type"] == "input"} >= set(ctx.ms_lfns)


def test_more_ms_than_parts_is_refused(tmp_path, tiny_ms, capsys):
    other = tmp_path / "other.ms"
    tinyms.write_ms(str(other), tinyms.TinyObs(ntime=6))
    cfg = write_config(tmp_path, str(tiny_ms), "local", 1)
    raw = yaml.safe_load(cfg.read_text())
    raw["data"]["ms"] = [str(tiny_ms), str(other)]
    cfg.write_text(yaml.safe_dump(raw))
    assert cli.main(["plan", str(cfg), "-o", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "partition.parts" in err[0] and "2 Measurement Sets" in err[0]
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("site", SITES)
def test_nterms_2_plan_sets_the_reference_frequency_and_the_taylor_products(tmp_path, tiny_ms,
                                                                            schemas, site):
    """The default reference frequency is the mean over the imaged samples of every MS (tiny
    MS: 4 channels from 1.4 GHz, 8 MHz apart, 252 rows; other: 4 from 1.7 GHz, 126 rows);
    restore declares the multi-term and primary-beam products."""
    other = tmp_path / "other.ms"
    tinyms.write_ms(str(other), tinyms.TinyObs(ntime=6, freq0=1.7e9))
    result, ctx, docs = make_plan(tmp_path, tiny_ms, site, 2,
                                  data={"ms": [str(tiny_ms), str(other)]},
                                  deconvolution={"nterms": 2},
                                  image={"primary_beam": True})
    expect = (252 * (1.4e9 + 12e6) + 126 * (1.7e9 + 12e6)) / (252 + 126)
    assert ctx.settings["image"]["reference_frequency"] == pytest.approx(expect, rel=1e-12)
    restore = next(j for j in docs["final"]["jobs"] if j["id"] == names.RESTORE)
    outputs = {u["lfn"] for u in restore["uses"] if u["type"] == "output"}
    assert {"htclean-image-tt0.fits", "htclean-image-tt1.fits", "htclean-alpha.fits",
            "htclean-alpha-error.fits", "htclean-pb.fits", "htclean-image-tt0-pb.fits",
            "htclean-alpha-pb.fits", "htclean-alpha.png"} <= outputs
    assert "htclean-image.fits" not in outputs
    rc_lfns = {r["lfn"] for r in docs["replicas.yml"]["replicas"]}
    for name in ("workflow.yml", "cycle-01", "cycle-02", "final"):
        assert_valid(schemas["wf"], docs[name], name)
        inline = {r["lfn"] for r in docs[name].get("replicaCatalog", {}).get("replicas", [])}
        check_graph(docs[name], docs["transformations.yml"], inline or rc_lfns,
                    EXEC_SITE[site], fan_in=4)


def test_nterms_2_from_a_url_needs_a_reference_frequency(tmp_path, capsys):
    cfg = write_config(tmp_path, "osdf:///ospool/ap40/data/u/obs.ms.tar", "condor", 2,
                       data={"size": "1GB"}, deconvolution={"nterms": 2})
    assert cli.main(["plan", str(cfg), "-o", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "image.reference_frequency" in err[0]
    raw = yaml.safe_load(cfg.read_text())
    raw["image"]["reference_frequency"] = "1.5GHz"
    cfg.write_text(yaml.safe_dump(raw))
    assert cli.main(["plan", str(cfg), "-o", str(tmp_path / "p")]) == 0


def test_a_planned_reference_frequency_does_not_block_resume(tmp_path, tiny_ms):
    from htclean.workflows.commands.run import check_resumable

    cfg = write_config(tmp_path, str(tiny_ms), "local", 1, deconvolution={"nterms": 2})
    plan(cfg, tmp_path / "p", site="local")
    check_resumable(str(cfg), tmp_path / "p")  # the plan filled image.reference_frequency
    raw = yaml.safe_load(cfg.read_text())
    raw["image"]["reference_frequency"] = "1.2GHz"
    cfg.write_text(yaml.safe_dump(raw))
    with pytest.raises(Exception, match="image.reference_frequency"):
        check_resumable(str(cfg), tmp_path / "p")


def test_the_primary_beam_needs_one_pointing_at_the_image_centre(tmp_path, tiny_ms, capsys):
    """Two MSs pointed 36 arcsec apart, or an image centre away from the pointing: refused
    with one line (the beam is modelled at the image centre); one pointing plans."""
    other = tmp_path / "other.ms"
    tinyms.write_ms(str(other), tinyms.TinyObs(ntime=6, ra=1.2 + 36 * tinyms.ASEC / 0.825))
    cfg = write_config(tmp_path, str(tiny_ms), "local", 2, image={"primary_beam": True},
                       data={"ms": [str(tiny_ms), str(other)]})
    assert cli.main(["plan", str(cfg), "-o", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "image.primary_beam: other.ms.tar" not in err[0]
    assert "image.primary_beam: other.ms points 36" in err[0]
    cfg = write_config(tmp_path, str(tiny_ms), "local", 2,
                       image={"primary_beam": True, "phase_centre": "04h35m00s +34d22m00s"})
    assert cli.main(["plan", str(cfg), "-o", str(tmp_path / "b")]) == 2
    assert "from the image centre" in capsys.readouterr().err
    cfg = write_config(tmp_path, str(tiny_ms), "local", 2, image={"primary_beam": True})
    assert cli.main(["plan", str(cfg), "-o", str(tmp_path / "c")]) == 0


def test_the_workflow_carries_dagman_settings_itself(tmp_path, tiny_ms):
    """DAGMan's log scan interval travels in the plan (the local site's env profiles, which
    Pegasus writes into the top level's DAGMan submit file; the levels below inherit it), not
    in the environment of the user who runs pegasus-plan or pegasus-run."""
    from htclean.workflows.context import DAGMAN_ENV

    result, _, docs = make_plan(tmp_path, tiny_ms, "condor", 2)
    local = next(s for s in docs["sites.yml"]["sites"] if s["name"] == "local")
    assert DAGMAN_ENV.items() <= local["profiles"]["env"].items()
    assert result.command.startswith("pegasus-plan ")
    (tmp_path / "b").mkdir()
    _, _, docs = make_plan(tmp_path / "b", tiny_ms, "local", 2)  # no DAGMan there
    local = next(s for s in docs["sites.yml"]["sites"] if s["name"] == "local")
    assert not DAGMAN_ENV.keys() & local.get("profiles", {}).get("env", {}).keys()

"""Toy workflows for the local engine's tests and benchmark, written with the Pegasus API.

``toy`` is a small executable that reads its inputs, writes a deterministic output per
``--outputs`` name, a job record, and can sleep, fail or note how many toys run at once;
``toy-next`` writes the next level of a nested workflow with an inline replica catalog, as
htclean's ``next`` job does.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

from Pegasus.api import (
    Directory,
    File,
    FileServer,
    Job,
    Operation,
    Properties,
    ReplicaCatalog,
    Site,
    SiteCatalog,
    SubWorkflow,
    Transformation,
    TransformationCatalog,
    Workflow,
)

TOY = f"""#!{sys.executable}
import argparse, hashlib, json, os, sys, time
p = argparse.ArgumentParser()
p.add_argument("--name", required=True)
p.add_argument("--inputs", nargs="*", default=[])
p.add_argument("--outputs", nargs="*", default=[])
p.add_argument("--record")
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--fail-if", help="exit 3 while this file exists")
p.add_argument("--markers", help="directory where running toys leave a marker")
a = p.parse_args()
if os.environ.get("HTCLEAN_INJECT_FAILURE") == "1":
    for out in a.outputs:
        with open(".partial-" + out, "w") as fh:
            fh.write("junk")
    print(f"toy {{a.name}}: injected failure", file=sys.stderr)
    sys.exit(1)
if a.fail_if and os.path.exists(a.fail_if):
    print(f"toy {{a.name}}: error: told to fail ({{a.fail_if}} exists)", file=sys.stderr)
    sys.exit(3)
seen = 1
if a.markers:
    marker = os.path.join(a.markers, f"{{a.name}}.{{os.getpid()}}")
    open(marker, "w").close()
t0 = time.time()
h = hashlib.sha256(a.name.encode())
nbytes = 0
for path in a.inputs:
    data = open(path, "rb").read()
    nbytes += len(data)
    h.update(data)
deadline = time.time() + a.sleep
while time.time() < deadline:
    if a.markers:
        seen = max(seen, len(os.listdir(a.markers)))
    time.sleep(0.02)
if a.markers:
    seen = max(seen, len(os.listdir(a.markers)))
    os.unlink(marker)
print(f"toy {{a.name}} ran")
for out in a.outputs:
    tmp = ".tmp-" + out
    with open(tmp, "w") as fh:
        fh.write(f"{{a.name}} {{h.hexdigest()}} {{seen}}\\n")
    os.replace(tmp, out)
if a.record:
    rec = {{"job": a.name, "executable": "toy", "wall_s": time.time() - t0, "cpu_s": 0.01,
           "max_rss_mb": 10.0 + len(a.name), "bytes_read": nbytes, "bytes_written": 100,
           "visibilities": 1000, "device": "cpu", "exit_status": 0}}
    with open(a.record + ".tmp", "w") as fh:
        json.dump(rec, fh)
    os.replace(a.record + ".tmp", a.record)
"""

TOY_NEXT = f"""#!{sys.executable}
import argparse, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import enginetoys
p = argparse.ArgumentParser()
p.add_argument("--level", type=int, required=True)
p.add_argument("--last", type=int, required=True)
p.add_argument("--storage", required=True)
p.add_argument("--input", required=True)
p.add_argument("--workflow", required=True)
p.add_argument("--fail-if")
a = p.parse_args()
wf = enginetoys.level_workflow(a.level, a.last, a.storage, a.input, a.fail_if)
with open(".tmp-" + a.workflow, "w") as fh:
    wf.write(fh)
import os
os.replace(".tmp-" + a.workflow, a.workflow)
"""


# The cheapest job that still writes its declared outputs (the benchmark's transformation).
TOUCH = """#!/bin/sh
for f in "$@"; do : > "$f"; done
"""


def write_tools(root: Path) -> dict[str, Path]:
    """The toy executables under ``root/bin``: toy, toy-next and touch."""
    bindir = root / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    tools = {}
    for name, text in (("toy", TOY), ("toy-next", TOY_NEXT), ("touch", TOUCH)):
        path = bindir / name
        path.write_text(textwrap.dedent(text))
        path.chmod(0o755)
        tools[name] = path
    return tools


def write_plan(plan: Path, workflow: Workflow, inputs: dict[str, str] | None = None,
               retry: int | None = 2, extra: dict[str, str] | None = None) -> Path:
    """Write the catalogs and properties ``htclean plan`` would: site local with its storage
    in ``plan/outputs``; the toys in the transformation catalog; ``inputs`` (lfn -> text)
    as files in ``plan/inputs`` named by the replica catalog; ``extra`` properties."""
    plan.mkdir(parents=True, exist_ok=True)
    tools = write_tools(plan)
    storage = plan / "outputs"
    sc = SiteCatalog()
    local = Site("local")
    local.add_directories(
        Directory(Directory.SHARED_SCRATCH, str(plan / "scratch"))
        .add_file_servers(FileServer(f"file://{plan / 'scratch'}", Operation.ALL)),
        Directory(Directory.LOCAL_STORAGE, str(storage))
        .add_file_servers(FileServer(f"file://{storage}", Operation.ALL)))
    sc.add_sites(local)
    sc.write(str(plan / "sites.yml"))
    tc = TransformationCatalog()
    for name, path in tools.items():
        tc.add_transformations(Transformation(name, site="local", pfn=str(path),
                                              is_stageable=False))
    tc.write(str(plan / "transformations.yml"))
    rc = ReplicaCatalog()
    (plan / "inputs").mkdir(exist_ok=True)
    for lfn, text in (inputs or {}).items():
        (plan / "inputs" / lfn).write_text(text)
        rc.add_replica("local", lfn, f"file://{plan / 'inputs' / lfn}")
    rc.write(str(plan / "replicas.yml"))
    props = Properties()
    if retry is not None:
        props["dagman.retry"] = str(retry)
    props["pegasus.catalog.site.file"] = str(plan / "sites.yml")
    props["pegasus.catalog.transformation.file"] = str(plan / "transformations.yml")
    props["pegasus.catalog.replica"] = "YAML"
    props["pegasus.catalog.replica.file"] = str(plan / "replicas.yml")
    for key, value in (extra or {}).items():
        props[key] = value
    props.write(str(plan / "pegasus.properties"))
    workflow.write(str(plan / "workflow.yml"))
    return storage


def toy_job(name: str, inputs: list[str], outputs: list[str], sleep: float = 0.0,
            fail_if: str | None = None, markers: str | None = None,
            record: bool = False) -> Job:
    """A ``toy`` job with id ``name``."""
    job = Job("toy", _id=name)
    args: list = ["--name", name]
    if inputs:
        args += ["--inputs", *[File(i) for i in inputs]]
    outs = list(outputs) + ([f"{name}.record.json"] if record else [])
    if outputs:
        args += ["--outputs", *[File(o) for o in outputs]]
    if record:
        args += ["--record", File(f"{name}.record.json")]
    if sleep:
        args += ["--sleep", str(sleep)]
    if fail_if:
        args += ["--fail-if", fail_if]
    if markers:
        args += ["--markers", markers]
    job.add_args(*args)
    if inputs:
        job.add_inputs(*[File(i) for i in inputs])
    if outs:
        job.add_outputs(*[File(o) for o in outs], stage_out=True, register_replica=False)
    return job


def diamond(sleep: float = 0.0, fail_if: str | None = None, markers: str | None = None,
            width: int = 3) -> Workflow:
    """split -> work-0..width-1 -> join, reading ``seed.txt``."""
    wf = Workflow("diamond")
    split = toy_job("split", ["seed.txt"], ["half.txt"], record=True)
    works = [toy_job(f"work-{i}", ["half.txt"], [f"part-{i}.txt"], sleep=sleep,
                     fail_if=fail_if if i == 1 else None, markers=markers, record=True)
             for i in range(width)]
    join = toy_job("join", [f"part-{i}.txt" for i in range(width)], ["result.txt"], record=True)
    wf.add_jobs(split, *works, join)
    return wf


def level_workflow(level: int, last: int, storage: str, previous: str,
                   fail_if: str | None = None) -> Workflow:
    """Level ``level`` of a nested run: work-L reads the previous level's file (named in the
    inline replica catalog), then next-L writes level-(L+1).yml and the SubWorkflow runs it,
    until ``last``."""
    wf = Workflow(f"level-{level}")
    rc = ReplicaCatalog()
    rc.add_replica("local", previous, f"file://{os.path.join(storage, previous)}")
    wf.add_replica_catalog(rc)
    data = f"data-{level}.txt"
    wf.add_jobs(toy_job(f"work-{level}", [previous], [data],
                        fail_if=fail_if if level == last else None))
    if level < last:
        add_next(wf, level, last, storage, data, fail_if)
    return wf


def add_next(wf: Workflow, level: int, last: int, storage: str, data: str,
             fail_if: str | None) -> None:
    """next-L (writes level-(L+1).yml from ``data``) and the SubWorkflow job level-(L+1)."""
    child = File(f"level-{level + 1}.yml")
    nxt = Job("toy-next", _id=f"next-{level}")
    args = ["--level", str(level + 1), "--last", str(last), "--storage", storage,
            "--input", data, "--workflow", child]
    if fail_if:
        args += ["--fail-if", fail_if]
    nxt.add_args(*args).add_inputs(File(data)).add_outputs(child, stage_out=True,
                                                           register_replica=False)
    sub = SubWorkflow(child, is_planned=False, _id=f"level-{level + 1}")
    sub.add_planner_args(basename=f"level-{level + 1}", output_sites=["local"])
    wf.add_jobs(nxt, sub)


def nested(storage: Path, last: int, fail_if: str | None = None) -> Workflow:
    """The top level of a ``last``-level nested run: work-0 on ``seed.txt``, then next-0."""
    wf = Workflow("top")
    wf.add_jobs(toy_job("work-0", ["seed.txt"], ["data-0.txt"]))
    add_next(wf, 0, last, str(storage), "data-0.txt", fail_if)
    return wf


def trivial(n: int) -> Workflow:
    """``n`` independent ``touch`` jobs, each writing one declared output (the benchmark)."""
    wf = Workflow("trivial")
    for i in range(n):
        out = File(f"out-{i:04d}.txt")
        wf.add_jobs(Job("touch", _id=f"touch-{i:04d}").add_args(out)
                    .add_outputs(out, stage_out=True, register_replica=False))
    return wf

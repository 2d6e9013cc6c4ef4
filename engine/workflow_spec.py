"""Read a Pegasus 5 YAML workflow for the local engine: its jobs (``JobSpec``), the files
each uses, the dependencies (declared and by data flow) and its inline catalogs.

The format is the Pegasus 5 schema's (``wf-5.0.yml``) as the Pegasus.api writes it: jobs
under ``jobs`` with type ``job``, ``pegasusWorkflow`` or ``condorWorkflow``; ``uses`` with
lfn/type/stageOut; ``arguments`` with Files as their LFNs; ``jobDependencies``; inline
``replicaCatalog`` / ``transformationCatalog``; profiles. Problems are one ``InputError``
naming the file and the job.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from htclean.engine.catalogs import (
    Profiles,
    ReplicaCatalog,
    TransformationCatalog,
    parse_profiles,
    read_yaml,
)
from htclean.imaging.errors import InputError

SUBWORKFLOW_TYPES = ("pegasusWorkflow", "condorWorkflow")


@dataclass(frozen=True)
class Use:
    """One file a job uses. ``kind``: input, output, inout, checkpoint or none."""

    lfn: str
    kind: str
    stage_out: bool
    optional: bool

    @property
    def is_input(self) -> bool:
        return self.kind in ("input", "inout")

    @property
    def is_output(self) -> bool:
        return self.kind in ("output", "inout", "checkpoint")


@dataclass
class JobSpec:
    """One job of a workflow. ``kind``: ``job`` or a sub-workflow type; ``file`` is the
    sub-workflow's YAML LFN; ``arguments`` are strings (Files appear as their LFNs)."""

    id: str
    kind: str
    name: str | None
    namespace: str | None
    version: str | None
    file: str | None
    arguments: list[str]
    uses: list[Use]
    profiles: Profiles
    stdin: str | None = None
    stdout: str | None = None
    stderr: str | None = None

    @property
    def is_subworkflow(self) -> bool:
        return self.kind in SUBWORKFLOW_TYPES

    @property
    def inputs(self) -> list[Use]:
        return [u for u in self.uses if u.is_input]

    @property
    def outputs(self) -> list[Use]:
        return [u for u in self.uses if u.is_output]

    def planner_option(self, name: str) -> str | None:
        """The value of a planner option (``--basename X``) of a sub-workflow job."""
        for i, arg in enumerate(self.arguments):
            if arg == name and i + 1 < len(self.arguments):
                return self.arguments[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
        return None


@dataclass
class WorkflowSpec:
    """A workflow: jobs in file order, dependencies both ways, its inline catalogs."""

    name: str
    path: Path
    jobs: dict[str, JobSpec]
    parents: dict[str, set[str]]
    children: dict[str, set[str]]
    replicas: ReplicaCatalog
    transformations: TransformationCatalog
    profiles: Profiles


def _use(raw: object, where: str) -> Use:
    if not isinstance(raw, dict) or "lfn" not in raw or "type" not in raw:
        raise InputError(f"{where}: every 'uses' entry needs lfn and type, got {raw!r}")
    kind = str(raw["type"])
    if kind not in ("input", "output", "inout", "checkpoint", "none"):
        raise InputError(f"{where}: unknown link type {kind!r} for {raw['lfn']!r}")
    return Use(lfn=str(raw["lfn"]), kind=kind,
               stage_out=bool(raw.get("stageOut", kind != "input")),
               optional=bool(raw.get("optional", kind == "checkpoint")))


def _job(raw: object, where: str) -> JobSpec:
    if not isinstance(raw, dict) or "id" not in raw:
        raise InputError(f"{where}: every job needs an id, got {str(raw)[:80]!r}")
    jid = str(raw["id"])
    kind = str(raw.get("type", "job"))
    here = f"{where}: job {jid}"
    if kind == "job" and "name" not in raw:
        raise InputError(f"{here}: has no transformation name")
    if kind in SUBWORKFLOW_TYPES and "file" not in raw:
        raise InputError(f"{here}: a {kind} job needs a file")
    if kind != "job" and kind not in SUBWORKFLOW_TYPES:
        raise InputError(f"{here}: unknown job type {kind!r}")
    args = raw.get("arguments") or []
    if not isinstance(args, list):
        raise InputError(f"{here}: arguments must be a list")
    return JobSpec(
        id=jid, kind=kind, name=raw.get("name"), namespace=raw.get("namespace"),
        version=None if raw.get("version") is None else str(raw["version"]),
        file=None if raw.get("file") is None else str(raw["file"]),
        arguments=[str(a) for a in args],
        uses=[_use(u, here) for u in raw.get("uses") or []],
        profiles=parse_profiles(raw.get("profiles"), here),
        stdin=raw.get("stdin"), stdout=raw.get("stdout"), stderr=raw.get("stderr"))


def _check_acyclic(jobs: Iterable[str], children: dict[str, set[str]], where: str) -> None:
    state: dict[str, int] = {}
    for root in jobs:
        if root in state:
            continue
        stack = [(root, iter(sorted(children[root])))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                raise InputError(f"{where}: the job dependencies have a cycle through {nxt!r}")
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(children[nxt]))))


def load_workflow(path: Path) -> WorkflowSpec:
    """Parse a Pegasus 5 YAML workflow. Dependencies are those of ``jobDependencies`` plus the
    data flow (a job that reads a file another job of the workflow writes is its child), as the
    Pegasus.api infers them; a cycle is an error."""
    where = f"workflow {path}"
    raw = read_yaml(path, "workflow")
    if not isinstance(raw.get("jobs"), list) or not raw["jobs"]:
        raise InputError(f"{where}: has no jobs")
    jobs: dict[str, JobSpec] = {}
    for entry in raw["jobs"]:
        job = _job(entry, where)
        if job.id in jobs:
            raise InputError(f"{where}: job id {job.id!r} appears twice")
        jobs[job.id] = job
    parents: dict[str, set[str]] = {j: set() for j in jobs}
    children: dict[str, set[str]] = {j: set() for j in jobs}
    for dep in raw.get("jobDependencies") or []:
        if not isinstance(dep, dict) or "id" not in dep:
            raise InputError(f"{where}: bad jobDependencies entry {dep!r}")
        parent = str(dep["id"])
        for child in dep.get("children") or []:
            child = str(child)
            for jid in (parent, child):
                if jid not in jobs:
                    raise InputError(f"{where}: jobDependencies names an unknown job {jid!r}")
            children[parent].add(child)
            parents[child].add(parent)
    producer: dict[str, str] = {}
    for job in jobs.values():
        for use in job.outputs:
            if use.lfn in producer and producer[use.lfn] != job.id:
                raise InputError(f"{where}: {use.lfn!r} is an output of both "
                                 f"{producer[use.lfn]} and {job.id}")
            producer[use.lfn] = job.id
    for job in jobs.values():
        for use in job.inputs:
            src = producer.get(use.lfn)
            if src is not None and src != job.id:
                children[src].add(job.id)
                parents[job.id].add(src)
    _check_acyclic(jobs, children, where)
    rc_raw = raw.get("replicaCatalog") or {}
    tc_raw = raw.get("transformationCatalog") or {}
    return WorkflowSpec(
        name=str(raw.get("name") or path.stem), path=path, jobs=jobs, parents=parents,
        children=children,
        replicas=ReplicaCatalog.parse(rc_raw.get("replicas"), f"{where}: replicaCatalog"),
        transformations=TransformationCatalog.parse(tc_raw.get("transformations"),
                                                    f"{where}: transformationCatalog"),
        profiles=parse_profiles(raw.get("profiles"), where))

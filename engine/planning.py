"""Plan one workflow for the local engine, as ``pegasus-plan --sites local`` would: every
compute job's transformation resolved to a local executable with its profiles merged, every
input that no job of the workflow writes resolved to a local file through the replica
catalogs (the workflow's inline catalog first, then the standalone one).

A failure is an ``InputError`` naming the workflow, the job and the transformation or LFN.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from htclean.engine.catalogs import (
    Catalogs,
    local_replica,
    merge_profiles,
    profile,
    url_to_path,
)
from htclean.engine.workflow_spec import JobSpec, WorkflowSpec
from htclean.imaging.errors import InputError

# Variables of the engine's own that a job must not inherit.
PRIVATE_ENV = ("HTCLEAN_FAIL_ONCE", "HTCLEAN_INJECT_FAILURE", "HTCLEAN_INJECT_HANG",
               "HTCLEAN_INJECT_PARTIAL", "HTCLEAN_INPUT_CHECKSUMS", "HTCLEAN_FAULTS")
# DAGMan's "RETRY job N [UNLESS-EXIT value]", as the dagman.retry profile may give it
_RETRY = re.compile(r"\s*(-?\d+)(?:\s+UNLESS-EXIT\s+(-?\d+))?\s*", re.IGNORECASE)


@dataclass
class PlannedJob:
    """A job ready to run: ``pfn`` (None for a sub-workflow), environment, retries, category;
    ``unless_exit``: the exit status that is never retried (DAGMan's UNLESS-EXIT), if any."""

    spec: JobSpec
    pfn: Path | None
    transformation: str
    env: dict[str, str]
    retries: int
    category: str
    unless_exit: int | None = None


@dataclass
class PlannedWorkflow:
    """``external``: LFN -> local file, for every input that no job of the workflow writes."""

    key: str
    spec: WorkflowSpec
    jobs: dict[str, PlannedJob]
    external: dict[str, Path] = field(default_factory=dict)


def _retries(value: str | None, where: str) -> tuple[int, int | None]:
    """(retries, UNLESS-EXIT status or None) of a ``dagman.retry`` value."""
    if value is None:
        return 0, None
    m = _RETRY.fullmatch(str(value))
    if m is None:
        raise InputError(f"{where}: dagman.retry must be a whole number, optionally followed "
                         f"by UNLESS-EXIT <status>, got {value!r}")
    n = int(m.group(1))
    if n < 0:
        raise InputError(f"{where}: dagman.retry must be >= 0, got {n}")
    return n, (int(m.group(2)) if m.group(2) is not None else None)


def category_of(job_id: str, profiles: dict) -> str:
    """The job's type for throttles and the report: its ``dagman.category``, else the leading
    word of its id (``grid-c00-p001`` -> ``grid``)."""
    cat = profile(profiles, "dagman", "category")
    if cat:
        return cat
    m = re.match(r"[A-Za-z]+", job_id)
    return m.group(0) if m else job_id


def _compute_job(job: JobSpec, wf: WorkflowSpec, catalogs: Catalogs, where: str,
                 base_env: dict[str, str], site: str) -> PlannedJob:
    tname = job.name or ""
    tr = wf.transformations.find(tname, job.namespace, job.version, site) \
        or catalogs.transformations.find(tname, job.namespace, job.version, site)
    if tr is None:
        raise InputError(f"{where}: transformation {tname!r} has no entry for site {site!r} "
                         "in the workflow's or the standalone transformation catalog")
    tsite = tr.sites[site]
    pfn = url_to_path(tsite.pfn)
    if pfn is None:
        raise InputError(f"{where}: transformation {tname!r} on site {site!r} has PFN "
                         f"{tsite.pfn!r}; the local engine runs only local executables")
    if not (pfn.is_file() and os.access(pfn, os.X_OK)):
        raise InputError(f"{where}: transformation {tname!r}: {pfn} is not an executable file")
    site_profiles = catalogs.sites[site].profiles
    profiles = merge_profiles(site_profiles, tr.profiles, tsite.profiles, wf.profiles,
                              job.profiles)
    env = dict(base_env)
    env.update(profiles.get("env", {}))
    retry = profile(profiles, "dagman", "retry") or catalogs.properties.get("dagman.retry")
    retries, unless = _retries(retry, where)
    return PlannedJob(job, pfn, tname, env, retries, category_of(job.id, profiles), unless)


def later_file(pfns: list[str]) -> Path | None:
    """The first local file among ``pfns`` where none exists yet: the input of a job with
    parents, made by one of them in a level of its own (a cube's channels' products, which
    the cube job reads once their sub-workflows have finished); the job checks it."""
    for pfn in pfns:
        path = url_to_path(pfn)
        if path is not None:
            return path
    return None


def plan_workflow(wf: WorkflowSpec, key: str, catalogs: Catalogs,
                  site: str = "local") -> PlannedWorkflow:
    """Resolve every job and external input of ``wf`` (run under ``key``) for ``site``.

    An input in no local file yet is accepted for a job with parents (``later_file``).
    Compute jobs retry ``dagman.retry`` times (job, transformation or site profile, else the
    property, else 0), except after the exit status of its ``UNLESS-EXIT``; sub-workflow jobs
    only when their own job profile says so, as the planner does. A ``condorWorkflow`` (a raw
    DAG) cannot run here.
    """
    base_env = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}
    base_env.update({k[4:]: v for k, v in catalogs.properties.items() if k.startswith("env.")})
    planned: dict[str, PlannedJob] = {}
    for job in wf.jobs.values():
        where = f"workflow {key}: job {job.id}"
        if job.kind == "condorWorkflow":
            raise InputError(f"{where}: a condorWorkflow (DAG file) cannot run in the local "
                             "engine; only Pegasus YAML sub-workflows can")
        if job.is_subworkflow:
            retries, unless = _retries(profile(job.profiles, "dagman", "retry"), where)
            planned[job.id] = PlannedJob(job, None, "subworkflow", {}, retries,
                                         category_of(job.id, job.profiles), unless)
        else:
            planned[job.id] = _compute_job(job, wf, catalogs, where, base_env, site)
    produced = {u.lfn for j in wf.jobs.values() for u in j.outputs}
    external: dict[str, Path] = {}
    for job in wf.jobs.values():
        for use in job.inputs:
            if use.lfn in produced or use.lfn in external:
                continue
            path, seen = local_replica(use.lfn, (wf.replicas, catalogs.replicas))
            if path is None and wf.parents[job.id]:
                path = later_file(seen)
            if path is None:
                why = ("is in no replica catalog" if not seen else
                       "has no local file among its PFNs " + ", ".join(seen))
                raise InputError(f"workflow {key}: job {job.id}: input {use.lfn!r} {why}")
            external[use.lfn] = path
    return PlannedWorkflow(key, wf, planned, external)

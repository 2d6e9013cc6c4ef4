"""Per-job Pegasus profiles: throttling category, priority, retries, HTCondor requests.

Every compute job gets ``dagman.category`` (its job type, the ``execution.throttles`` keys),
a priority that keeps the serial path (partition, gather, deconvolve, next, restore) ahead of
queued parallel jobs, ``dagman.retry = "<execution.retries> UNLESS-EXIT 2"`` (a job that
exits 2 had bad input, which no retry fixes: DAGMan does not retry it; workflows.exitcode
makes the node's POST script pass that status on), request_cpus and request_memory sized to
what the job holds (workflows/requests.py) with the configuration's values as caps, and
request_disk = 2 x the sizes of its inputs + execution.disk_margin.
Sub-workflow jobs get no retries: a retried level resumes from its rescue DAG, and retries
would multiply with depth (DESIGN.md).

GPUs: with ``gridder.device: gpu`` the grid, residual and deconvolve jobs request one GPU and
``require_gpus`` (Capability, GlobalMemoryMb, DriverVersion from ``execution.gpu``). With
``auto`` they request none: a job uses a GPU when its slot has one, so it can run anywhere.
"""

from __future__ import annotations

import dataclasses
import math

from Pegasus.api import Job, Namespace, SubWorkflow

from htclean.workflows import names, requests
from htclean.workflows.context import LOCAL, RunContext
from htclean.workflows.exitcode import NO_RETRY_STATUS

SERIAL_PRIORITY = 100     # partition, gather, deconvolve, next, restore, sub-workflows
PARALLEL_PRIORITY = 10    # weights, grid, residual: one per part
SERIAL = ("partition", "gather", "deconvolve", "next", "restore", "cube")
GPU_CATEGORIES = ("grid", "residual", "deconvolve")
NEXT_MEMORY_MB = 1024     # at least, for next (on the submit host, local universe)
MIB = 2**20


def priority(category: str) -> int:
    return SERIAL_PRIORITY if category in SERIAL else PARALLEL_PRIORITY


def wants_gpu(ctx: RunContext, category: str) -> bool:
    """Whether a job of this category requests a GPU (only with ``gridder.device: gpu``)."""
    return ctx.settings["gridder"]["device"] == "gpu" and category in GPU_CATEGORIES


def require_gpus(ctx: RunContext) -> str:
    """The ``require_gpus`` ClassAd expression from ``execution.gpu``."""
    gpu = ctx.settings["execution"]["gpu"]
    return (f"Capability >= {float(gpu['capability'])} && GlobalMemoryMb >= "
            f"{int(gpu['memory_mb'])} && DriverVersion >= {float(gpu['driver'])}")


def disk_kib(ctx: RunContext, input_bytes: int) -> int:
    """request_disk in KiB: 2 x the inputs + execution.disk_margin."""
    margin = ctx.settings["execution"]["disk_margin"]
    return max(1, math.ceil((2 * input_bytes + margin) / 1024))


def next_memory_mb(ctx: RunContext, inputs: int = 2) -> int:
    """request_memory of next (the submit host, local universe: not capped by
    execution.request_memory): its cycle-0 gather of ``inputs`` partials holding the
    2 nterms - 1 PSFs (psf_oversize) and the nterms dirty images, then the FITS it writes
    (requests.next_bytes); at least ``NEXT_MEMORY_MB``."""
    sizes = requests.Sizes.from_settings(ctx.settings, ctx.image_shape)
    need = requests.next_bytes(sizes, "image", inputs)
    return max(NEXT_MEMORY_MB, requests.memory_mb(requests.BASE_MB["next"], need))


def job_shape(job: Job, ctx: RunContext, category: str) -> requests.Job:
    """What the requests of ``job`` depend on, from its id and input files: the gather tree
    it sums and its inputs, its part's bytes (measured where known), the MSs' bytes."""
    lfns = [u.file.lfn for u in job.uses if u._type == "input"]
    job_id = (job._id or "").removeprefix(ctx.job_prefix)
    tree = "weights" if job_id.startswith("gather-weights") else \
        "image" if job_id.endswith(names.cycle(0)) or f"-{names.cycle(0)}-" in job_id else \
        "residual"
    partials = [lfn for lfn in lfns if lfn.endswith(".npz") and "-part-" not in lfn]
    part = [ctx.size(lfn, ctx.part_bytes(0)) for lfn in lfns
            if lfn.startswith(f"{ctx.stem}-part-")]
    return requests.Job(category, tree, max(1, len(partials)), max(part, default=0),
                        ctx.ms_bytes())


def requests_of(ctx: RunContext, shape: requests.Job, input_bytes: int) -> dict[str, int]:
    """cpus, memory_mb, disk_kib and gpus of a job: sized to it (workflows/requests.py),
    capped by execution.request_cpus and request_memory (next, on the submit host, only by
    its own estimate)."""
    execution = ctx.settings["execution"]
    cpus, memory = requests.estimate(ctx.settings, shape)
    if shape.category == "next" and ctx.minor_cycle_in_next:  # the minor cycle after it
        minor = requests.estimate(ctx.settings, dataclasses.replace(shape,
                                                                    category="deconvolve"))
        cpus, memory = max(cpus, minor[0]), max(memory, minor[1])
    if shape.category == "next":
        memory = max(NEXT_MEMORY_MB, memory)
    else:
        cpus = min(cpus, int(execution["request_cpus"]))
        memory = min(memory, math.floor(execution["request_memory"] / MIB))
    return {"cpus": cpus, "memory_mb": memory, "disk_kib": disk_kib(ctx, input_bytes),
            "gpus": 1 if wants_gpu(ctx, shape.category) else 0}


def retry(ctx: RunContext) -> str:
    """The ``dagman.retry`` of a compute job: DAGMan's ``N UNLESS-EXIT 2``."""
    return f"{int(ctx.settings['execution']['retries'])} UNLESS-EXIT {NO_RETRY_STATUS}"


def apply(job: Job, ctx: RunContext, category: str, input_bytes: int) -> Job:
    """Add the category, priority, retries and resource requests of a job; returns it."""
    prio = priority(category)
    job.add_dagman_profile(category=category, priority=str(prio), retry=retry(ctx))
    req = requests_of(ctx, job_shape(job, ctx, category), input_bytes)
    job.add_pegasus_profile(cores=req["cpus"], memory=str(req["memory_mb"]),
                            diskspace=str(math.ceil(req["disk_kib"] / 1024)))
    job.add_profiles(Namespace.CONDOR, key="priority", value=str(prio))
    job.add_profiles(Namespace.CONDOR, key="request_cpus", value=str(req["cpus"]))
    job.add_profiles(Namespace.CONDOR, key="request_memory", value=str(req["memory_mb"]))
    job.add_profiles(Namespace.CONDOR, key="request_disk", value=str(req["disk_kib"]))
    remote = category not in ctx.submit_host_jobs and ctx.exec_site != LOCAL
    if req["gpus"]:
        job.add_pegasus_profile(gpus=req["gpus"])
        job.add_profiles(Namespace.CONDOR, key="request_gpus", value=str(req["gpus"]))
        if remote:
            job.add_profiles(Namespace.CONDOR, key="require_gpus", value=require_gpus(ctx))
    user_requirements = ctx.settings["execution"]["requirements"]
    if remote and user_requirements:
        job.add_profiles(Namespace.CONDOR, key="requirements", value=user_requirements)
    return job


def apply_subworkflow(job: SubWorkflow) -> SubWorkflow:
    """No retries (a failed level resumes from its rescue DAG) and the serial priority.
    (No env profile for its DAGMan: Pegasus 6.0 leaves a sub-workflow job's env profiles out
    of its submit file; the level's DAGMan inherits context.DAGMAN_ENV from its parent's
    through the job's ``getenv = ..._CONDOR_*``.)"""
    job.add_dagman_profile(retry="0", priority=str(SERIAL_PRIORITY))
    return job

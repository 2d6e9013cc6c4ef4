"""Per-job Pegasus profiles: throttling category, priority, retries, HTCondor requests.

Every compute job gets ``dagman.category`` (its job type, the ``execution.throttles`` keys),
a priority that keeps the serial path (partition, gather, deconvolve, next, restore) ahead of
queued parallel jobs, ``dagman.retry = "<execution.retries> UNLESS-EXIT 2"`` (a job that
exits 2 had bad input, which no retry fixes: DAGMan does not retry it; workflows.exitcode
makes the node's POST script pass that status on), request_cpus and request_memory
from the configuration, and request_disk = 2 x the sizes of its inputs + execution.disk_margin.
Sub-workflow jobs get no retries: a retried level resumes from its rescue DAG, and retries
would multiply with depth (DESIGN.md).

GPUs: with ``gridder.device: gpu`` the grid, residual and deconvolve jobs request one GPU and
``require_gpus`` (Capability, GlobalMemoryMb, DriverVersion from ``execution.gpu``). With
``auto`` they request none: a job uses a GPU when its slot has one, so it can run anywhere.
"""

from __future__ import annotations

import math

from Pegasus.api import Job, Namespace, SubWorkflow

from htclean.imaging.geometry import psf_shape
from htclean.workflows.context import LOCAL, RunContext
from htclean.workflows.exitcode import NO_RETRY_STATUS

SERIAL_PRIORITY = 100     # partition, gather, deconvolve, next, restore, sub-workflows
PARALLEL_PRIORITY = 10    # weights, grid, residual: one per part
SERIAL = ("partition", "gather", "deconvolve", "next", "restore")
GPU_CATEGORIES = ("grid", "residual", "deconvolve")
NEXT_MEMORY_MB = 1024     # at least, for next (on the submit host, local universe)
NEXT_BASE_MB = 256        # its interpreter and modules
GATHER_CPUS = 1
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


def next_memory_mb(ctx: RunContext) -> int:
    """request_memory of next: its cycle-0 gather holds the 2 nterms - 1 PSFs (psf_oversize)
    and the nterms dirty images, 12 bytes a pixel each (a float32 sum, a float64 image);
    measured at 4096^2, nterms 1: 998 MB, this asks 1262."""
    nx, ny = ctx.image_shape
    pnx, pny = psf_shape(nx, ny, float(ctx.settings["image"]["psf_oversize"]))
    nterms = int(ctx.settings["deconvolution"]["nterms"])
    need = 12 * ((2 * nterms - 1) * pnx * pny + nterms * nx * ny)
    return max(NEXT_MEMORY_MB, NEXT_BASE_MB + math.ceil(need / MIB))


def requests(ctx: RunContext, category: str, input_bytes: int) -> dict[str, int]:
    """cpus, memory_mb, disk_kib and gpus of a job of ``category`` reading ``input_bytes``."""
    execution = ctx.settings["execution"]
    if category == "next":
        cpus, memory = 1, next_memory_mb(ctx)
    else:
        cpus = GATHER_CPUS if category == "gather" else int(execution["request_cpus"])
        memory = math.ceil(execution["request_memory"] / MIB)
    return {"cpus": cpus, "memory_mb": memory, "disk_kib": disk_kib(ctx, input_bytes),
            "gpus": 1 if wants_gpu(ctx, category) else 0}


def retry(ctx: RunContext) -> str:
    """The ``dagman.retry`` of a compute job: DAGMan's ``N UNLESS-EXIT 2``."""
    return f"{int(ctx.settings['execution']['retries'])} UNLESS-EXIT {NO_RETRY_STATUS}"


def apply(job: Job, ctx: RunContext, category: str, input_bytes: int) -> Job:
    """Add the category, priority, retries and resource requests of a job; returns it."""
    prio = priority(category)
    job.add_dagman_profile(category=category, priority=str(prio), retry=retry(ctx))
    req = requests(ctx, category, input_bytes)
    job.add_pegasus_profile(cores=req["cpus"], memory=str(req["memory_mb"]),
                            diskspace=str(math.ceil(req["disk_kib"] / 1024)))
    job.add_profiles(Namespace.CONDOR, key="priority", value=str(prio))
    job.add_profiles(Namespace.CONDOR, key="request_cpus", value=str(req["cpus"]))
    job.add_profiles(Namespace.CONDOR, key="request_memory", value=str(req["memory_mb"]))
    job.add_profiles(Namespace.CONDOR, key="request_disk", value=str(req["disk_kib"]))
    remote = category != "next" and ctx.exec_site != LOCAL
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
    """No retries (a failed level resumes from its rescue DAG) and the serial priority."""
    job.add_dagman_profile(retry="0", priority=str(SERIAL_PRIORITY))
    return job

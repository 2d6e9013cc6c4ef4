"""Pool parameters: what a pool, its access point, DAGMan and Pegasus cost a job graph.

A pool file is YAML with the keys of ``Pool`` (seconds, bytes per second); ``load`` takes a
path or the name of a file shipped in ``pools/`` (``testpool``, ``ospool``, ``htclean2023``).
Each shipped file says where every figure comes from.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from random import Random

import yaml

from htclean.imaging.errors import InputError

POOLS_DIR = Path(__file__).resolve().parent / "pools"


@dataclass(frozen=True)
class QueueWait:
    """The wait of an idle pool job before it can be matched (glideins, other users):
    ``fixed`` (always ``median_s``), ``exponential`` (mean ``median_s``/ln 2) or
    ``lognormal`` (median ``median_s``, log-sd ``sigma``), capped at ``max_s``."""

    kind: str = "fixed"
    median_s: float = 0.0
    sigma: float = 1.0
    max_s: float = math.inf

    def sample(self, rng: Random) -> float:
        if self.median_s <= 0:
            return 0.0
        if self.kind == "fixed":
            w = self.median_s
        elif self.kind == "exponential":
            w = rng.expovariate(math.log(2) / self.median_s)
        elif self.kind == "lognormal":
            w = rng.lognormvariate(math.log(self.median_s), self.sigma)
        else:
            raise InputError(f"queue_wait.kind: {self.kind!r}; expected fixed, exponential "
                             "or lognormal")
        return min(w, self.max_s)


@dataclass(frozen=True)
class Pool:
    """What the simulation needs to know of a pool (every duration in seconds).

    Slots: ``cpu_cores`` (dynamic slots carved from them by request_cpus), ``gpus``.
    HTCondor: ``negotiation_interval_s`` (a cycle matches idle jobs to free slots),
    ``queue_wait`` (extra wait of a pool job before it can be matched; ``gpu_queue_wait``
    for GPU jobs when given), ``job_start_s`` (claim activation, starter, container start),
    ``start_rate`` (pool jobs the schedd starts per second at most, one claim activation
    after another; 0: no limit), ``claim_leftovers`` (a negotiation matches every idle CPU
    job, started as cores free on the claimed partitionable slot: see simulate.py),
    ``local_start_s`` (the schedd starting a local-universe job: next, Pegasus's transfer jobs).
    Data: ``job_bandwidth`` (bytes/s into or out of one job), ``osdf_bandwidth`` (all jobs
    together from the staging site; 0: unlimited), ``ap_bandwidth`` (all transfers through the
    access point together). DAGMan: ``submit_rate`` (jobs/s one DAGMan submits),
    ``scan_s`` (its log scan interval), ``post_s`` (each node's POST script), ``dagman_start_s``.
    Pegasus: ``plan_s`` + ``plan_per_job_s`` x jobs (a level's pegasus-plan), ``aux_s`` (the
    run time of a create-dir, stage-in/out, registration or cleanup job besides its bytes),
    ``stage_clusters`` (transfer jobs per workflow depth; 0: Pegasus's
    default, one per 10 jobs of the depth), ``registration`` (a registration
    job after each stage-out), ``cleanup`` (``leaf``: one job at the end; ``inplace``: per
    level and depth). Speed: ``gpu_equivalent_cores`` (the CPU cores of htclean's measured
    ducc0 costs that one GPU replaces), ``local_cores`` (cores of the submit host for next),
    ``wrapper_s`` (the job wrapper around each htclean job: PegasusLite's set-up, integrity
    check and kickstart; time it waits, using no core), ``worker_package_s`` (unpacking the
    worker package, per htclean job, where one is shipped), ``worker_package_bytes`` (what
    every pool job receives from the access point besides its inputs: the worker package
    PegasusLite sites get; 0: none),
    ``host_cores`` (real cores the CPU slots share, their jobs slowed in proportion when more
    run; 0: every slot has its cores to itself, as on a real pool).
    """

    name: str = "pool"
    cpu_cores: int = 2
    gpus: int = 0
    negotiation_interval_s: float = 60.0
    queue_wait: QueueWait = field(default_factory=QueueWait)
    gpu_queue_wait: QueueWait | None = None
    job_start_s: float = 5.0
    local_start_s: float = 4.0
    start_rate: float = 0.0
    claim_leftovers: bool = False
    job_bandwidth: float = 100e6
    osdf_bandwidth: float = 0.0
    ap_bandwidth: float = 1e9
    submit_rate: float = 20.0
    scan_s: float = 5.0
    post_s: float = 1.0
    dagman_start_s: float = 4.0
    dagman_exit_s: float = 5.0
    plan_s: float = 4.0
    plan_per_job_s: float = 0.02
    aux_s: float = 3.0
    stage_clusters: int = 1
    registration: bool = False
    cleanup: str = "leaf"
    gpu_equivalent_cores: float = 16.0
    local_cores: int = 4
    host_cores: float = 0.0
    worker_package_bytes: float = 0.0
    wrapper_s: float = 0.0
    worker_package_s: float = 0.0
    notes: dict = field(default_factory=dict, compare=False)

    def wait(self, gpu: bool) -> QueueWait:
        return self.gpu_queue_wait if gpu and self.gpu_queue_wait else self.queue_wait


def _queue_wait(value: object, key: str) -> QueueWait:
    if not isinstance(value, dict):
        raise InputError(f"{key}: must be a mapping (kind, median_s, sigma, max_s)")
    unknown = set(value) - {f.name for f in fields(QueueWait)}
    if unknown:
        raise InputError(f"{key}.{sorted(unknown)[0]}: unknown key")
    return QueueWait(**{k: (float(v) if k != "kind" else str(v)) for k, v in value.items()})


def from_dict(raw: dict, name: str = "pool") -> Pool:
    """A Pool from a parsed pool file; InputError naming the first bad key."""
    known = {f.name: f for f in fields(Pool)}
    values: dict = {"name": name}
    for key, value in raw.items():
        if key not in known:
            raise InputError(f"pool {name}: {key}: unknown key")
        if key in ("queue_wait", "gpu_queue_wait"):
            values[key] = None if value is None else _queue_wait(value, key)
        elif key in ("name", "cleanup"):
            values[key] = str(value)
        elif key == "notes":
            values[key] = dict(value or {})
        elif key in ("registration", "claim_leftovers"):
            values[key] = bool(value)
        elif key in ("cpu_cores", "gpus", "stage_clusters", "local_cores"):
            values[key] = int(value)
        else:
            values[key] = float(value)
    if values.get("cleanup", "leaf") not in ("leaf", "inplace", "none"):
        raise InputError(f"pool {name}: cleanup: expected leaf, inplace or none")
    return Pool(**values)


def shipped() -> list[str]:
    """Names of the pool files shipped with htclean."""
    return sorted(p.stem for p in POOLS_DIR.glob("*.yml"))


def load(spec: str | os.PathLike) -> Pool:
    """A pool file by path, or by the name of a shipped one."""
    path = Path(spec)
    if not path.exists() and (POOLS_DIR / f"{spec}.yml").exists():
        path = POOLS_DIR / f"{spec}.yml"
    if not path.exists():
        raise InputError(f"--pool: {spec}: no such file, nor a shipped pool "
                         f"({', '.join(shipped())})")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise InputError(f"--pool: {spec}: must be a mapping of keys")
    return from_dict(raw, str(raw.pop("name", path.stem)))

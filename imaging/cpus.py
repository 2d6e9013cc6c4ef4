"""How many CPU threads a job may use: one rule for gridding, FFTs and the minor cycle."""

from __future__ import annotations

import os


def available_cpus() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def resolve_threads(threads: int, request_cpus: int | None = None) -> int:
    """``threads`` if > 0; else the smallest of the cores available, OMP_NUM_THREADS (HTCondor
    sets it to the slot's cores) and the job's ``request_cpus``."""
    if threads > 0:
        return threads
    limit = available_cpus()
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        limit = min(limit, int(env))
    if request_cpus:
        limit = min(limit, int(request_cpus))
    return max(1, limit)

"""How many CPU threads a job uses: the count the plan fixes, and the cores it may run on.

Two numbers, kept apart so that images never depend on the machine a job lands on:

- ``planned_threads(settings)``: ``gridder.threads``, or ``execution.request_cpus`` where it
  is 0. It comes from the configuration alone, so the plan fixes it (and records it). Every
  choice that changes a result at float rounding (how the gridding splits its samples, when
  the minor cycle switches to FFT subtraction) is made from this number.
- ``resolve_threads(threads)``: how many threads actually run, at most the planned count,
  the cores available and ``OMP_NUM_THREADS`` (HTCondor sets it to the slot's cores). It
  changes only how fast a job runs.
"""

from __future__ import annotations

import os
from typing import Any


def available_cpus() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def planned_threads(settings: dict[str, Any]) -> int:
    """``gridder.threads`` if > 0, else ``execution.request_cpus`` (1 where neither is set):
    the configuration's thread count, independent of the machine."""
    gridder = settings.get("gridder") or {}
    execution = settings.get("execution") or {}
    threads = int(gridder.get("threads", 0) or 0)
    if threads > 0:
        return threads
    return max(1, int(execution.get("request_cpus") or 1))


def resolve_threads(threads: int, request_cpus: int | None = None) -> int:
    """Threads to run: the smallest of the cores available, OMP_NUM_THREADS, ``threads``
    (where > 0) and ``request_cpus`` (where given)."""
    limit = available_cpus()
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        limit = min(limit, int(env))
    for cap in (threads, request_cpus):
        if cap:
            limit = min(limit, int(cap))
    return max(1, limit)


def ducc_threads(threads: int) -> int:
    """The ``nthreads`` to hand ducc0 for a planned count (0: one), with ducc0's thread pool
    grown to it. ducc0 runs at most its pool's size (the cores it found), and its FFTs differ
    at rounding between thread counts: grown, the pool runs exactly the planned count on any
    machine (more threads than cores only costs a little time)."""
    import ducc0

    threads = max(1, int(threads))
    if ducc0.misc.thread_pool_size() < threads:
        ducc0.misc.resize_thread_pool(threads)
    return threads

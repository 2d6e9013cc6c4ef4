"""The engine's scheduling state: jobs and workflow levels, the ready queue, throttles, and what
happens when an attempt succeeds or fails (retry, or stop the level).

A ``Run`` is one entered workflow (the top level or a sub-workflow); its jobs wait for their
parents, become ready, run, and end done or failed. A failure beyond a job's retries (or one
that must not be retried, attempts.should_retry) stops its level: nothing new starts there or
below, jobs already running finish, and the level ends failed when nothing of it runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

from htclean.engine.attempts import should_retry
from htclean.engine.catalogs import ReplicaCatalog
from htclean.engine.planning import PlannedJob


@dataclass
class Job:
    """One job of a level and where it stands (``state``: waiting, ready, running, done,
    failed, interrupted, dropped); ``tries``: attempts in this call."""

    plan: PlannedJob
    run: Run
    state: str = "waiting"
    tries: int = 0
    parents_left: int = 0
    child: Run | None = None
    entered: float = 0.0

    @property
    def id(self) -> str:
        return self.plan.spec.id


@dataclass
class Run:
    """One workflow level: its jobs, the files produced so far, its external inputs and
    replica catalog, and whether (and why) it stopped."""

    key: str
    parent: Job | None
    jobs: dict[str, Job]
    children: dict[str, set[str]]
    produced: dict[str, Path]
    external: dict[str, Path]
    replicas: ReplicaCatalog
    remaining: int = 0
    active: int = 0  # running processes and sub-workflows
    new_attempts: int = 0
    failure: str | None = None
    failed_job: str | None = None
    finished: bool = False
    dirty: bool = True
    lineage: list[Run] = field(default_factory=list)


class Scheduler(ABC):
    """The ready queue and the state changes of jobs; the engine (runner._Engine) adds how
    jobs start and how levels are entered (subworkflows.Levels)."""

    def __init__(self, slots: int, maxjobs: dict[str, int]) -> None:
        self.slots = slots
        self.maxjobs = maxjobs
        self.ready: deque[Job] = deque()
        self.category_running: Counter = Counter()
        self.interrupted = False
        self.done = 0

    # supplied by the engine
    running: dict

    @abstractmethod
    def _start(self, job: Job) -> None:
        """Start an attempt of ``job`` (runner._Engine)."""

    @abstractmethod
    def _enter_sub(self, job: Job) -> None:
        """Enter the level a sub-workflow job plans (subworkflows.Levels)."""

    @abstractmethod
    def _run_finished(self, run: Run) -> None:
        """Close a level whose jobs have all ended (subworkflows.Levels)."""

    # --- starting -----------------------------------------------------------------------

    def _may_start(self, job: Job) -> bool:
        return not self.interrupted and all(r.failure is None for r in job.run.lineage)

    def fill(self) -> None:
        """Start ready jobs while slots are free; sub-workflows start without a slot."""
        held: list[Job] = []
        while self.ready and len(self.running) < self.slots and not self.interrupted:
            job = self.ready.popleft()
            if job.state != "ready":
                continue
            cat = job.plan.category
            if not self._may_start(job) or (
                    cat in self.maxjobs and self.category_running[cat] >= self.maxjobs[cat]):
                held.append(job)
            elif job.plan.spec.is_subworkflow:
                self._enter_sub(job)
            else:
                self._start(job)
        self.ready.extendleft(reversed(held))

    # --- state changes ------------------------------------------------------------------

    def _succeeded(self, job: Job, outputs: dict[str, str]) -> None:
        run = job.run
        job.state = "done"
        run.dirty = True
        self.done += 1
        run.produced.update({k: Path(v) for k, v in outputs.items()})
        run.remaining -= 1
        for cid in run.children[job.id]:
            child = run.jobs[cid]
            child.parents_left -= 1
            if child.parents_left == 0 and child.state == "waiting":
                child.state = "ready"
                self.ready.append(child)
        if run.remaining == 0:
            self._run_finished(run)
        self._drain(run)

    def _drain(self, run: Run) -> None:
        """A stopping workflow with nothing left running is finished (failed)."""
        if run.failure is not None and run.active == 0 and not run.finished:
            self._run_finished(run)

    def _failed(self, job: Job, message: str, failed_job: str | None,
                exit_status: int | None = None) -> None:
        """An attempt failed: retry it if the policy allows, else stop its workflow."""
        run = job.run
        run.dirty = True
        if should_retry(job.tries, job.plan.retries, job.plan.unless_exit, exit_status):
            job.state = "ready"
            self.ready.appendleft(job)
            return
        job.state = "failed"
        if run.failure is None:
            run.failure, run.failed_job = message, failed_job
        self._drain(run)

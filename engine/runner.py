"""The embedded local engine: runs, on this machine, the Pegasus YAML that
``htclean plan --site local`` writes, as Pegasus and DAGMan would run it on HTCondor.

- Jobs run in dependency order on a bounded pool of ``jobs`` processes, each in
  ``DIR/engine/work/<workflow>/<job id>/`` with its inputs linked in; declared outputs are
  staged out to site ``local``'s storage directory (``DIR/outputs``). A job succeeds only with
  exit status 0 and every declared output present.
- ``dagman.retry`` and the ``dagman.<category>.maxjobs`` throttles are honoured; a
  sub-workflow job runs when it is reached: its YAML (written by a ``next`` job) is planned
  then and run with the same catalogs, its inline replica catalog first. Sub-workflow jobs
  have no retries unless their own profile sets some.
- Every attempt is recorded (``state``); ``resume=True`` skips jobs recorded as
  succeeded whose outputs still exist, at every level, as a rescue DAG would.
- A job failing beyond its retries stops the run: nothing new starts, jobs already running
  finish, the result names the job, its exit status, its stderr's last lines and its logs.
  SIGINT/SIGTERM terminate the running jobs and record them as interrupted.
- ``HTCLEAN_FAIL_ONCE=<job id>[,<workflow>/<job id>...]`` starts the first attempt of those
  jobs with ``HTCLEAN_INJECT_FAILURE=1``, which htclean's executables honour by failing.
"""

from __future__ import annotations

import itertools
import os
import queue
import re
import signal
import threading
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from htclean.engine import execute
from htclean.engine.catalogs import (
    Catalogs,
    ReplicaCatalog,
    load_catalogs,
    local_replica,
)
from htclean.engine.planning import PlannedJob, plan_workflow
from htclean.engine.progress import PeakTracker, Snapshot
from htclean.engine.state import RunRecord, has_record
from htclean.engine.workflow_spec import WorkflowSpec, load_workflow
from htclean.imaging.errors import InputError

FAIL_ONCE_ENV = "HTCLEAN_FAIL_ONCE"
INJECT_ENV = "HTCLEAN_INJECT_FAILURE"
KILL_GRACE_S = 5.0
STATE_EVERY_S = 5.0
STDERR_TAIL = 8


@dataclass
class RunResult:
    """``status``: succeeded, failed or interrupted; ``exit_code`` 0, 1 or 130; ``attempts``:
    job attempts started by this call; ``skipped``: jobs found done (resume)."""

    status: str
    exit_code: int
    message: str
    attempts: int
    skipped: int
    failed_job: str | None
    storage_dir: Path
    engine_dir: Path
    wall_s: float


@dataclass
class _Job:
    plan: PlannedJob
    run: _Run
    state: str = "waiting"  # waiting, ready, running, done, failed, interrupted
    tries: int = 0  # attempts in this call
    parents_left: int = 0
    child: _Run | None = None
    entered: float = 0.0

    @property
    def id(self) -> str:
        return self.plan.spec.id


@dataclass
class _Run:
    key: str
    parent: _Job | None
    jobs: dict[str, _Job]
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
    lineage: list[_Run] = field(default_factory=list)


class _Engine:
    def __init__(self, plan_dir: Path, catalogs: Catalogs, record: RunRecord, slots: int,
                 progress) -> None:
        self.plan_dir = plan_dir
        self.catalogs = catalogs
        self.record = record
        self.slots = slots
        self.progress = progress
        self.work = record.dir / "work"
        self.logs = record.dir / "logs"
        self.ready: deque[_Job] = deque()
        self.running: dict[int, tuple[_Job, int, bool]] = {}
        self.events: queue.Queue = queue.Queue()
        self.pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="htclean-job")
        self.table = execute.ProcessTable()
        self.tokens = itertools.count(1)
        self.owners: dict[str, tuple[str | None, str | None]] = {}
        self.runs: list[_Run] = []
        self.fail_once = {s.strip() for s in os.environ.get(FAIL_ONCE_ENV, "").split(",")
                          if s.strip()}
        self.interrupted = False
        self.forced = False
        self.kill_at: float | None = None
        self.started = self.skipped = self.done = self.total = self.failed_attempts = 0
        self.peak = PeakTracker()
        self.t0 = time.time()
        self.last_state = 0.0
        self.top: _Run | None = None
        self.maxjobs = {m.group(1): int(v) for k, v in catalogs.properties.items()
                        if (m := re.fullmatch(r"dagman\.([^.]+)\.maxjobs", k))
                        and v.strip().isdigit()}
        self.category_running: Counter = Counter()

    # --- workflows ----------------------------------------------------------------------

    def enter(self, spec: WorkflowSpec, key: str, parent: _Job | None) -> _Run:
        """Plan a workflow and queue its runnable jobs (InputError if it cannot be planned).

        Jobs recorded as succeeded whose outputs exist are done already; a workflow entered
        again (a retried sub-workflow) replaces its earlier run.
        """
        owner = (parent.run.key, parent.id) if parent else (None, None)
        if self.owners.get(key, owner) != owner:
            raise InputError(f"workflow {key!r} ({spec.path}) is named by two jobs; give "
                             "every sub-workflow its own --basename")
        planned = plan_workflow(spec, key, self.catalogs)
        self.owners[key] = owner
        for old in [r for r in self.runs if r.key == key]:
            self.runs.remove(old)
            self.total -= len(old.jobs)
            self.done -= sum(j.state == "done" for j in old.jobs.values())
            for j in old.jobs.values():
                if j.state == "ready":
                    j.state = "dropped"
        run = _Run(key, parent, {}, spec.children, {}, planned.external, spec.replicas)
        run.lineage = (parent.run.lineage if parent else []) + [run]
        run.jobs = {jid: _Job(p, run) for jid, p in planned.jobs.items()}
        if parent is not None:
            parent.child = run
        for job in run.jobs.values():
            done = self.record.done(key, job.id)
            if done is not None and not job.plan.spec.is_subworkflow:
                job.state = "done"
                for lfn, path in done["outputs"].items():
                    run.produced[lfn] = Path(path)
                    self.peak.offer(lfn, path)
                self.skipped += 1
                self.done += 1
        run.remaining = sum(j.state != "done" for j in run.jobs.values())
        self.total += len(run.jobs)
        self.runs.append(run)
        for job in run.jobs.values():
            if job.state == "done":
                continue
            job.parents_left = sum(run.jobs[p].state != "done" for p in spec.parents[job.id])
            if job.parents_left == 0:
                job.state = "ready"
                self.ready.append(job)
        if run.remaining == 0:
            self._run_finished(run)
        return run

    def _run_finished(self, run: _Run) -> None:
        run.finished = True
        run.dirty = True
        self._save_state(run)
        job = run.parent
        if job is None:
            return
        job.run.active -= 1
        job.run.new_attempts += run.new_attempts
        recorded_done = self.record.done(job.run.key, job.id) is not None
        if run.failure is None:
            if run.new_attempts or not recorded_done:
                self._record_sub(job, "succeeded", 0, None)
            self._succeeded(job, {})
        else:
            self._record_sub(job, "failed", 1, run.failure)
            self._failed(job, run.failure, run.failed_job)

    def _record_sub(self, job: _Job, status: str, exit_status: int | None,
                    error: str | None) -> None:
        self.record.append({
            "workflow": job.run.key, "job": job.id, "type": job.plan.category,
            "transformation": "subworkflow", "child": job.child.key if job.child else None,
            "attempt": self.record.next_attempt(job.run.key, job.id), "start": job.entered,
            "end": time.time(), "exit_status": exit_status, "status": status, "error": error,
            "outputs": {}, "record": None, "stdout": None, "stderr": None, "work_dir": None,
            "injected_failure": False})

    # --- job state changes --------------------------------------------------------------

    def _succeeded(self, job: _Job, outputs: dict[str, str]) -> None:
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

    def _drain(self, run: _Run) -> None:
        """A stopping workflow with nothing left running is finished (failed)."""
        if run.failure is not None and run.active == 0 and not run.finished:
            self._run_finished(run)

    def _failed(self, job: _Job, message: str, failed_job: str | None) -> None:
        """An attempt failed: retry it if it has retries left, else stop its workflow."""
        run = job.run
        run.dirty = True
        if job.tries <= job.plan.retries:
            job.state = "ready"
            self.ready.appendleft(job)
            return
        job.state = "failed"
        if run.failure is None:
            run.failure, run.failed_job = message, failed_job
        self._drain(run)

    # --- starting jobs ------------------------------------------------------------------

    def _may_start(self, job: _Job) -> bool:
        return not self.interrupted and all(r.failure is None for r in job.run.lineage)

    def fill(self) -> None:
        """Start ready jobs while slots are free; sub-workflows start without a slot."""
        held: list[_Job] = []
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

    def _locate(self, run: _Run, lfn: str) -> Path | None:
        path = run.produced.get(lfn) or run.external.get(lfn)
        if path is None:
            path, _ = local_replica(lfn, (run.replicas, self.catalogs.replicas))
        return path

    def _enter_sub(self, job: _Job) -> None:
        run, spec = job.run, job.plan.spec
        job.tries += 1
        job.entered = time.time()
        job.state = "running"
        run.active += 1
        key = spec.planner_option("--basename") or Path(spec.file or spec.id).name.split(".")[0]
        path = self._locate(run, spec.file or "")
        job.child = None
        try:
            if path is None or not path.is_file():
                raise InputError(f"workflow {run.key}: job {job.id}: the sub-workflow file "
                                 f"{spec.file!r} was not written and is in no replica catalog")
            self.enter(load_workflow(path), key, job)
        except InputError as exc:
            run.active -= 1
            self._record_sub(job, "failed", None, str(exc))
            self._failed(job, str(exc), f"{run.key}/{job.id}")

    def _start(self, job: _Job) -> None:
        run, spec = job.run, job.plan.spec
        attempt = self.record.next_attempt(run.key, job.id)
        inject = attempt == 1 and (job.id in self.fail_once
                                   or f"{run.key}/{job.id}" in self.fail_once)
        links, missing = [], []
        for use in spec.inputs:
            src = run.produced.get(use.lfn) or run.external.get(use.lfn)
            if src is None or not src.exists():
                missing.append(f"{use.lfn} ({src or 'never produced'})")
            else:
                links.append((use.lfn, src.resolve(), use.kind == "inout"))
        env = dict(job.plan.env)
        if inject:
            env[INJECT_ENV] = "1"
        log = self.logs / run.key / f"{job.id}.{attempt}"
        task = execute.Task(
            token=next(self.tokens), argv=[str(job.plan.pfn), *spec.arguments],
            work_dir=self.work / run.key / job.id, env=env, links=links, outputs=spec.outputs,
            storage_dir=self.catalogs.storage_dir, stdout_path=Path(f"{log}.out"),
            stderr_path=Path(f"{log}.err"), stdin_lfn=spec.stdin, stdout_lfn=spec.stdout,
            stderr_lfn=spec.stderr)
        job.tries += 1
        run.new_attempts += 1
        self.started += 1
        if missing:
            now = time.time()
            self._conclude(job, attempt, inject, task, execute.Outcome(
                now, now, None, False, "input(s) missing: " + ", ".join(missing)))
            return
        job.state = "running"
        run.active += 1
        self.category_running[job.plan.category] += 1
        self.running[task.token] = (job, attempt, inject)
        future = self.pool.submit(execute.execute, task, self.table)
        future.add_done_callback(lambda f, t=task: self.events.put((t, f)))

    # --- finished attempts --------------------------------------------------------------

    def finished(self, task: execute.Task, future: Future) -> None:
        job, attempt, inject = self.running.pop(task.token)
        job.run.active -= 1
        self.category_running[job.plan.category] -= 1
        try:
            outcome = future.result()
        except Exception as exc:  # a bug in the engine itself: keep it visible, as a failure
            outcome = execute.Outcome(time.time(), time.time(), None, False,
                                          f"engine error: {exc!r}")
        self._conclude(job, attempt, inject, task, outcome)

    def _conclude(self, job: _Job, attempt: int, inject: bool, task: execute.Task,
                  outcome: execute.Outcome) -> None:
        run = job.run
        status = "succeeded" if outcome.ok else "interrupted" if self.interrupted else "failed"
        record_json = next((p for lfn, p in outcome.outputs.items()
                            if lfn.endswith(".record.json")), None)
        entry = {
            "workflow": run.key, "job": job.id, "type": job.plan.category,
            "transformation": job.plan.transformation, "attempt": attempt,
            "start": outcome.start, "end": outcome.end, "exit_status": outcome.exit_status,
            "status": status, "error": outcome.error, "outputs": outcome.outputs,
            "record": record_json, "stdout": outcome.stdout or str(task.stdout_path),
            "stderr": outcome.stderr or str(task.stderr_path), "work_dir": str(task.work_dir),
            "injected_failure": inject}
        self.record.append(entry)
        if outcome.ok:
            for lfn, path in outcome.outputs.items():
                self.peak.offer(lfn, path)
            self._succeeded(job, outcome.outputs)
        elif status == "interrupted":
            job.state = "interrupted"
            run.dirty = True
        else:
            self.failed_attempts += 1
            self._failed(job, self._failure_message(job, entry), f"{run.key}/{job.id}")
        self._drain(run)

    def _failure_message(self, job: _Job, entry: dict) -> str:
        status = entry["exit_status"]
        what = "did not start" if status is None else f"exit status {status}"
        lines = [f"job {job.run.key}/{job.id} ({job.plan.transformation}) failed after "
                 f"{job.tries} attempt(s): {what}" + (f"; {entry['error']}"
                                                      if entry["error"] else "")]
        try:
            tail = Path(entry["stderr"]).read_text(errors="replace").splitlines()[-STDERR_TAIL:]
        except OSError:
            tail = []
        if tail:
            lines.append("  last lines of its stderr:")
            lines.extend("    " + t for t in tail)
        lines.append(f"  logs: {entry['stdout']} {entry['stderr']}")
        lines.append(f"  working directory: {entry['work_dir']}")
        return "\n".join(lines)

    # --- interrupts, state, progress ----------------------------------------------------

    def on_signal(self, signum: int, frame=None) -> None:
        if self.interrupted:
            self.forced = True
        self.interrupted = True

    def enforce_interrupt(self) -> None:
        if not self.interrupted:
            return
        if self.kill_at is None:
            self.table.signal_all(signal.SIGTERM)
            self.kill_at = time.monotonic() + KILL_GRACE_S
        elif self.forced or time.monotonic() > self.kill_at:
            self.table.signal_all(signal.SIGKILL)

    def _save_state(self, run: _Run) -> None:
        status = ("succeeded" if run.finished and run.failure is None else
                  "failed" if run.finished else "interrupted" if self.interrupted else "running")
        self.record.write_state(run.key, {
            "workflow": run.key, "status": status, "updated": time.time(),
            "parent": [run.parent.run.key, run.parent.id] if run.parent else None,
            "failure": run.failure,
            "jobs": {j.id: {"state": j.state, "type": j.plan.category,
                            "attempts": len(self.record.attempts(run.key, j.id)),
                            "child": j.child.key if j.child else None}
                     for j in run.jobs.values()}})
        run.dirty = False

    def save_states(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_state >= STATE_EVERY_S:
            for run in self.runs:
                if run.dirty or force:
                    self._save_state(run)
            self.last_state = now

    def snapshot(self) -> Snapshot:
        current = next((r.key for r in reversed(self.runs) if not r.finished),
                       self.runs[-1].key if self.runs else "")
        return Snapshot(self.done, len(self.running), self.failed_attempts, self.total,
                        current, self.peak.peak, time.time() - self.t0)

    def tick(self) -> None:
        self.save_states()
        if self.progress is not None:
            self.progress.update(self.snapshot())

    def loop(self) -> None:
        while True:
            self.fill()
            self.enforce_interrupt()
            if not self.running:
                return
            try:
                task, future = self.events.get(timeout=0.2)
            except queue.Empty:
                self.tick()
                continue
            self.finished(task, future)
            self.tick()


def run_workflow(plan_dir: str | os.PathLike, jobs: int | None = None, resume: bool = False,
                 progress=None, workflow: str = "workflow.yml") -> RunResult:
    """Run ``DIR/workflow.yml`` with the catalogs of ``DIR`` on this machine.

    ``jobs``: processes at a time (None or 0: CPU cores). ``resume``: go on from the record
    in ``DIR/engine`` (without it, a directory that already holds a run is refused).
    ``progress``: an object with ``update(Snapshot)`` and ``finish(Snapshot)`` (e.g.
    ``progress.ProgressDisplay()``), or None. Raises InputError when the top workflow cannot
    be planned (nothing has run then); every other outcome is in the RunResult.
    """
    plan_dir = Path(plan_dir).resolve()
    slots = jobs or os.cpu_count() or 1
    if slots < 1:
        raise InputError(f"jobs must be >= 1, got {jobs}")
    engine_dir = plan_dir / "engine"
    if not resume and has_record(engine_dir):
        raise InputError(f"{plan_dir} already holds a run ({engine_dir}); resume it or use "
                         "another directory")
    catalogs = load_catalogs(plan_dir)
    catalogs.storage_dir.mkdir(parents=True, exist_ok=True)
    wf_path = plan_dir / workflow
    record = RunRecord(engine_dir)
    engine = _Engine(plan_dir, catalogs, record, slots, progress)
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, engine.on_signal)
    try:
        spec = load_workflow(wf_path)
        engine.top = engine.enter(spec, spec.name, None)
        engine.loop()
    finally:
        for sig, old in handlers.items():
            signal.signal(sig, old)
        engine.pool.shutdown(wait=True)
        for run in engine.runs:
            job = run.parent
            if engine.interrupted and not run.finished and job is not None \
                    and job.state == "running":
                engine._record_sub(job, "interrupted", None, "interrupted")
        engine.save_states(force=True)
        record.close()
    top = engine.top
    if progress is not None:
        progress.finish(engine.snapshot())
    wall = time.time() - engine.t0
    common = dict(attempts=engine.started, skipped=engine.skipped,
                  storage_dir=catalogs.storage_dir, engine_dir=engine_dir, wall_s=wall)
    if engine.interrupted:
        return RunResult("interrupted", 130, "interrupted: the running jobs were stopped and "
                         "recorded as interrupted", failed_job=None, **common)
    if top.finished and top.failure is None:
        return RunResult("succeeded", 0, f"all jobs succeeded; outputs in "
                         f"{catalogs.storage_dir}", failed_job=None, **common)
    # a failure deep down may not have reached the top while a sibling level was still open
    failed = next((r for r in [top, *engine.runs] if r.failure is not None), None)
    message = failed.failure if failed else "the run stopped with jobs left to run"
    return RunResult("failed", 1, message, failed_job=failed.failed_job if failed else None,
                     **common)

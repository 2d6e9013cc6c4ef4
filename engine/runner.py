"""The embedded local engine: runs, on this machine, the Pegasus YAML that
``htclean plan --site local`` writes, as Pegasus and DAGMan would run it on HTCondor.

- Jobs run in dependency order on a bounded pool of ``jobs`` processes, each in
  ``DIR/engine/work/<workflow>/<job id>/`` with its inputs linked in; declared outputs are
  staged out to site ``local``'s storage directory (``DIR/outputs``). A job succeeds only with
  exit status 0 and every declared output present.
- ``dagman.retry`` (with DAGMan's ``UNLESS-EXIT``: htclean's jobs are not retried after exit
  status 2, bad input) and the ``dagman.<category>.maxjobs`` throttles are honoured
  (scheduling, attempts); sub-workflows are planned and run when their job is reached
  (subworkflows). ``job_timeout`` stops a job that runs longer (then it is retried).
- Integrity: the sha256 each htclean job records for its outputs is kept with its attempt; a
  job is handed the checksums of its inputs (``HTCLEAN_INPUT_CHECKSUMS``) and fails (exit 4,
  retried) on a damaged one; resume trusts an output only while it still has its checksum.
- Every attempt is recorded (``state``); ``resume=True`` skips jobs recorded as succeeded
  whose outputs are intact, at every level, as a rescue DAG would. One engine at a time runs
  a directory (a lock); one started after an engine was killed first stops the jobs that
  engine left running.
- A job failing for good stops the run: nothing new starts, jobs already running finish, the
  result names the job, its exit status, its stderr's last lines and its logs.
  SIGINT/SIGTERM terminate the running jobs and record them as interrupted.
- Fault injection for tests (``HTCLEAN_FAIL_ONCE``, ``HTCLEAN_FAULTS``): see attempts.
"""

from __future__ import annotations

import itertools
import os
import queue
import re
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from htclean.engine import attempts, execute
from htclean.engine.attempts import FaultPlan
from htclean.engine.catalogs import Catalogs, load_catalogs
from htclean.engine.progress import PeakTracker, Snapshot
from htclean.engine.scheduling import Job, Run, Scheduler
from htclean.engine.state import RunRecord, engine_lock, has_record, stop_orphans
from htclean.engine.subworkflows import Levels
from htclean.engine.workflow_spec import load_workflow
from htclean.imaging.errors import InputError

KILL_GRACE_S = 5.0
STATE_EVERY_S = 5.0


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


class _Engine(Levels, Scheduler):
    def __init__(self, plan_dir: Path, catalogs: Catalogs, record: RunRecord, slots: int,
                 progress, job_timeout: float | None = None) -> None:
        maxjobs = {m.group(1): int(v) for k, v in catalogs.properties.items()
                   if (m := re.fullmatch(r"dagman\.([^.]+)\.maxjobs", k))
                   and v.strip().isdigit()}
        Scheduler.__init__(self, slots, maxjobs)
        self.plan_dir = plan_dir
        self.catalogs = catalogs
        self.record = record
        self.progress = progress
        self.job_timeout = job_timeout
        self.work = record.dir / "work"
        self.logs = record.dir / "logs"
        self.running: dict[int, tuple[Job, int, bool, str | None]] = {}
        self.events: queue.Queue = queue.Queue()
        self.pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="htclean-job")
        self.table = execute.ProcessTable(record.dir / "running.json")
        self.tokens = itertools.count(1)
        self.owners: dict[str, tuple[str | None, str | None]] = {}
        self.runs: list[Run] = []
        self.fail_once = {s.strip() for s in os.environ.get(attempts.FAIL_ONCE_ENV, "")
                          .split(",") if s.strip()}
        try:
            self.faults = FaultPlan.from_env()
        except ValueError as exc:
            raise InputError(str(exc)) from None
        self.known: dict[str, str] = {}  # resolved path -> sha256 recorded by its writer
        self.forced = False
        self.kill_at: float | None = None
        self.started = self.skipped = self.total = self.failed_attempts = 0
        self.peak = PeakTracker()
        self.t0 = time.time()
        self.last_state = 0.0
        self.top: Run | None = None

    def remember_checksums(self, outputs: dict[str, str], sums: dict | None) -> None:
        """Keep the sha256 recorded for outputs (lfn -> path) to check them where read."""
        for lfn, info in (sums or {}).items():
            if lfn in outputs and isinstance(info, dict) and info.get("sha256"):
                self.known[str(Path(outputs[lfn]).resolve())] = info["sha256"]

    # --- starting jobs ------------------------------------------------------------------

    def _start(self, job: Job) -> None:
        run, spec = job.run, job.plan.spec
        attempt = self.record.next_attempt(run.key, job.id)
        fault, fault_env = self.faults.next_attempt()
        if attempt == 1 and (job.id in self.fail_once or f"{run.key}/{job.id}" in self.fail_once):
            fault, fault_env = "fail", {attempts.INJECT_ENV: "1"}
        links, missing, sums = [], [], {}
        for use in spec.inputs:
            src = run.produced.get(use.lfn) or run.external.get(use.lfn)
            if src is None or not src.exists():
                missing.append(f"{use.lfn} ({src or 'never produced'})")
                continue
            links.append((use.lfn, src.resolve(), use.kind == "inout"))
            if str(src.resolve()) in self.known:
                sums[use.lfn] = self.known[str(src.resolve())]
        log = self.logs / run.key / f"{job.id}.{attempt}"
        env = {**job.plan.env, **fault_env}
        if sums:
            env[attempts.CHECKSUMS_ENV] = str(attempts.write_checksum_file(
                Path(f"{log}.sha256"), sums))
        task = execute.Task(
            token=next(self.tokens), argv=[str(job.plan.pfn), *spec.arguments],
            work_dir=self.work / run.key / job.id, env=env, links=links, outputs=spec.outputs,
            storage_dir=self.catalogs.storage_dir, stdout_path=Path(f"{log}.out"),
            stderr_path=Path(f"{log}.err"), stdin_lfn=spec.stdin, stdout_lfn=spec.stdout,
            stderr_lfn=spec.stderr, timeout=self.job_timeout)
        job.tries += 1
        run.new_attempts += 1
        self.started += 1
        if missing:
            now = time.time()
            self._conclude(job, attempt, fault, task, execute.Outcome(
                now, now, None, False, "input(s) missing: " + ", ".join(missing)))
            return
        job.state = "running"
        run.active += 1
        self.category_running[job.plan.category] += 1
        self.running[task.token] = (job, attempt, fault)
        future = self.pool.submit(execute.execute, task, self.table)
        future.add_done_callback(lambda f, t=task: self.events.put((t, f)))
        if fault == "kill":
            timer = threading.Timer(self.faults.kill_delay, self.table.send,
                                    (task.token, FaultPlan.kill_signal()))
            timer.daemon = True
            timer.start()

    # --- finished attempts --------------------------------------------------------------

    def finished(self, task: execute.Task, future: Future) -> None:
        job, attempt, fault = self.running.pop(task.token)
        job.run.active -= 1
        self.category_running[job.plan.category] -= 1
        try:
            outcome = future.result()
        except Exception as exc:  # a bug in the engine itself: keep it visible, as a failure
            outcome = execute.Outcome(time.time(), time.time(), None, False,
                                      f"engine error: {exc!r}")
        if fault == "kill" and outcome.exit_status != -signal.SIGKILL:
            self.faults.missed_kill()
            fault = None
        self._conclude(job, attempt, fault, task, outcome)

    def _conclude(self, job: Job, attempt: int, fault: str | None, task: execute.Task,
                  outcome: execute.Outcome) -> None:
        run = job.run
        status = "succeeded" if outcome.ok else "interrupted" if self.interrupted else "failed"
        record_json = next((p for lfn, p in outcome.outputs.items()
                            if lfn.endswith(".record.json")), None)
        sums = attempts.output_checksums(record_json, outcome.outputs) if outcome.ok else {}
        entry = {
            "workflow": run.key, "job": job.id, "type": job.plan.category,
            "transformation": job.plan.transformation, "attempt": attempt,
            "start": outcome.start, "end": outcome.end, "exit_status": outcome.exit_status,
            "status": status, "error": outcome.error, "outputs": outcome.outputs,
            "record": record_json, "stdout": outcome.stdout or str(task.stdout_path),
            "stderr": outcome.stderr or str(task.stderr_path), "work_dir": str(task.work_dir),
            "injected_failure": fault is not None, "fault": fault, "checksums": sums}
        self.record.append(entry)
        if outcome.ok:
            for lfn, path in outcome.outputs.items():
                self.peak.offer(lfn, path)
            self.remember_checksums(outcome.outputs, sums)
            self._succeeded(job, outcome.outputs)
        elif status == "interrupted":
            job.state = "interrupted"
            run.dirty = True
        else:
            self.failed_attempts += 1
            final = not attempts.should_retry(job.tries, job.plan.retries,
                                              job.plan.unless_exit, outcome.exit_status)
            no_retry = final and outcome.exit_status == job.plan.unless_exit
            message = attempts.failure_message(f"{run.key}/{job.id}", job.plan.transformation,
                                               job.tries, entry, final=not no_retry)
            self._failed(job, message, f"{run.key}/{job.id}", outcome.exit_status)
        self._drain(run)

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

    def _save_state(self, run: Run) -> None:
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
                 progress=None, workflow: str = "workflow.yml",
                 job_timeout: float | None = None) -> RunResult:
    """Run ``DIR/workflow.yml`` with the catalogs of ``DIR`` on this machine.

    ``jobs``: processes at a time (None or 0: CPU cores). ``resume``: go on from the record
    in ``DIR/engine`` (without it, a directory that already holds a run is refused).
    ``progress``: an object with ``update(Snapshot)`` and ``finish(Snapshot)`` (e.g.
    ``progress.ProgressDisplay()``), or None. ``job_timeout``: seconds a job may run before
    it is stopped (and retried); None: no limit. Raises InputError when the top workflow
    cannot be planned or another engine runs DIR (nothing has run then); every other outcome
    is in the RunResult: exit_code 0, 1 (a job failed), 2 (a job failed on bad input, exit
    status 2, not retried) or 130 (interrupted).
    """
    plan_dir = Path(plan_dir).resolve()
    slots = jobs or os.cpu_count() or 1
    if slots < 1:
        raise InputError(f"jobs must be >= 1, got {jobs}")
    if job_timeout is not None and not job_timeout > 0:
        raise InputError(f"the job timeout must be > 0 seconds, got {job_timeout}")
    engine_dir = plan_dir / "engine"
    if not resume and has_record(engine_dir):
        raise InputError(f"{plan_dir} already holds a run ({engine_dir}); resume it or use "
                         "another directory")
    catalogs = load_catalogs(plan_dir)
    catalogs.storage_dir.mkdir(parents=True, exist_ok=True)
    with engine_lock(engine_dir):
        stop_orphans(engine_dir)
        return _run_locked(plan_dir, catalogs, engine_dir, workflow, slots, progress,
                           job_timeout)


def _run_locked(plan_dir: Path, catalogs: Catalogs, engine_dir: Path, workflow: str,
                slots: int, progress, job_timeout: float | None) -> RunResult:
    record = RunRecord(engine_dir)
    try:
        engine = _Engine(plan_dir, catalogs, record, slots, progress, job_timeout)
    except InputError:
        record.close()
        raise
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, engine.on_signal)
    try:
        spec = load_workflow(plan_dir / workflow)
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
    return _result(engine, catalogs, engine_dir, progress)


def _result(engine: _Engine, catalogs: Catalogs, engine_dir: Path, progress) -> RunResult:
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
    failed_job = failed.failed_job if failed else None
    code = 1
    if failed_job:
        key, _, jid = failed_job.rpartition("/")
        tries = engine.record.attempts(key, jid)
        if tries and tries[-1].get("exit_status") == 2:
            code = 2
    return RunResult("failed", code, message, failed_job=failed_job, **common)

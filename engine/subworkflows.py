"""Workflow levels in the engine: entering a workflow (the top level, or a sub-workflow when its
job is reached), skipping what a previous run finished, and ending a level.

A sub-workflow job runs when it is reached: its YAML (written by a ``next`` job) is planned
then and run with the same catalogs, its inline replica catalog first. Its attempts are
recorded like a compute job's (transformation ``subworkflow``); a level entered again (a
retried sub-workflow) replaces its earlier run, and resume skips every job recorded as
succeeded whose outputs are intact (state.RunRecord.done), at every level.
"""

from __future__ import annotations

import time
from pathlib import Path

from htclean.engine.catalogs import local_replica
from htclean.engine.planning import plan_workflow
from htclean.engine.scheduling import Job, Run
from htclean.engine.workflow_spec import WorkflowSpec, load_workflow
from htclean.imaging.errors import InputError


class Levels:
    """The engine's handling of workflow levels (mixed into runner._Engine before
    scheduling.Scheduler, which supplies ``_succeeded`` and ``_failed``)."""

    # supplied by the engine
    catalogs: object
    record: object
    owners: dict
    runs: list
    peak: object
    ready: object
    total: int
    done: int
    skipped: int
    remember_checksums: object

    def enter(self, spec: WorkflowSpec, key: str, parent: Job | None) -> Run:
        """Plan a workflow and queue its runnable jobs (InputError if it cannot be planned).

        Jobs recorded as succeeded whose outputs are intact are done already; a workflow
        entered again (a retried sub-workflow) replaces its earlier run.
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
        run = Run(key, parent, {}, spec.children, {}, planned.external, spec.replicas)
        run.lineage = (parent.run.lineage if parent else []) + [run]
        run.jobs = {jid: Job(p, run) for jid, p in planned.jobs.items()}
        if parent is not None:
            parent.child = run
        for job in run.jobs.values():
            done = self.record.done(key, job.id)
            if done is not None and not job.plan.spec.is_subworkflow:
                job.state = "done"
                for lfn, path in done["outputs"].items():
                    run.produced[lfn] = Path(path)
                    self.peak.offer(lfn, path)
                self.remember_checksums(done["outputs"], done.get("checksums"))
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

    def _run_finished(self, run: Run) -> None:
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

    def _record_sub(self, job: Job, status: str, exit_status: int | None,
                    error: str | None) -> None:
        self.record.append({
            "workflow": job.run.key, "job": job.id, "type": job.plan.category,
            "transformation": "subworkflow", "child": job.child.key if job.child else None,
            "attempt": self.record.next_attempt(job.run.key, job.id), "start": job.entered,
            "end": time.time(), "exit_status": exit_status, "status": status, "error": error,
            "outputs": {}, "record": None, "stdout": None, "stderr": None, "work_dir": None,
            "injected_failure": False})

    def _locate(self, run: Run, lfn: str) -> Path | None:
        path = run.produced.get(lfn) or run.external.get(lfn)
        if path is None:
            path, _ = local_replica(lfn, (run.replicas, self.catalogs.replicas))
        return path

    def _enter_sub(self, job: Job) -> None:
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

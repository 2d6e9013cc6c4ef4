"""Run one attempt of one job, as an HTCondor slot would: a fresh working directory with the
inputs linked in, the process with its environment, stdout/stderr to files, then the declared
outputs checked and staged out to the storage directory, and (after a success) the working
directory cleared of everything but the outputs that are not staged out.

``execute`` runs in a worker thread; it never touches the scheduler's state. A task with a
``timeout`` is stopped when it runs longer (SIGTERM to its process group, SIGKILL after
``KILL_GRACE_S``) and fails with "timed out". The ProcessTable keeps the running processes in
``DIR/engine/running.json`` too, so that an engine started after this one was killed can stop
the jobs it left running (state.stop_orphans).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from htclean.engine import forkserver
from htclean.engine.workflow_spec import Use


@dataclass
class Task:
    """Everything one attempt needs. ``links``: (lfn, source, copy) put in the working
    directory (copied for inout files, which the job may change, else symlinked)."""

    token: int
    argv: list[str]
    work_dir: Path
    env: dict[str, str]
    links: list[tuple[str, Path, bool]]
    outputs: list[Use]
    storage_dir: Path
    stdout_path: Path
    stderr_path: Path
    stdin_lfn: str | None = None
    stdout_lfn: str | None = None
    stderr_lfn: str | None = None
    timeout: float | None = None


KILL_GRACE_S = 3.0


@dataclass
class Outcome:
    """What an attempt did. ``exit_status`` None: the process never started."""

    start: float
    end: float
    exit_status: int | None
    ok: bool
    error: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    stdout: str | None = None
    stderr: str | None = None


class ProcessTable:
    """The running processes, so that an interrupt can stop them; thread safe."""

    def __init__(self, pid_file: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._procs: dict = {}  # token -> subprocess.Popen or forkserver.ForkedProcess
        self._dirs: dict[int, str] = {}
        self.pid_file = pid_file
        self.closed = False

    def start(self, token: int, launch, work_dir: Path | None = None):
        """Call ``launch()`` and keep the process, unless the table was closed (interrupt)."""
        with self._lock:
            if self.closed:
                return None
            proc = launch()
            self._procs[token] = proc
            self._dirs[token] = str(work_dir or "")
            self._save()
            return proc

    def forget(self, token: int) -> None:
        with self._lock:
            self._procs.pop(token, None)
            self._dirs.pop(token, None)
            self._save()

    def send(self, token: int, sig: int) -> bool:
        """Send ``sig`` to one running job's process group; whether it was running."""
        with self._lock:
            proc = self._procs.get(token)
            if proc is None:
                return False
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                return False
            return True

    def _save(self) -> None:
        """Rewrite the pid file (lock held): {pid: working directory} of the running jobs."""
        if self.pid_file is None:
            return
        tmp = self.pid_file.with_name(f".{self.pid_file.name}.tmp")
        tmp.write_text(json.dumps({str(p.pid): self._dirs[t] for t, p in self._procs.items()}))
        os.replace(tmp, self.pid_file)

    def signal_all(self, sig: int) -> int:
        """Close the table and send ``sig`` to every running job's process group."""
        with self._lock:
            self.closed = True
            procs = list(self._procs.values())
        for proc in procs:
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        return len(procs)


def _place(src: Path, dest: Path, copy: bool) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if copy:
        if src.is_dir():
            shutil.copytree(src, dest, symlinks=True)
        else:
            shutil.copy2(src, dest)
    else:
        os.symlink(src, dest)


def stage_out(src: Path, dest: Path) -> None:
    """Move a file atomically to ``dest`` (rename; across file systems: copy to a temporary
    name beside ``dest``, rename, then remove the source)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.stage")
        shutil.copy2(src, tmp)
        os.replace(tmp, dest)
        os.unlink(src)


def _prepare(task: Task) -> None:
    if task.work_dir.is_symlink() or task.work_dir.is_file():
        task.work_dir.unlink()
    elif task.work_dir.exists():
        shutil.rmtree(task.work_dir)
    task.work_dir.mkdir(parents=True)
    task.stdout_path.parent.mkdir(parents=True, exist_ok=True)
    for lfn, src, copy in task.links:
        _place(src, task.work_dir / lfn, copy)


def _clear_scratch(task: Task, keep: set[str]) -> None:
    """After a success: remove what the job left in its working directory (input links,
    scratch files) except the outputs that stay there (``keep``: LFNs not staged out)."""
    tops = {lfn.split("/", 1)[0] for lfn in keep}
    for entry in task.work_dir.iterdir():
        if entry.name in tops:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait(proc, timeout: float | None) -> tuple[int, bool]:
    """(exit status, whether it was stopped for running past ``timeout`` seconds). Only
    ``proc.pid`` and ``proc.wait()`` are used, so any launcher's process object will do."""
    if timeout is None:
        return proc.wait(), False
    fired = threading.Event()

    def stop(sig: int) -> None:
        fired.set()
        _signal_group(proc.pid, sig)

    timers = [threading.Timer(timeout, stop, (signal.SIGTERM,)),
              threading.Timer(timeout + KILL_GRACE_S, stop, (signal.SIGKILL,))]
    for t in timers:
        t.daemon = True
        t.start()
    try:
        status = proc.wait()
    finally:
        for t in timers:
            t.cancel()
    return status, fired.is_set()


def execute(task: Task, table: ProcessTable) -> Outcome:
    """Run one attempt to its end; never raises for the job's own failures."""
    start = time.time()
    try:
        _prepare(task)
    except OSError as exc:
        return Outcome(start, time.time(), None, False, f"could not prepare {task.work_dir}: {exc}")
    out_target = task.work_dir / task.stdout_lfn if task.stdout_lfn else task.stdout_path
    err_target = task.work_dir / task.stderr_lfn if task.stderr_lfn else task.stderr_path
    stdin_path = task.work_dir / task.stdin_lfn if task.stdin_lfn else None
    with open(out_target, "wb") as out, open(err_target, "wb") as err, \
            (open(stdin_path, "rb") if stdin_path else open(os.devnull, "rb")) as inp:
        def launch():  # htclean's own executables are forked by the fork server
            return forkserver.popen(task.argv, task.work_dir, task.env, inp, out, err)
        try:
            proc = table.start(task.token, launch, task.work_dir)
        except OSError as exc:
            return Outcome(start, time.time(), None, False,
                           f"could not start {task.argv[0]}: {exc.strerror or exc}")
        if proc is None:
            return Outcome(start, time.time(), None, False, "interrupted before it started")
        try:
            status, timed_out = _wait(proc, task.timeout)
        finally:
            table.forget(task.token)
    outcome = Outcome(start, time.time(), status, False, stdout=str(out_target),
                      stderr=str(err_target))
    if status != 0:
        if timed_out:
            outcome.error = f"timed out after {task.timeout:g} s (the job timeout)"
        elif status < 0:
            outcome.error = f"killed by {signal.Signals(-status).name}"
        return outcome
    missing = [u.lfn for u in task.outputs
               if not u.optional and not (task.work_dir / u.lfn).exists()]
    if missing:
        outcome.error = "exited 0 without its declared output(s) " + ", ".join(missing)
        return outcome
    try:
        for use in task.outputs:
            src = task.work_dir / use.lfn
            if not src.exists():
                continue
            if use.stage_out:
                dest = task.storage_dir / use.lfn
                stage_out(src, dest)
                outcome.outputs[use.lfn] = str(dest)
            else:
                outcome.outputs[use.lfn] = str(src)
    except OSError as exc:
        outcome.error = f"stage-out failed: {exc}"
        return outcome
    _clear_scratch(task, {u.lfn for u in task.outputs if not u.stage_out})
    if task.stdout_lfn in outcome.outputs:
        outcome.stdout = outcome.outputs[task.stdout_lfn]
    if task.stderr_lfn in outcome.outputs:
        outcome.stderr = outcome.outputs[task.stderr_lfn]
    outcome.end = time.time()
    outcome.ok = True
    return outcome

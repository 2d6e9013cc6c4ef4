"""The local engine's permanent record, under ``DIR/engine/``.

- ``attempts.jsonl``: append-only, one JSON object per attempt of a job, written when the
  attempt ends: ``workflow`` (the workflow's key), ``job`` (job id), ``type`` (its category),
  ``transformation``, ``attempt`` (1, 2, ... over every run of this directory), ``start`` and
  ``end`` (Unix seconds), ``exit_status`` (None if it never ran; negative: killed by that
  signal), ``status`` (``succeeded``, ``failed`` or ``interrupted``), ``error`` (why it failed,
  beyond the exit status), ``outputs`` ({lfn: path} of every output it left), ``record`` (the
  job's own ``*.record.json``, if it wrote one), ``stdout``, ``stderr``, ``work_dir``,
  ``injected_failure``, ``fault`` (the fault injected, if any), ``checksums`` ({lfn:
  {"sha256", "bytes"}} of the outputs, from the job's own record).
- ``running.json``: {pid: working directory} of the job processes running now (rewritten as
  they start and end); ``lock``: held (flock) by the engine running this directory.
- ``state/<workflow key>.json``: a snapshot per workflow (status, and each job's state and
  attempts), rewritten atomically as the run goes.
- ``run.json``: what ``htclean run`` keeps about the run (its configuration and its digest).

Resume reads ``attempts.jsonl``: a job whose latest attempt succeeded and whose outputs all
still exist, with the size and sha256 recorded for them, is done. An engine that was killed
leaves its jobs running: the next one stops them first (``stop_orphans``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from htclean.imaging.errors import InputError

ATTEMPTS = "attempts.jsonl"
RUNNING = "running.json"
LOCK = "lock"


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temporary name in the same directory, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def read_attempts(engine_dir: Path) -> list[dict]:
    """Every recorded attempt, in the order they ended; a torn last line is skipped."""
    path = Path(engine_dir) / ATTEMPTS
    if not path.is_file():
        return []
    out = []
    with path.open() as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and "workflow" in entry and "job" in entry:
                out.append(entry)
    return out


def has_record(engine_dir: Path) -> bool:
    """Whether a run has already left attempts in this engine directory."""
    path = Path(engine_dir) / ATTEMPTS
    return path.is_file() and path.stat().st_size > 0


class RunRecord:
    """The attempts log of one plan directory, open for appending, with the history indexed."""

    def __init__(self, engine_dir: Path) -> None:
        self.dir = Path(engine_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = self.dir / "state"
        self.path = self.dir / ATTEMPTS
        self._history: dict[tuple[str, str], list[dict]] = {}
        for entry in read_attempts(self.dir):
            self._history.setdefault((entry["workflow"], entry["job"]), []).append(entry)
        self._fh = self.path.open("a")
        if self.path.stat().st_size and not self._ends_with_newline():
            self._fh.write("\n")  # a torn last line (the engine was killed mid-write)
            self._fh.flush()

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def close(self) -> None:
        self._fh.close()

    def append(self, entry: dict) -> None:
        """Add one attempt (flushed at once, so a killed engine loses at most the running ones)."""
        self._fh.write(json.dumps(entry, default=str) + "\n")
        self._fh.flush()
        self._history.setdefault((entry["workflow"], entry["job"]), []).append(entry)

    def attempts(self, workflow: str, job: str) -> list[dict]:
        return self._history.get((workflow, job), [])

    def next_attempt(self, workflow: str, job: str) -> int:
        return max((int(e.get("attempt", 0)) for e in self.attempts(workflow, job)), default=0) + 1

    def done(self, workflow: str, job: str) -> dict | None:
        """The latest attempt if it succeeded and every output it recorded still exists, with
        the size and sha256 recorded for it (when the job recorded them)."""
        history = self.attempts(workflow, job)
        if not history or history[-1].get("status") != "succeeded":
            return None
        last = history[-1]
        sums = last.get("checksums") or {}
        for lfn, path in (last.get("outputs") or {}).items():
            if not os.path.exists(path) or not intact(path, sums.get(lfn)):
                return None
        return last

    def write_state(self, workflow: str, snapshot: dict) -> None:
        write_json(self.state_dir / f"{workflow}.json", snapshot)


def intact(path: str | os.PathLike, expected: dict | None) -> bool:
    """Whether a file has the size and sha256 of ``expected`` (True when nothing is known)."""
    if not expected:
        return True
    try:
        if os.path.getsize(path) != expected.get("bytes"):
            return False
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except OSError:
        return False
    return h.hexdigest() == expected.get("sha256")


@contextlib.contextmanager
def engine_lock(engine_dir: Path):
    """Hold ``DIR/engine/lock`` for a run: a second engine on the same directory is refused
    (InputError). The lock dies with the process, so a killed engine leaves none."""
    engine_dir.mkdir(parents=True, exist_ok=True)
    path = engine_dir / LOCK
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "another process"
            raise InputError(f"{engine_dir.parent} is being run by {owner}; wait for it or "
                             "stop it first") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"htclean (pid {os.getpid()})\n")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def stop_orphans(engine_dir: Path, wait_s: float = 10.0) -> list[str]:
    """Kill (SIGKILL, whole process group) the jobs that a killed engine left running, as
    listed in ``running.json``, if they still run in the working directory recorded for them;
    returns their working directories."""
    path = Path(engine_dir) / RUNNING
    try:
        running = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    stopped = []
    for pid_text, work_dir in running.items():
        pid = int(pid_text)
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue  # gone (or not ours to see)
        if work_dir and os.path.realpath(work_dir) != cwd:
            continue  # the pid was reused by something else
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        stopped.append(work_dir)
        deadline = time.monotonic() + wait_s
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if _is_zombie(pid):
                break
            time.sleep(0.02)
    path.unlink(missing_ok=True)
    return stopped


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True

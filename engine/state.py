"""The local engine's permanent record, under ``DIR/engine/``.

- ``attempts.jsonl``: append-only, one JSON object per attempt of a job, written when the
  attempt ends: ``workflow`` (the workflow's key), ``job`` (job id), ``type`` (its category),
  ``transformation``, ``attempt`` (1, 2, ... over every run of this directory), ``start`` and
  ``end`` (Unix seconds), ``exit_status`` (None if it never ran; negative: killed by that
  signal), ``status`` (``succeeded``, ``failed`` or ``interrupted``), ``error`` (why it failed,
  beyond the exit status), ``outputs`` ({lfn: path} of every output it left), ``record`` (the
  job's own ``*.record.json``, if it wrote one), ``stdout``, ``stderr``, ``work_dir``,
  ``injected_failure``.
- ``state/<workflow key>.json``: a snapshot per workflow (status, and each job's state and
  attempts), rewritten atomically as the run goes.
- ``run.json``: what ``htclean run`` keeps about the run (its configuration and its digest).

Resume reads ``attempts.jsonl``: a job whose latest attempt succeeded and whose outputs all
still exist is done.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ATTEMPTS = "attempts.jsonl"


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
        """The latest attempt if it succeeded and every output it recorded still exists."""
        history = self.attempts(workflow, job)
        if not history or history[-1].get("status") != "succeeded":
            return None
        last = history[-1]
        if all(os.path.exists(p) for p in (last.get("outputs") or {}).values()):
            return last
        return None

    def write_state(self, workflow: str, snapshot: dict) -> None:
        write_json(self.state_dir / f"{workflow}.json", snapshot)

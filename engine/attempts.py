"""What the engine decides about one attempt: retry it or not, how to say why it failed, which
checksums its inputs must have, and which faults to inject into it.

Retry policy (as DAGMan's ``RETRY job N UNLESS-EXIT value``): a failed attempt is retried
while the job has retries left, unless it exited with its ``unless_exit`` status (htclean's
jobs: 2, bad input, which a retry cannot fix). A job stopped by the job timeout, killed by a
signal or that did not start is retried like any other failure.

Seeded fault injection (``HTCLEAN_FAULTS="kind,kind..."``, ``HTCLEAN_FAULT_SEED=N``; for
tests of the engine's resilience): for each kind, the seed picks which compute attempt of the
run gets it, counting from 1 in the order attempts start:

- ``kill``: SIGKILL to the job's process group at a random point (0.05-1 s after it starts;
  if the job is over before that, the next attempt gets it, at half the delay);
- ``hang``: the job sleeps instead of working (``HTCLEAN_INJECT_HANG``), so that only the
  job timeout ends it;
- ``partial``: the job leaves its first output half written and kills itself
  (``HTCLEAN_INJECT_PARTIAL``), as a writer that is not atomic would.

``HTCLEAN_FAIL_ONCE=<job id>[,<workflow>/<job id>...]`` makes the first attempt of those jobs
fail (``HTCLEAN_INJECT_FAILURE=1``, exit 1).
"""

from __future__ import annotations

import json
import os
import random
import signal
from dataclasses import dataclass, field
from pathlib import Path

FAIL_ONCE_ENV = "HTCLEAN_FAIL_ONCE"
FAULTS_ENV = "HTCLEAN_FAULTS"
SEED_ENV = "HTCLEAN_FAULT_SEED"
INJECT_ENV = "HTCLEAN_INJECT_FAILURE"
CHECKSUMS_ENV = "HTCLEAN_INPUT_CHECKSUMS"
JOB_ENV = {"hang": "HTCLEAN_INJECT_HANG", "partial": "HTCLEAN_INJECT_PARTIAL"}
FAULT_KINDS = ("kill", "hang", "partial")
STDERR_TAIL = 8
FIRST_FAULT_AT = 6  # faults land among the first attempts of a run


def should_retry(tries: int, retries: int, unless_exit: int | None,
                 exit_status: int | None) -> bool:
    """Whether an attempt that failed with ``exit_status`` (None: never started) is tried
    again after ``tries`` attempts of a job allowed ``retries`` retries."""
    if unless_exit is not None and exit_status == unless_exit:
        return False
    return tries <= retries


def failure_message(name: str, transformation: str, tries: int, entry: dict,
                    final: bool = True) -> str:
    """The message of a job that failed for good: the job, what happened, its stderr's last
    lines, its logs and working directory."""
    status = entry["exit_status"]
    what = "did not start" if status is None else f"exit status {status}"
    why = f"; {entry['error']}" if entry.get("error") else ""
    no_retry = "" if final else " (not retried: bad input)"
    lines = [f"job {name} ({transformation}) failed after {tries} attempt(s){no_retry}: "
             f"{what}{why}"]
    try:
        tail = Path(entry["stderr"]).read_text(errors="replace").splitlines()[-STDERR_TAIL:]
    except (OSError, TypeError):
        tail = []
    if tail:
        lines.append("  last lines of its stderr:")
        lines.extend("    " + t for t in tail)
    lines.append(f"  logs: {entry['stdout']} {entry['stderr']}")
    lines.append(f"  working directory: {entry['work_dir']}")
    return "\n".join(lines)


def output_checksums(record_path: str | None, outputs: dict[str, str]) -> dict[str, dict]:
    """{lfn: {"sha256", "bytes"}} of a job's outputs, from the ``outputs`` of its own record
    (htclean's jobs write it); {} when there is none."""
    if not record_path:
        return {}
    try:
        recorded = json.loads(Path(record_path).read_text()).get("outputs") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(recorded, dict):
        return {}
    by_name = {os.path.normpath(k): v for k, v in recorded.items() if isinstance(v, dict)}
    return {lfn: by_name[os.path.normpath(lfn)] for lfn in outputs
            if os.path.normpath(lfn) in by_name}


def write_checksum_file(path: Path, sums: dict[str, str]) -> Path:
    """``<sha256>  <lfn>`` lines (sha256sum's format) for the job's ``HTCLEAN_INPUT_CHECKSUMS``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{digest}  {lfn}\n" for lfn, digest in sorted(sums.items())))
    return path


@dataclass
class FaultPlan:
    """Which attempt gets which fault (see the module docstring); empty without the env."""

    at: dict[str, int] = field(default_factory=dict)
    kill_delay: float = 0.0
    started: int = 0
    armed_kill: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ = os.environ) -> FaultPlan:
        kinds = [k.strip() for k in env.get(FAULTS_ENV, "").split(",") if k.strip()]
        unknown = sorted(set(kinds) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"{FAULTS_ENV}: unknown fault(s) {', '.join(unknown)}; "
                             f"known: {', '.join(FAULT_KINDS)}")
        rng = random.Random(int(env.get(SEED_ENV, "0")))
        plan = cls({k: rng.randint(1, FIRST_FAULT_AT) for k in FAULT_KINDS if k in kinds})
        plan.kill_delay = rng.uniform(0.05, 1.0)
        return plan

    def next_attempt(self) -> tuple[str | None, dict[str, str]]:
        """The fault of the attempt starting now (None, or a kind) and its extra environment;
        two faults due at once are one after the other."""
        self.started += 1
        n = self.started
        due = [k for k in FAULT_KINDS if self.at.get(k) == n]
        if self.armed_kill:
            self.armed_kill = False
            due = ["kill", *(k for k in due if k != "kill")]
        if not due:
            return None, {}
        for later in due[1:]:
            self.at[later] = n + 1
        kind = due[0]
        return kind, ({JOB_ENV[kind]: "1"} if kind in JOB_ENV else {})

    def missed_kill(self) -> None:
        """The attempt meant to be killed ended first: the next one gets the kill, sooner."""
        self.armed_kill = True
        self.kill_delay /= 2

    @staticmethod
    def kill_signal() -> int:
        return signal.SIGKILL

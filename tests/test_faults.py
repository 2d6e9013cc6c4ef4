"""Seeded faults in the embedded engine end, after retries and `--resume`, with the image of
an undisturbed run, bit for bit.

Each seed runs `htclean run` with HTCLEAN_FAULTS (engine/attempts.py): one job SIGKILLed at a
random point, one job leaving a half-written output and dying, on some seeds one job hanging
past the job timeout; the test then SIGKILLs the engine itself once a seeded number of
attempts are recorded, damages one staged output on some seeds, and resumes. The run must end
with the undisturbed run's FITS data, component lists and summary; no job recorded as
succeeded runs again on resume, except the one whose output was damaged.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import runkit

from htclean.engine.attempts import FaultPlan

SEEDS = range(10)
JOB_TIMEOUT_S = 15.0  # seeds with a hang only: under load the restore job takes ~10 s
CYCLES = 1
PAIRS = 2  # seeds run at once (the machine has 2 cores)


@pytest.fixture(scope="module")
def ms(tmp_path_factory) -> Path:
    return runkit.write_ms(tmp_path_factory.mktemp("faults") / "obs.ms")


@pytest.fixture(scope="module")
def clean(tmp_path_factory, ms) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("clean")
    out = root / "run"
    proc = runkit.start(runkit.write_config(root, ms, cycles=CYCLES), out)
    assert proc.wait(timeout=300) == 0, runkit.stderr_of(out)
    return runkit.products(out)


def _faults(seed: int) -> tuple[str, int, bool]:
    """(fault kinds, attempts recorded before the engine is killed: 1-3 after the last
    injected fault, whether to damage an output before resuming)."""
    kinds = "kill,partial" + (",hang" if seed % 4 == 0 else "")
    plan = FaultPlan.from_env({"HTCLEAN_FAULTS": kinds, "HTCLEAN_FAULT_SEED": str(seed)})
    last = max(plan.at.values()) + len(plan.at)  # faults due at once come one after another
    return kinds, min(last + random.Random(seed).randint(1, 3), 10), seed % 4 == 1


def _lines(path: Path) -> int:
    try:
        return sum(1 for line in path.read_text().splitlines() if line.strip())
    except OSError:
        return 0


class Seed:
    """One seed's run: started with faults, killed after ``kill_after`` attempts."""

    def __init__(self, root: Path, ms: Path, seed: int):
        self.seed, self.out = seed, root / f"seed-{seed}" / "run"
        self.kinds, self.kill_after, self.damage = _faults(seed)
        self.cfg = runkit.write_config(root / f"seed-{seed}", ms, cycles=CYCLES)
        env = {"HTCLEAN_FAULTS": self.kinds, "HTCLEAN_FAULT_SEED": str(seed)}
        timeout = ["--job-timeout", str(JOB_TIMEOUT_S)] if "hang" in self.kinds else []
        self.proc = runkit.start(self.cfg, self.out, *timeout, env=env)
        self.killed = False

    def watch(self) -> bool:
        """Kill the engine once enough attempts are recorded; whether it is still running."""
        if self.proc.poll() is not None:
            return False
        if not self.killed and _lines(self.out / "engine" / "attempts.jsonl") >= self.kill_after:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.killed = True
            return False
        return True


def test_faults_end_with_the_undisturbed_image(tmp_path, ms, clean):
    pending = list(SEEDS)
    running: list[Seed] = []
    done: list[Seed] = []
    deadline = time.monotonic() + 600
    while (pending or running) and time.monotonic() < deadline:
        while pending and len(running) < PAIRS:
            running.append(Seed(tmp_path, ms, pending.pop(0)))
        for s in list(running):
            if not s.watch():
                running.remove(s)
                done.append(s)
                s.resumed = _resume(s)  # not waited for here: the other runs stay watched
        time.sleep(0.05)
    assert not pending and not running, "the fault runs did not finish in time"
    seen = Counter()
    for s in done:
        s.resumed["code"] = s.resumed.pop("proc").wait(timeout=300)
        _check_seed(s, clean, seen)
    print(f"faults over {len(done)} seeds, each run ending bit-identical: {dict(seen)}")
    # every kind of fault happened, over the seeds
    assert seen["kill"] >= 8 and seen["partial"] >= 8 and seen["hang"] >= 2, seen
    assert seen["engine killed"] >= 8 and seen["damaged"] >= 2, seen


def _resume(s: Seed) -> dict:
    """After the engine was killed (or finished): damage an output if the seed says so, then
    start `htclean run --resume`; the attempts recorded before, the damaged job, the process."""
    before = runkit.attempts(s.out)
    damaged = None
    if s.damage:
        victims = [a for a in before if a["status"] == "succeeded" and a.get("checksums")
                   and a["job"].startswith(("grid", "residual", "deconvolve"))]
        if victims:
            victim = victims[-1]
            lfn, path = next(iter((k, v) for k, v in victim["outputs"].items()
                                  if k in victim["checksums"]))
            data = Path(path).read_bytes()
            Path(path).write_bytes(data[: len(data) // 2])  # a half-written file left behind
            damaged = (victim["workflow"], victim["job"])
    proc = runkit.start(s.cfg, s.out, "--resume")
    return {"before": before, "damaged": damaged, "proc": proc}


def _check_seed(s: Seed, clean: dict[str, bytes], seen: Counter) -> None:
    info = s.resumed
    assert info["code"] == 0, f"seed {s.seed}: resume failed\n{runkit.stderr_of(s.out)[-3000:]}"
    got = runkit.products(s.out)
    assert got.keys() == clean.keys(), s.seed
    for key in clean:
        assert got[key] == clean[key], f"seed {s.seed}: {key} differs from the undisturbed run"
    tries = runkit.attempts(s.out)
    faults = [a["fault"] for a in tries if a.get("fault")]
    seen.update(faults)
    seen["engine killed"] += s.killed
    seen["damaged"] += info["damaged"] is not None
    for a in tries:
        if a.get("fault") == "kill":
            assert a["exit_status"] == -signal.SIGKILL and a["status"] == "failed"
        if a.get("fault") == "hang":
            assert "timed out" in (a["error"] or "") and a["status"] == "failed"
        if a.get("fault") == "partial":
            assert a["exit_status"] == -signal.SIGKILL and not a["outputs"]
    # no job recorded as succeeded ran again on resume (but the one whose output was damaged)
    succeeded = {(a["workflow"], a["job"]) for a in info["before"] if a["status"] == "succeeded"}
    after = tries[len(info["before"]):]
    again = {(a["workflow"], a["job"]) for a in after if a["transformation"] != "subworkflow"}
    assert again & succeeded <= ({info["damaged"]} if info["damaged"] else set()), s.seed
    if info["damaged"]:
        assert info["damaged"] in again, f"seed {s.seed}: the damaged output was trusted"
    per_job = Counter((a["workflow"], a["job"]) for a in tries if a["status"] == "succeeded"
                      and a["transformation"] != "subworkflow")
    assert max(per_job.values()) <= (2 if info["damaged"] else 1), s.seed
    records = [json.loads(Path(a["record"]).read_text()) for a in tries
               if a["status"] == "succeeded" and a.get("record")]
    assert all(r["exit_class"] == "success" and r["outputs"] for r in records)

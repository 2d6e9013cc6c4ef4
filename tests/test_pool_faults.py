"""Faults on the real test pool, each ending with the image of an undisturbed run, bit for bit,
and saying which jobs ran again (from the jobstate logs of every level): a compute job
evicted; an input transfer that fails, once and for good; a level's DAGMan killed; the
staging directory full; the submit host's ``next`` job killed; the whole pool restarted.

Three workflows (the tiny run of test_pool.py: 720 rows, 64 x 64, 2 parts; 2 major cycles
here, so that a nested level, cycle-01, holds residual jobs: those of cycle 2, after next-c01),
submitted at once from one module fixture: one takes the faults it survives by itself
(eviction, a transfer failed once, its cycle's DAGMan killed, its next job killed; each aimed
at a job of its own), one the input that stays missing, one the full staging directory (the
two fail and are resumed with pegasus-run). Each fault is injected by a thread of its own
(tests/poolfaults.py), which also repairs and resumes the runs it fails. The restart of the
whole pool comes last, once every other fault is in, while the runs are still going, and only
when the queue holds no job of another
user (it waits for that, bounded); the pool is always started again.

The fixture installs tests/testpool/60-htclean-tests.conf into the pool (the schedd evaluates
periodic_remove every 5 s instead of 60 s, so a held job is removed in seconds).
The reference is the embedded engine's image of the same configuration, which the pool's
equals bit for bit at the gridder's defaults (the plan's thread count fixes the bits, not
the cores a slot gives a job: imaging/cpus.py).
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import numpy as np
import poolkit
import pytest
from poolfaults import (
    KINDS,
    Fault,
    can_mount,
    level_events,
    mount_staging,
    reruns,
    tune_pool,
    unmount_staging,
)
from poolkit import NAME, RUN_TIMEOUT_S, TESTPOOL, Run, give_to_user, why_not, write_config

from htclean.imaging.fits import read_fits

# one xdist worker runs both pool modules, one after the other (the faults restart the pool)
pytestmark = [pytest.mark.pool, pytest.mark.xdist_group("pool")]

RUN_ID = "fx"
CYCLES = 2  # cycle-01: next-c01, then cycle 2's residual jobs (the faults' targets)
# Which workflow takes which fault: the faults a run survives by itself share one.
RUN_OF = {"evict": "shared", "transfer": "shared", "dagman": "shared", "next": "shared",
          "restart": "shared", "missing": "missing", "staging": "staging"}


@pytest.fixture(scope="module")
def faults():
    why = why_not()
    if why:
        pytest.skip(why)
    t0 = time.monotonic()
    print(f"\npool settings: {tune_pool()}")
    venv, ws = poolkit.user_venv(), poolkit.workspace("htclean-pool-faults")
    cfg = write_config(ws, ws / "obs.ms", run_id=RUN_ID, cycles=CYCLES)
    give_to_user(cfg)
    kinds = [k for k in KINDS if k != "staging" or can_mount()]
    runs = {key: Run(ws, venv, key, before_submit=mount_staging if key == "staging" else None)
            for key in {RUN_OF[k] for k in kinds}}
    found = {k: Fault(k, runs[RUN_OF[k]], mine=[ws]) for k in kinds}
    found["restart"].others = [f for k, f in found.items() if k != "restart"]
    for fault in found.values():
        fault.start()
    subprocess.run([str(venv / "htclean"), "run", str(cfg), "-o", str(ws / "engine")],
                   check=True, capture_output=True, timeout=RUN_TIMEOUT_S)
    reference = read_fits(ws / "engine" / "outputs" / f"{NAME}-image.fits")[0]
    yield {"faults": found, "reference": reference, "t0": t0, "ws": ws, "venv": venv}
    for fault in found.values():
        fault.join()
    if "staging" in runs:
        unmount_staging(runs["staging"])
    print(f"\npool fault module: {time.monotonic() - t0:.0f} s of wall time")


def finished(faults: dict, kind: str) -> Fault:
    """The fault's run once over: injected, no error, success, the reference image."""
    if kind not in faults["faults"]:
        pytest.skip(f"{kind}: cannot be injected here (mount refused)")
    fault = faults["faults"][kind].join()
    assert fault.done.is_set(), f"{kind}: still running"
    assert fault.error is None, fault.error
    assert fault.notes.get("injected"), fault.notes
    print(f"\n{kind}: {fault.notes}\n  ran again: {reruns(fault.run)}")
    assert fault.state == 0, f"{kind}: the run failed: {fault.notes}"
    image = read_fits(fault.run.out / "outputs" / f"{NAME}-image.fits")[0]
    assert np.array_equal(image, faults["reference"]), f"{kind}: not the undisturbed image"
    return fault


def htclean_reruns(fault: Fault) -> dict[str, int]:
    return {job: n for job, n in reruns(fault.run).items() if "/htclean-" in job}


def user_log_events(run: Run, cluster: int) -> list[str]:
    """The event codes HTCondor logged for job ``cluster`` in its level's user log."""
    pattern = re.compile(rf"^(\d{{3}}) \({cluster}\.000\.000\)", re.M)
    for log in run.submit.rglob("*.log"):
        if log.name.endswith((".dagman.log", "jobstate.log", "monitord.log")):
            continue
        codes = pattern.findall(log.read_text(errors="replace"))
        if "000" in codes:
            return codes
    return []


def test_an_evicted_compute_job_starts_again(faults):
    fault = finished(faults, "evict")
    codes = user_log_events(fault.run, fault.notes["cluster"])
    assert "004" in codes and codes.count("001") >= 2, codes  # evicted, then executed again
    events = level_events(fault.run, fault.level)[f"htclean-grid_{fault.target}"]
    # one job (no DAGMan retry used): executing, evicted, executing again, terminated
    assert events.count("SUBMIT") == 1 and "JOB_EVICTED" in events, events
    assert events.count("EXECUTE") == 2 and "JOB_TERMINATED" in events, events


def test_a_failed_input_transfer_is_removed_and_retried(faults):
    fault = finished(faults, "transfer")
    assert fault.notes["held"] == 13, fault.notes  # TransferInputError
    assert Path(fault.notes["hidden"]).name in fault.notes["hold_reason"]
    events = level_events(fault.run, fault.level)[f"htclean-grid_{fault.target}"]
    # held (HTCondor logs an eviction first), removed by periodic_remove, retried by DAGMan
    assert events.count("SUBMIT") == 2 and events[-1] == "POST_SCRIPT_TERMINATED", events
    assert events[:5] == ["SUBMIT", "JOB_EVICTED", "JOB_HELD", "JOB_ABORTED",
                          "POST_SCRIPT_TERMINATED"], events
    assert "JOB_TERMINATED" in events[5:], events


def test_an_input_that_stays_missing_fails_the_run_named_then_resumes(faults):
    fault = finished(faults, "missing")
    assert fault.notes["failed"] == 1 and fault.notes["held"] == 13, fault.notes
    part = Path(fault.notes["hidden"]).name
    assert part in fault.notes["analyzer"], fault.notes["analyzer"][-3000:]
    assert fault.notes["pegasus_run"] == 0
    # the two held tries, then the one after pegasus-run; the jobs that had succeeded, in
    # the failed level and above, do not run again (the pool restart may still rerun what
    # it interrupted)
    again = htclean_reruns(fault)
    assert again.pop(f"{fault.level}/htclean-grid_{fault.target}") >= 3, again
    assert not {f"{RUN_ID}/htclean-next_next-c00",  # it ran minor cycle 1
                f"{RUN_ID}/htclean-grid_residual-c01-p001",
                f"{fault.level}/htclean-next_next-c01",  # it ran minor cycle 2
                f"{fault.level}/htclean-grid_residual-c02-p000"} & set(again), again


def test_a_killed_dagman_recovers_without_rerunning_a_compute_job(faults):
    fault = finished(faults, "dagman")
    # HTCondor requeues a scheduler-universe DAGMan killed by a signal (its on_exit_remove
    # keeps it unless it exited 0-2 or with SIGSEGV); the new one recovers from its log
    # (and the level went on to cycle-02 before the pool restart, the only fault that may
    # call pegasus-run on this run: the restart waits for cycle-02 to start)
    assert fault.notes["restarted_by_condor"], fault.notes
    events = level_events(fault.run, "cycle-01")
    # the job whose POST script had run when the DAGMan was killed is not submitted again
    # (it is the eviction's target too: one SUBMIT however often it executes)
    assert events[fault.dagman_node()].count("SUBMIT") == 1, events
    out = next(fault.run.submit.rglob("cycle-01.dag.dagman.out")).read_text()
    assert "Running in RECOVERY mode" in out


def test_a_full_staging_directory_fails_then_pegasus_run_finishes(faults):
    fault = finished(faults, "staging")
    # condorio: the first job to write into the full staging directory is either the level's
    # next job on the submit host (the minor cycle: execution.deconvolve_on auto), which
    # exits 3 naming the place, is retried and fails the level, or, once next is over, a
    # residual job beside the stage-in, held (code 12: HTCondor cannot write its outputs
    # back). The space freed, pegasus-run finishes.
    assert fault.notes["failed"] == 1, fault.notes
    if "held" in fault.notes:
        assert fault.notes["held"] == 12, fault.notes
        assert "No space left on device" in fault.notes["hold_reason"], fault.notes
        assert str(fault.run.out / "scratch") in fault.notes["hold_reason"]
    else:
        analyzer = fault.notes["analyzer"]
        assert "next-c01" in analyzer, analyzer[-3000:]
        assert "No space left on device" in analyzer, analyzer[-3000:]
        assert str(fault.run.out / "scratch") in analyzer, analyzer[-3000:]
    assert fault.notes["pegasus_run"] == 0


def test_a_job_on_a_full_filesystem_exits_3_with_one_line_naming_it(faults, tmp_path):
    """What the staging directory's jobs (site local, sharedfs) and every job whose working
    directory fills up do: exit 3 (resources), one line on stderr naming the place."""
    if not can_mount():
        pytest.skip("mount refused here")
    work = tmp_path / "full"
    work.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "full", str(work)], check=True)
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={work}/filler", "bs=4k"],
                       capture_output=True)
        ws = faults["ws"]
        partial = next((ws / "engine").rglob(f"{RUN_ID}-residual-c01-p000.npz"))
        proc = subprocess.run([str(faults["venv"] / "htclean-gather"), "--config",
                               str(ws / "engine" / "config.yml"), "--record", "g.record.json",
                               "--inputs", str(partial), "--output", "g.npz"],
                              cwd=work, capture_output=True, text=True, timeout=120)
    finally:
        subprocess.run(["umount", "-l", str(work)], capture_output=True)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and str(work) in lines[0], \
        lines


def test_a_killed_next_job_is_retried_and_writes_the_same_cycle(faults):
    fault = finished(faults, "next")
    events = level_events(fault.run, RUN_ID)["htclean-next_next-c00"]
    assert events.count("SUBMIT") == 2 and events.count("JOB_TERMINATED") == 2, events
    assert {j for j in htclean_reruns(fault) if j.startswith(f"{RUN_ID}/")} == {
        f"{RUN_ID}/htclean-next_next-c00"}
    undisturbed = faults["faults"]["missing"].run  # its top level saw no fault

    def cycle(run: Run) -> str:
        return (run.out / "outputs" / "cycle-01.yml").read_text().replace(str(run.out), "OUT")
    assert cycle(fault.run) == cycle(undisturbed)


def test_the_pool_restarted_mid_run(faults):
    """Last: the pool stopped and started again once every other fault was in."""
    fault = faults["faults"]["restart"].join()
    if fault.error is None and not fault.notes.get("injected"):
        pytest.skip(f"pool not restarted: {fault.notes.get('why')}")
    finished(faults, "restart")
    assert fault.notes["stop"] == 0 and fault.notes["start"] == 0, fault.notes
    assert TESTPOOL.exists() and poolkit.pool_running()
    for other in faults["faults"].values():  # every run in flight went on after it
        assert other.join().state == 0, other.notes
    # What is true on Pegasus 6.0-dev: the DAGMans come back from the queue after the
    # schedd's cool-down and recover from their logs, but the top level's pegasus-dagman
    # dies relaunching pegasus-monitord (pegasus-dagman.py formats a float with ':d') and
    # takes the workflow down; pegasus-run then finishes it. Say which happened.
    print(f"pegasus-run after the restart: {fault.notes.get('resumed_after_restart', 0)}")
    print(f"pool fault module: {time.monotonic() - faults['t0']:.0f} s so far")

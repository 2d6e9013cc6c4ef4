"""The engine's reliability mechanisms on toy workflows, and the pool plans' retry policy:
UNLESS-EXIT, the job timeout, the run lock, orphaned jobs, torn records, the POST script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import enginetoys as toys
import pytest
import runkit

from htclean.engine.runner import run_workflow
from htclean.engine.state import RunRecord, engine_lock, read_attempts, stop_orphans
from htclean.imaging.errors import InputError
from htclean.workflows import exitcode

SEED = {"seed.txt": "the seed\n"}
TESTPOOL = Path(os.environ.get("TESTPOOL", "/opt/htclean-testpool"))


def tries(plan: Path, job: str) -> list[dict]:
    return [a for a in read_attempts(plan / "engine") if a["job"] == job]


def test_unless_exit_is_not_retried(tmp_path):
    flag = tmp_path / "fail-now"
    flag.touch()
    toys.write_plan(tmp_path, toys.diamond(fail_if=str(flag)), SEED, retry="3 UNLESS-EXIT 3")
    result = run_workflow(tmp_path, jobs=2)
    assert result.status == "failed" and result.failed_job == "diamond/work-1"
    assert "failed after 1 attempt(s) (not retried: bad input): exit status 3" in result.message
    assert len(tries(tmp_path, "work-1")) == 1
    flag.unlink()
    assert run_workflow(tmp_path, jobs=2, resume=True).status == "succeeded"


def test_exit_2_of_a_real_job_stops_the_run_at_once(tmp_path):
    """An htclean job meeting bad input (its MS tar damaged after planning) is tried once,
    though it has 3 retries; the run fails with exit code 2 and names it."""
    from htclean.workflows import cli

    ms = runkit.write_ms(tmp_path / "obs.ms")
    plan_dir = tmp_path / "plan"
    assert cli.main(["plan", str(runkit.write_config(tmp_path, ms)), "-o", str(plan_dir),
                     "--site", "local"]) == 0
    tar = next((plan_dir / "inputs").glob("*.tar"))
    tar.write_bytes(b"no longer a tar of a Measurement Set\n" * 100)
    result = run_workflow(plan_dir, jobs=1)
    assert result.status == "failed" and result.exit_code == 2
    assert result.failed_job.endswith("/partition")
    assert "(not retried: bad input): exit status 2" in result.message
    assert "htclean-partition: error: " in result.message and tar.name in result.message
    assert len(tries(plan_dir, "partition")) == 1


@pytest.mark.parametrize("timeout", [0.6])
def test_a_job_past_the_timeout_is_stopped_and_retried(tmp_path, timeout):
    toys.write_plan(tmp_path, toys.diamond(sleep=5.0), SEED, retry=1)
    t0 = time.monotonic()
    result = run_workflow(tmp_path, jobs=2, job_timeout=timeout)
    assert time.monotonic() - t0 < 20
    assert result.status == "failed"
    works = [a for a in read_attempts(tmp_path / "engine") if a["job"].startswith("work-")]
    assert works and all(f"timed out after {timeout:g} s" in a["error"] for a in works)
    assert max(len(tries(tmp_path, a["job"])) for a in works) == 2  # retried once


def test_one_engine_per_directory(tmp_path):
    toys.write_plan(tmp_path, toys.diamond(), SEED)
    with engine_lock(tmp_path / "engine"):
        with pytest.raises(InputError, match="is being run by htclean"):
            run_workflow(tmp_path, jobs=1)
    assert run_workflow(tmp_path, jobs=1).status == "succeeded"


def test_jobs_left_by_a_killed_engine_are_stopped(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=work,
                            start_new_session=True)
    engine = tmp_path / "engine"
    engine.mkdir()
    (engine / "running.json").write_text(json.dumps({str(proc.pid): str(work)}))
    assert stop_orphans(engine) == [str(work)]
    proc.wait(timeout=10)
    assert proc.returncode is not None and not Path(f"/proc/{proc.pid}/cwd").exists()
    assert not (engine / "running.json").exists()


def test_a_torn_last_record_line_is_not_glued_to_the_next(tmp_path):
    engine = tmp_path / "engine"
    engine.mkdir()
    (engine / "attempts.jsonl").write_text('{"workflow": "w", "job": "a", "status": "su')
    record = RunRecord(engine)
    record.append({"workflow": "w", "job": "b", "status": "succeeded", "outputs": {}})
    record.close()
    assert [a["job"] for a in read_attempts(engine)] == ["b"]


def _fake_exitcode(tmp_path: Path, status: int) -> Path:
    fake = tmp_path / "pegasus-exitcode"
    fake.write_text(f"#!/bin/sh\nexit {status}\n")
    fake.chmod(0o755)
    return fake


# (the job's $RETURN, PegasusLite's last exitcode line in the job's stderr or None,
#  pegasus-exitcode's status, the node's status)
POST_CASES = [(2, 2, 1, 2), (1, 1, 1, 1), (0, 0, 0, 0), (2, 2, 0, 0),
              (-1, 2, 1, 2),  # held for a failed output transfer, then removed (condorio)
              (-1, 1, 1, 1), (-1, None, 1, 1)]


@pytest.mark.parametrize("ret, lite, pegasus, node", POST_CASES)
def test_post_script_passes_exit_2_on(tmp_path, ret, lite, pegasus, node):
    """The node fails with 2 (UNLESS-EXIT 2: no retry) only when the job itself exited 2."""
    script = exitcode.write(tmp_path)
    fake = _fake_exitcode(tmp_path, pegasus)
    lines = script.read_text().splitlines()
    lines = [f'exitcode="{fake}"' if x.startswith("exitcode=") else x for x in lines]
    script.write_text("\n".join(lines) + "\n")
    if lite is not None:
        (tmp_path / "job.err").write_text(f"User task failed\nPegasusLite: exitcode {lite}\n")
    done = subprocess.run([str(script), "-r", str(ret), "-R", "0", str(tmp_path / "job.out")],
                          capture_output=True, text=True)
    assert done.returncode == node, done.stderr


@pytest.mark.skipif(not (TESTPOOL / "env.sh").exists(), reason="the testpool bundle is not "
                    "installed (shared/testpool)")
def test_real_planner_writes_unless_exit_and_the_post_script(tmp_path):
    """Plan only (no pool needed): the .dag retries compute jobs N times UNLESS-EXIT 2, their
    POST script is the plan's own, and PegasusLite verifies the inputs' checksums."""
    ms = runkit.write_ms(tmp_path / "obs.ms")
    cfg = runkit.write_config(tmp_path, ms, execution={"site": "condor", "retries": 3})
    plan_dir = tmp_path / "plan"
    from htclean.workflows import cli

    assert cli.main(["plan", str(cfg), "-o", str(plan_dir)]) == 0
    done = subprocess.run(
        ["bash", "-c", f". {TESTPOOL}/env.sh && pegasus-plan --conf pegasus.properties "
         "--sites condorpool --output-sites local --staging-site condorpool=local "
         "--dir submit --cleanup inplace workflow.yml"],
        cwd=plan_dir, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    dag = next(plan_dir.glob("submit/**/*.dag")).read_text()
    post = exitcode.path(plan_dir)
    grid = next(line.split()[1] for line in dag.splitlines()
                if line.startswith("JOB ") and "grid" in line)
    assert f"RETRY {grid} 3 UNLESS-EXIT 2" in dag
    assert f"SCRIPT POST {grid} {post} " in dag
    wrapper = next(plan_dir.glob(f"submit/**/{grid}.sh")).read_text()
    assert "pegasus-integrity" in wrapper and "--verify" in wrapper

"""The workflow on the real Pegasus planner and a real HTCondor pool (the test-pool bundle of
``../shared/testpool``, installed at ``/opt/htclean-testpool`` or ``$HTCLEAN_TESTPOOL``).

As a user of a campus pool would: ``htclean plan --site condor``, the printed ``pegasus-plan
... --submit`` line run as the pool's unprivileged user, the cycle sub-workflows to success,
the image equal to the embedded engine's; ``pegasus-statistics``, ``pegasus-analyzer`` and
``htclean report`` on the submit directory; a pool job failing beyond its retries, named by
``pegasus-analyzer -r``, and ``pegasus-run`` finishing from the rescue DAGs without rerunning a
succeeded job; the local plan run by Pegasus's Shell code generator; the OSPool and PATH plans
with their images used where they live; a wideband run (two MSs, nterms 2, the primary
beam) on the pool equal to the engine's, and its OSPool/PATH plans staging both MSs; a cube
(two output channels, each its own chain of levels) equal to the engine's.

Marked ``pool``; skipped with the reason where the bundle is not installed, the pool is not
running, or the tests do not run as root (``run-as-user.sh`` needs it). Small on purpose: a
720-row MS, 64 x 64 pixels, 2 parts, 1 major cycle; the runs go to the pool together.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import poolkit
import pytest
import tinyms
from poolkit import (
    NAME,
    RUN_TIMEOUT_S,
    TESTPOOL,
    Run,
    as_user,
    checked,
    close_to,
    job_events,
    planner_only,
    why_not,
    write_config,
    write_wideband,
)

from htclean.imaging.fits import read_fits
from htclean.workflows.plan import plan

# one xdist worker runs both pool modules, one after the other (the faults restart the pool)
pytestmark = [pytest.mark.pool, pytest.mark.xdist_group("pool")]

FAILING = "residual-c01-p001"
SWITCH = "PEGASUS_HTCLEAN_INJECT_FAILURE"


@pytest.fixture(scope="module")
def pool() -> Path:
    why = why_not()
    if why:
        pytest.skip(why)
    return TESTPOOL


@pytest.fixture(scope="module")
def user_venv(pool) -> Path:
    return poolkit.user_venv()


@pytest.fixture(scope="module")
def workspace(pool) -> Path:
    """An empty directory of htcuser's, with the observation."""
    return poolkit.workspace()


@pytest.fixture(scope="module")
def runs(pool, user_venv, workspace, tmp_path_factory):
    """The condor run, the run whose FAILING job fails beyond its retries, the local plan
    under the Shell code generator, the wideband condor run (all four at once), and the
    embedded engine's runs."""
    write_config(workspace, workspace / "obs.ms")
    bands = write_wideband(workspace)
    write_config(workspace, bands, name="config-wb.yml", wideband=True)
    write_config(workspace, workspace / "obs.ms", name="config-cube.yml", cube=True)
    poolkit.give_to_user(workspace / "config.yml", workspace / "config-wb.yml",
                         workspace / "config-cube.yml", *bands)
    started = {
        "good": Run(workspace, user_venv, "good"),
        "faulty": Run(workspace, user_venv, "faulty", plan_args=f"--inject-failure {FAILING}",
                      env={SWITCH: "1"}),
        "shell": Run(workspace, user_venv, "shell", site="local", generator="Shell"),
        "wideband": Run(workspace, user_venv, "wideband", config="config-wb.yml"),
        "cube": Run(workspace, user_venv, "cube", config="config-cube.yml")}
    # the faulty run is resumed as soon as it has failed, beside the others
    started["resumed"] = ThreadPoolExecutor(1).submit(fail_then_resume, started["faulty"])
    engine = tmp_path_factory.mktemp("engine")
    cfg = write_config(engine, workspace / "obs.ms")
    subprocess.run([str(user_venv / "htclean"), "run", str(cfg), "-o", str(engine / "run")],
                   check=True, capture_output=True, timeout=RUN_TIMEOUT_S)
    started["engine"] = read_fits(engine / "run" / "outputs" / f"{NAME}-image.fits")[0]
    cfg = write_config(engine, bands, name="config-wb.yml", wideband=True)
    subprocess.run([str(user_venv / "htclean"), "run", str(cfg), "-o", str(engine / "wb")],
                   check=True, capture_output=True, timeout=RUN_TIMEOUT_S)
    started["engine-wb"] = engine / "wb" / "outputs"
    cfg = write_config(engine, workspace / "obs.ms", name="config-cube.yml", cube=True)
    subprocess.run([str(user_venv / "htclean"), "run", str(cfg), "-o", str(engine / "cube")],
                   check=True, capture_output=True, timeout=RUN_TIMEOUT_S)
    started["engine-cube"] = engine / "cube" / "outputs"
    return started


def test_a_condor_run_succeeds_across_its_cycles_and_equals_the_engine(runs):
    good = runs["good"]
    assert good.wait() == 0
    levels = {p.parent.name for p in good.submit.rglob("jobstate.log")}
    assert {re.sub(r"\.\d+$", "", lv) for lv in levels} == {good.run_id, "cycle-01", "cycle-02"}
    assert close_to(good.image(), runs["engine"]) <= 1e-6
    print(f"condor run: {good.wall:.0f} s")


def test_a_cube_condor_run_equals_the_engine(runs):
    """Two output channels, each its own chain of levels, then the cube job at the top:
    every cube equals the engine's."""
    from htclean.imaging.fitscube import read_cube

    cube = runs["cube"]
    assert cube.wait() == 0
    levels = {re.sub(r"\.\d+$", "", p.parent.name) for p in cube.submit.rglob("jobstate.log")}
    assert levels == {cube.run_id, *(f"ch{g:04d}-cycle-{k:02d}" for g in (0, 1)
                                     for k in (1, 2))}
    for kind in ("image", "model", "residual", "psf", "dirty"):
        pool = read_cube(cube.out / "outputs" / f"{NAME}-{kind}.fits")
        engine = read_cube(runs["engine-cube"] / f"{NAME}-{kind}.fits")
        assert pool.data.shape == (2, 64, 64)
        assert close_to(pool.data, engine.data) <= 1e-6, kind
    print(f"cube run: {cube.wall:.0f} s")


WIDEBAND_PRODUCTS = ("image-tt0", "image-tt1", "residual-tt0", "model-tt1", "alpha", "pb",
                     "image-tt0-pb", "alpha-pb")


def test_a_wideband_condor_run_equals_the_engine(runs):
    """Two MSs, nterms 2, the primary beam: the pool's products equal the engine's."""
    wb = runs["wideband"]
    assert wb.wait() == 0
    for kind in WIDEBAND_PRODUCTS:
        pool = read_fits(wb.out / "outputs" / f"{NAME}-{kind}.fits")[0]
        engine = read_fits(runs["engine-wb"] / f"{NAME}-{kind}.fits")[0]
        assert np.array_equal(np.isnan(pool), np.isnan(engine)), kind
        finite = np.isfinite(engine)
        assert close_to(pool[finite], engine[finite]) <= 1e-6, kind
    print(f"wideband condor run: {wb.wall:.0f} s")


def test_statistics_analyzer_and_report_read_every_level(runs):
    good = runs["good"]
    assert good.wait() == 0
    stats = checked(as_user(f"pegasus-statistics -s all {good.submit}", timeout=300))
    assert "Sub-Workflows" in stats and (good.submit / "statistics" / "summary.txt").exists()
    analyzer = checked(as_user(f"pegasus-analyzer {good.submit}", timeout=300))
    assert re.search(r"Failed\**\s*\|\s*0\b", analyzer), analyzer
    report = checked(as_user(f"htclean report {good.submit}", path=good.venv, timeout=300))
    summary = json.loads((good.submit / "report" / "report.json").read_text())
    assert (good.submit / "report" / "report.png").stat().st_size > 0, report
    # every level: the top (partition, grid), the cycles (residual), the final; the minor
    # cycles ran inside the next jobs (on the submit host, before each level): no deconvolve
    # job on this plan, and each next's decision says which minor cycle it ran
    assert {"partition", "grid", "residual", "next", "restore"} <= set(
        summary["types"]), report
    assert "deconvolve" not in summary["types"], report
    decision = json.loads((good.out / "outputs" / f"{good.run_id}-next-c00.json").read_text())
    assert decision["minor_cycle"] == 1, decision
    assert summary["summary"]["jobs"] == sum(t["jobs"] for t in summary["types"].values())


def fail_then_resume(faulty: Run) -> dict:
    """The failed run as pegasus-analyzer -r names it, its jobs' events before and after
    pegasus-run on its rescue DAGs, and how the resumed run ended."""
    state = faulty.wait()
    # FAILING runs in the top level, after next-c00 (graph.py); -r goes one level down
    # where a nested level failed (deeper, -T walks every level)
    named = as_user(f"pegasus-analyzer -r {faulty.submit}", timeout=300).stdout
    before = job_events(faulty.submit)
    if state == 0:
        return {"state": state, "named": named, "before": before}
    checked(as_user(f"pegasus-run {faulty.submit}", timeout=300))  # the switch is unset now
    resumed = as_user(f"{TESTPOOL}/wait-wf.sh {faulty.submit} {RUN_TIMEOUT_S}").returncode
    return {"state": state, "named": named, "before": before, "resumed": resumed,
            "after": job_events(faulty.submit)}


def test_a_failure_beyond_retries_resumes_from_the_rescue_dags(runs):
    faulty, good = runs["faulty"], runs["good"]
    outcome = runs["resumed"].result(timeout=2 * RUN_TIMEOUT_S)
    assert outcome["state"] == 1
    assert FAILING in outcome["named"], outcome["named"][-3000:]
    before, after = outcome["before"], outcome["after"]
    done = {job for job, ev in before.items() if "JOB_SUCCESS" in ev}
    assert any("residual-c01-p000" in job for job in done) and not any(FAILING in j for j in done)
    assert outcome["resumed"] == 0
    rerun = sorted(job for job in done if after[job].count("SUBMIT") > before[job].count(
        "SUBMIT"))
    assert not rerun, f"succeeded jobs ran again: {rerun}"
    assert any(FAILING in job and "JOB_SUCCESS" in ev for job, ev in after.items())
    assert good.wait() == 0 and np.array_equal(faulty.image(), good.image())


def test_the_shell_code_generator_runs_the_local_plan_to_the_same_image(runs):
    shell = runs["shell"]
    assert shell.wait() == 0
    assert np.array_equal(shell.image(), runs["engine"])
    assert not any((shell.out / "scratch").iterdir())  # the top level's leaf cleanup


def planned(cfg: Path, out: Path) -> Path:
    """``htclean plan`` of ``cfg`` into ``out``, then its printed pegasus-plan line without
    ``--submit`` run by the real planner (as root: plan only); the top submit directory."""
    result = plan(cfg, out)
    line = result.command.replace(" --submit", "")
    assert line.startswith("pegasus-plan ")
    proc = subprocess.run(["bash", "-c", f". {TESTPOOL}/env.sh && {line}"], text=True,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return result.out_dir / "submit" / result.run_id


@pytest.mark.parametrize("site", ["ospool", "path"])
@pytest.mark.parametrize("image", ["/cvmfs/singularity.opensciencegrid.org/htclean/htclean:0.1.0",
                                   "osdf:///ospool/ap40/data/u/containers/htclean.sif"])
def test_pool_plans_use_the_image_where_it_lives(tmp_path, site, image):
    """Plan only (no pool needed): no stage-in job for the image; every compute job's .sub
    names it where it lives."""
    why = planner_only()
    if why:
        pytest.skip(why)
    ms = tmp_path / "obs.ms"
    tinyms.write_ms(str(ms), tinyms.TinyObs(nant=6, ntime=4, nchan=2))
    cfg = write_config(tmp_path, ms, site=site, container=image,
                       staging="osdf:///ospool/ap40/data/u/staging")
    submit = planned(cfg, tmp_path / "plan")
    staged = [json.loads(p.read_text()) for p in submit.rglob("stage_in*.in")]
    lfns = {t["lfn"] for doc in staged for t in doc}
    assert lfns and not any(lfn.startswith("htclean") for lfn in lfns), lfns
    subs = [p.read_text() for p in submit.rglob("htclean-*.sub")
            if "htclean-next" not in p.name]
    where = image if "://" in image else f"file://{image}"
    assert subs and all(f"container_image = {where}\n" in s for s in subs)
    assert all("universe = container" in s for s in subs)


@pytest.mark.parametrize("site", ["condor", "ospool", "path"])
def test_wideband_plans_carry_both_measurement_sets(tmp_path, site):
    """Plan only: the real planner accepts the wideband plan (two MSs, nterms 2, the primary
    beam) and stages both MS tars to the partition job."""
    why = planner_only()
    if why:
        pytest.skip(why)
    bands = write_wideband(tmp_path)
    extra = {"staging": "osdf:///ospool/ap40/data/u/staging"} if site != "condor" else {}
    cfg = write_config(tmp_path, bands, wideband=True, site=site, **extra)
    submit = planned(cfg, tmp_path / "plan")
    staged = {t["lfn"] for p in submit.rglob("stage_in*.in") for t in json.loads(p.read_text())}
    assert {"band0.ms.tar", "band1.ms.tar"} <= staged, staged
    job = next(submit.rglob("htclean-partition_*.sh")).read_text()
    assert "--ms band0.ms.tar band1.ms.tar --axis" in job


@pytest.mark.parametrize("site", ["condor", "ospool", "path"])
def test_cube_plans_plan(tmp_path, site):
    """Plan only: the real planner accepts a cube's top level (3 channel chains and the cube
    job after them); the cube job is not a pool job and no stage-in job fetches the channels'
    products, which exist only once their chains have finished."""
    why = planner_only()
    if why:
        pytest.skip(why)
    import yaml

    ms = tmp_path / "obs.ms"
    tinyms.write_ms(str(ms), tinyms.TinyObs(nant=6, ntime=4, nchan=6))
    extra = {"staging": "osdf:///ospool/ap40/data/u/staging"} if site != "condor" else {}
    cfg = write_config(tmp_path, ms, site=site, **extra)
    raw = yaml.safe_load(cfg.read_text())
    raw["image"].update(mode="cube", width=2)
    cfg.write_text(yaml.safe_dump(raw))
    submit = planned(cfg, tmp_path / "plan")
    staged = {t["lfn"] for p in submit.rglob("stage_in*.in") for t in json.loads(p.read_text())}
    assert not any(lfn.startswith(f"{NAME}-000") for lfn in staged), staged
    dag = next(submit.glob("*.dag")).read_text()
    for g in range(3):
        assert re.search(rf"PARENT +\S*_ch{g:04d}-cycle-01 CHILD \S*_cube\n", dag), g
    sub = next(submit.rglob("htclean-cube_*.sub")).read_text()
    assert "universe = local" in sub


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-v", "-rs"]))

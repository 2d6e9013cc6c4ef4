"""The workflow on the real Pegasus planner and a real HTCondor pool (the test-pool bundle of
``../shared/testpool``, installed at ``/opt/htclean-testpool`` or ``$HTCLEAN_TESTPOOL``).

As a user of a campus pool would: ``htclean plan --site condor``, the printed ``pegasus-plan
... --submit`` line run as the pool's unprivileged user, the cycle sub-workflows to success,
the image equal to the embedded engine's; ``pegasus-statistics``, ``pegasus-analyzer`` and
``htclean report`` on the submit directory; a pool job failing beyond its retries, named by
``pegasus-analyzer -r``, and ``pegasus-run`` finishing from the rescue DAGs without rerunning a
succeeded job; the local plan run by Pegasus's Shell code generator; the OSPool and PATH plans
with their images used where they live; a wideband run (two MSs, nterms 2, the primary
beam) on the pool equal to the engine's, and its OSPool/PATH plans staging both MSs.

Marked ``pool``; skipped with the reason where the bundle is not installed, the pool is not
running, or the tests do not run as root (``run-as-user.sh`` needs it). Small on purpose: a
720-row MS, 64 x 64 pixels, 2 parts, 1 major cycle; the three runs go to the pool together.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tinyms
import yaml

from htclean.imaging.fits import read_fits
from htclean.workflows.plan import plan

pytestmark = pytest.mark.pool

TESTPOOL = Path(os.environ.get("HTCLEAN_TESTPOOL", "/opt/htclean-testpool"))
REPO = Path(__file__).resolve().parents[1]
USER = "htcuser"
NAME = "pool"
FAILING = "residual-c01-p001"
SWITCH = "PEGASUS_HTCLEAN_INJECT_FAILURE"
RUN_TIMEOUT_S = 900
SOURCES = [(0.0, 0.0, 1.0), (16 * tinyms.ASEC, -10 * tinyms.ASEC, 0.5),
           (-20 * tinyms.ASEC, 14 * tinyms.ASEC, 0.05)]


def _why_not() -> str | None:
    """Why the pool tests cannot run here, or None."""
    if not (TESTPOOL / "run-as-user.sh").is_file():
        return f"the test pool is not installed at {TESTPOOL} (../shared/testpool/install.sh)"
    if os.geteuid() != 0:
        return "the pool tests submit as htcuser through run-as-user.sh, which needs root"
    pidfile = TESTPOOL / "local" / "run" / "condor_master.pid"
    try:
        os.kill(int(pidfile.read_text().split()[0]), 0)
    except (OSError, ValueError, IndexError):
        return f"the test pool at {TESTPOOL} is not running ({TESTPOOL}/start.sh)"
    return None


def planner_only() -> str | None:
    """Why pegasus-plan cannot run here, or None (plan-only needs no running pool)."""
    if not (TESTPOOL / "pegasus" / "bin" / "pegasus-plan").exists():
        return f"the test pool is not installed at {TESTPOOL} (../shared/testpool/install.sh)"
    return None


def as_user(cmd: str, env: dict[str, str] | None = None, path: Path | None = None,
            timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess:
    """``cmd`` run by bash as htcuser with the test pool's environment (and ``path`` first on
    PATH, ``env`` exported)."""
    exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in (env or {}).items())
    if path is not None:
        exports += f"export PATH={shlex.quote(str(path))}:$PATH; "
    return subprocess.run([str(TESTPOOL / "run-as-user.sh"), exports + cmd], text=True,
                          capture_output=True, timeout=timeout)


def checked(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n" \
        f"{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def pool() -> Path:
    why = _why_not()
    if why:
        pytest.skip(why)
    return TESTPOOL


@pytest.fixture(scope="module")
def user_venv(pool) -> Path:
    """htclean installed for htcuser: a venv of Debian's /usr/bin/python3 under the bundle
    (htcuser cannot read a pyenv under /root), from a copy of this checkout (its build files
    stay out of the tree); made once per checkout, refreshed (no dependencies) after."""
    key = hashlib.sha1(str(REPO).encode()).hexdigest()[:10]
    venv = pool / "htclean-venvs" / key
    venv.parent.mkdir(exist_ok=True)
    with open(venv.parent / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        src = venv.parent / f".{key}.src"
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", "*.ms", "demo-out"))
        fresh = not (venv / "bin" / "python").exists()
        if fresh:
            subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, *([] if fresh else ["--no-deps", "--force-reinstall"]), str(src)],
                       check=True, capture_output=True, timeout=900)
        shutil.rmtree(src, ignore_errors=True)
    return venv / "bin"


@pytest.fixture(scope="module")
def workspace(pool) -> Path:
    """An empty directory of htcuser's, with the observation."""
    import pwd

    user = pwd.getpwnam(USER)
    ws = pool / "home" / USER / "htclean-pool-tests" / f"{os.getpid()}-{time.time_ns()}"
    ws.mkdir(parents=True)
    tinyms.write_ms(str(ws / "obs.ms"), tinyms.TinyObs(nant=10, ntime=16, nchan=4, noise=0.02,
                                                       sources=SOURCES))
    for path in [ws.parent, ws, *ws.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
    return ws


def write_config(where: Path, ms: Path | list[Path], name: str = "config.yml",
                 wideband: bool = False, **execution) -> Path:
    cfg = {"data": {"ms": [str(m) for m in ms] if isinstance(ms, list) else str(ms)},
           "image": {"name": NAME, "size": 64, "scale": "2asec"},
           "gridder": {"epsilon": 1.0e-7, "threads": 1, "device": "cpu", "chunk_rows": 500},
           "deconvolution": {"niter": 300, "gain": 0.2, "mgain": 0.8, "auto_threshold": 3.0,
                             "max_cycles": 1},
           "partition": {"parts": 2, "axis": "time"},
           "execution": {"request_memory": "1GB", "request_cpus": 1, "retries": 1,
                         "container": None, **execution}}
    if wideband:
        cfg["deconvolution"].update(nterms=2, max_cycles=2)
        cfg["image"].update(primary_beam=True)
        cfg["partition"]["parts"] = 3
    path = where / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def write_wideband(where: Path) -> list[Path]:
    """Two tiny observations, 1.2-1.4 and 1.6-1.8 GHz (tinyms, same array and sky)."""
    out = []
    for k, f0 in enumerate((1.2e9, 1.6e9)):
        ms = where / f"band{k}.ms"
        tinyms.write_ms(str(ms), tinyms.TinyObs(nant=10, ntime=8, nchan=4, dfreq=50e6,
                                                freq0=f0, noise=0.02, sources=SOURCES,
                                                seed=5 + k))
        out.append(ms)
    return out


class Run:
    """One workflow planned and submitted as htcuser: its plan directory and submit directory."""

    def __init__(self, ws: Path, venv: Path, key: str, site: str = "condor",
                 plan_args: str = "", generator: str | None = None,
                 env: dict[str, str] | None = None, config: str = "config.yml"):
        self.venv, self.out = venv, ws / key
        text = checked(as_user(f"htclean plan {ws}/{config} -o {self.out} --site {site} "
                               f"{plan_args}", path=venv, timeout=120)).strip().splitlines()
        line = text[-1].strip()
        assert "pegasus-plan " in line and " --submit " in line, text
        if generator:
            line = line.replace("pegasus-plan ", f"pegasus-plan -Dpegasus.code.generator="
                                f"{generator} ", 1)
        self.run_id = re.search(r"planned run (\S+):", text[0]).group(1)
        self.submit = self.out / "submit" / self.run_id
        self.proc = subprocess.Popen(
            [str(TESTPOOL / "run-as-user.sh"),
             "".join(f"export {k}={v}; " for k, v in (env or {}).items())
             + f"export PATH={venv}:$PATH; {line}"],
            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.started, self.generator = time.monotonic(), generator
        self.state: int | None = None

    def wait(self) -> int:
        """The workflow's end: 0 for Success, 1 otherwise (wait-wf.sh on a pool; the Shell
        code generator runs the whole workflow inside pegasus-plan)."""
        if self.state is None:
            out, _ = self.proc.communicate(timeout=RUN_TIMEOUT_S)
            assert self.proc.returncode == 0 or self.generator, out[-3000:]
            if self.generator:
                self.state = 0 if self.proc.returncode == 0 and "Success" in out else 1
            else:
                proc = as_user(f"{TESTPOOL}/wait-wf.sh {self.submit} {RUN_TIMEOUT_S}")
                self.state = proc.returncode
            self.wall = time.monotonic() - self.started
        return self.state

    def image(self) -> np.ndarray:
        return read_fits(self.out / "outputs" / f"{NAME}-image.fits")[0]


def job_events(submit: Path) -> dict[str, list[str]]:
    """Every level's DAGMan events by '<level dir>/<job>', from the jobstate logs."""
    events: dict[str, list[str]] = {}
    for log in submit.rglob("jobstate.log*"):  # with any copy a restart rotated away
        level = re.sub(r"\.\d+$", "", log.parent.name)
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and parts[1] != "INTERNAL":
                events.setdefault(f"{level}/{parts[1]}", []).append(parts[2])
    return events


@pytest.fixture(scope="module")
def runs(pool, user_venv, workspace, tmp_path_factory):
    """The condor run, the run whose FAILING job fails beyond its retries, the local plan
    under the Shell code generator, the wideband condor run (all four at once), and the
    embedded engine's runs."""
    write_config(workspace, workspace / "obs.ms")
    bands = write_wideband(workspace)
    write_config(workspace, bands, name="config-wb.yml", wideband=True)
    owner = (lambda u: (u.pw_uid, u.pw_gid))(__import__("pwd").getpwnam(USER))
    for path in [workspace / "config.yml", workspace / "config-wb.yml", *bands,
                 *(p for b in bands for p in b.rglob("*"))]:
        os.chown(path, *owner)
    started = {
        "good": Run(workspace, user_venv, "good"),
        "faulty": Run(workspace, user_venv, "faulty", plan_args=f"--inject-failure {FAILING}",
                      env={SWITCH: "1"}),
        "shell": Run(workspace, user_venv, "shell", site="local", generator="Shell"),
        "wideband": Run(workspace, user_venv, "wideband", config="config-wb.yml")}
    engine = tmp_path_factory.mktemp("engine")
    cfg = write_config(engine, workspace / "obs.ms")
    subprocess.run([str(user_venv / "htclean"), "run", str(cfg), "-o", str(engine / "run")],
                   check=True, capture_output=True, timeout=RUN_TIMEOUT_S)
    started["engine"] = read_fits(engine / "run" / "outputs" / f"{NAME}-image.fits")[0]
    cfg = write_config(engine, bands, name="config-wb.yml", wideband=True)
    subprocess.run([str(user_venv / "htclean"), "run", str(cfg), "-o", str(engine / "wb")],
                   check=True, capture_output=True, timeout=RUN_TIMEOUT_S)
    started["engine-wb"] = engine / "wb" / "outputs"
    return started


def close_to(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_a_condor_run_succeeds_across_its_cycles_and_equals_the_engine(runs):
    good = runs["good"]
    assert good.wait() == 0
    levels = {p.parent.name for p in good.submit.rglob("jobstate.log")}
    assert {re.sub(r"\.\d+$", "", lv) for lv in levels} == {good.run_id, "cycle-01", "cycle-02"}
    assert close_to(good.image(), runs["engine"]) <= 1e-6
    print(f"condor run: {good.wall:.0f} s")


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
    # every level: the top (partition, grid), the cycles (deconvolve, residual), the final
    assert {"partition", "grid", "deconvolve", "residual", "next", "restore"} <= set(
        summary["types"]), report
    assert summary["summary"]["jobs"] == sum(t["jobs"] for t in summary["types"].values())


def test_a_failure_beyond_retries_resumes_from_the_rescue_dags(runs):
    faulty, good = runs["faulty"], runs["good"]
    assert faulty.wait() == 1
    # -r goes one level down, into the failed cycle-01 (deeper, -T walks every level)
    named = as_user(f"pegasus-analyzer -r {faulty.submit}", timeout=300).stdout
    assert FAILING in named, named[-3000:]
    before = job_events(faulty.submit)
    done = {job for job, ev in before.items() if "JOB_SUCCESS" in ev}
    assert any("residual-c01-p000" in job for job in done) and not any(FAILING in j for j in done)
    checked(as_user(f"pegasus-run {faulty.submit}", timeout=300))  # the switch is unset now
    assert as_user(f"{TESTPOOL}/wait-wf.sh {faulty.submit} {RUN_TIMEOUT_S}").returncode == 0
    after = job_events(faulty.submit)
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
    result = plan(cfg, tmp_path / "plan")
    line = result.command.replace(" --submit", "")
    assert line.startswith("_CONDOR_DAGMAN_USER_LOG_SCAN_INTERVAL=1 pegasus-plan ")
    proc = subprocess.run(["bash", "-c", f". {TESTPOOL}/env.sh && {line}"], text=True,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    submit = result.out_dir / "submit" / result.run_id
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
    result = plan(cfg, tmp_path / "plan")
    line = result.command.replace(" --submit", "")
    proc = subprocess.run(["bash", "-c", f". {TESTPOOL}/env.sh && {line}"], text=True,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    submit = result.out_dir / "submit" / result.run_id
    staged = {t["lfn"] for p in submit.rglob("stage_in*.in") for t in json.loads(p.read_text())}
    assert {"band0.ms.tar", "band1.ms.tar"} <= staged, staged
    job = next(submit.rglob("htclean-partition_*.sh")).read_text()
    assert "--ms band0.ms.tar band1.ms.tar --axis" in job


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-v", "-rs"]))

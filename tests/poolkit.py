"""Helpers of the tests that run workflows on the real test pool (test_pool.py,
test_pool_faults.py) and of benchmarks/pool_soak.py: where the pool is, commands as its
unprivileged user, htclean installed for that user, the tiny observation and configuration,
one planned-and-submitted run, and what DAGMan's jobstate logs say happened.

The test-pool bundle (``../shared/testpool``) lives at ``/opt/htclean-testpool`` or
``$HTCLEAN_TESTPOOL``; ``run-as-user.sh`` needs root, so everything here runs as root and
submits as ``htcuser``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import re
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tinyms
import yaml

from htclean.imaging.fits import read_fits

TESTPOOL = Path(os.environ.get("HTCLEAN_TESTPOOL", "/opt/htclean-testpool"))
REPO = Path(__file__).resolve().parents[1]
USER = "htcuser"
NAME = "pool"
RUN_TIMEOUT_S = 900
SOURCES = [(0.0, 0.0, 1.0), (16 * tinyms.ASEC, -10 * tinyms.ASEC, 0.5),
           (-20 * tinyms.ASEC, 14 * tinyms.ASEC, 0.05)]


def why_not() -> str | None:
    """Why the pool tests cannot run here, or None."""
    if not (TESTPOOL / "run-as-user.sh").is_file():
        return f"the test pool is not installed at {TESTPOOL} (../shared/testpool/install.sh)"
    if os.geteuid() != 0:
        return "the pool tests submit as htcuser through run-as-user.sh, which needs root"
    if not pool_running():
        return f"the test pool at {TESTPOOL} is not running ({TESTPOOL}/start.sh)"
    return None


def pool_running() -> bool:
    """Whether the condor_master named in the bundle's pidfile is alive."""
    pidfile = TESTPOOL / "local" / "run" / "condor_master.pid"
    try:
        os.kill(int(pidfile.read_text().split()[0]), 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


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


def as_root(cmd: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``cmd`` run by bash as root with the test pool's environment (condor_q, condor_hold)."""
    return subprocess.run(["bash", "-c", f". {TESTPOOL}/env.sh && {cmd}"], text=True,
                          capture_output=True, timeout=timeout)


def checked(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n" \
        f"{proc.stderr[-3000:]}"
    return proc.stdout


def give_to_user(*paths: Path) -> None:
    """chown ``paths`` (and what is under a directory among them) to htcuser."""
    user = pwd.getpwnam(USER)
    for path in paths:
        for p in [path, *(path.rglob("*") if path.is_dir() else [])]:
            os.chown(p, user.pw_uid, user.pw_gid)


def user_venv() -> Path:
    """htclean installed for htcuser: a venv of Debian's /usr/bin/python3 under the bundle
    (htcuser cannot read a pyenv under /root), from a copy of this checkout (its build files
    stay out of the tree); made once per checkout, refreshed (no dependencies) after. Returns
    its bin directory."""
    key = hashlib.sha1(str(REPO).encode()).hexdigest()[:10]
    venv = TESTPOOL / "htclean-venvs" / key
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


def workspace(kind: str = "htclean-pool-tests") -> Path:
    """An empty directory of htcuser's, with the tiny observation ``obs.ms``."""
    ws = TESTPOOL / "home" / USER / kind / f"{os.getpid()}-{time.time_ns()}"
    ws.mkdir(parents=True)
    tinyms.write_ms(str(ws / "obs.ms"), tinyms.TinyObs(nant=10, ntime=16, nchan=4, noise=0.02,
                                                       sources=SOURCES))
    user = pwd.getpwnam(USER)
    os.chown(ws.parent, user.pw_uid, user.pw_gid)  # only itself: earlier runs live under it
    give_to_user(ws)
    return ws


def write_config(where: Path, ms: Path | list[Path], name: str = "config.yml",
                 wideband: bool = False, run_id: str | None = None, cube: bool = False,
                 cycles: int = 1, **execution) -> Path:
    """The tiny run's configuration: 64 x 64, 2 parts, ``cycles`` major cycles at most (1),
    the gridder's defaults
    (single precision on the planned 2 threads, whatever cores a pool slot gives a job: the
    pool's images equal the engine's bit for bit); ``cube``: a cube of 2 output channels
    (of the 4 MS channels, 2 each), each cleaned on its own."""
    cfg = {"data": {"ms": [str(m) for m in ms] if isinstance(ms, list) else str(ms)},
           "image": {"name": NAME, "size": 64, "scale": "2asec"},
           "gridder": {"device": "cpu", "chunk_rows": 500},
           "deconvolution": {"niter": 300, "gain": 0.2, "mgain": 0.8, "auto_threshold": 3.0,
                             "max_cycles": cycles},
           "partition": {"parts": 2, "axis": "time"},
           "execution": {"request_memory": "1GB", "retries": 1,
                         "container": None, **execution}}
    if run_id:
        cfg["output"] = {"run_id": run_id}
    if cube:
        cfg["image"].update(mode="cube", width=2, rest_frequency="1.4GHz")
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
    """One workflow planned and submitted as htcuser: its plan directory and submit directory.

    ``before_submit(run)`` runs between ``htclean plan`` and the printed pegasus-plan line
    (as root; e.g. to mount the staging directory)."""

    def __init__(self, ws: Path, venv: Path, key: str, site: str = "condor",
                 plan_args: str = "", generator: str | None = None,
                 env: dict[str, str] | None = None, config: str = "config.yml",
                 before_submit: Callable[[Run], None] | None = None):
        self.venv, self.out, self.key = venv, ws / key, key
        text = checked(as_user(f"htclean plan {ws}/{config} -o {self.out} --site {site} "
                               f"{plan_args}", path=venv, timeout=120)).strip().splitlines()
        line = text[-1].strip()
        assert "pegasus-plan " in line and " --submit " in line, text
        if generator:
            line = line.replace("pegasus-plan ", f"pegasus-plan -Dpegasus.code.generator="
                                f"{generator} ", 1)
        self.run_id = re.search(r"planned run (\S+):", text[0]).group(1)
        self.submit = self.out / "submit" / self.run_id
        if before_submit is not None:
            before_submit(self)
        self.proc = subprocess.Popen(
            [str(TESTPOOL / "run-as-user.sh"),
             "".join(f"export {k}={v}; " for k, v in (env or {}).items())
             + f"export PATH={venv}:$PATH; {line}"],
            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.started, self.generator = time.monotonic(), generator
        self.state: int | None = None
        self.lock = threading.RLock()  # several fault threads may wait on one run

    def wait(self) -> int:
        """The workflow's end: 0 for Success, 1 otherwise (wait-wf.sh on a pool; the Shell
        code generator runs the whole workflow inside pegasus-plan)."""
        with self.lock:
            return self._wait()

    def _wait(self) -> int:
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

    def resume(self) -> int:
        """``pegasus-run`` on the top submit directory (the rescue DAGs), then its end."""
        with self.lock:
            self.proc.communicate(timeout=RUN_TIMEOUT_S)
            checked(as_user(f"pegasus-run {self.submit}", timeout=300))
            self.state = None
            return self._wait()

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


def close_to(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))

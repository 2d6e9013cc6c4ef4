"""`htclean run` end to end: the planned workflow run by the local engine with the real
executables equals the one-process reference imager; retries and resume change nothing.

Small on purpose (64 x 64 pixels, a 10-antenna MS of 2160 rows x 4 channels, 4 major
cycles): each run is a few tens of jobs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO

import numpy as np
import pytest
import tinyms
import yaml

from htclean.engine.state import read_attempts
from htclean.imaging import fits, reference
from htclean.workflows import cli, config, names

NAME = "e2e"
KINDS = ("image", "model", "residual", "psf", "dirty")
SOURCES = [(0.0, 0.0, 1.0), (16 * tinyms.ASEC, -10 * tinyms.ASEC, 0.5),
           (-20 * tinyms.ASEC, 14 * tinyms.ASEC, 0.05)]
WEIGHTINGS = {"natural": {"type": "natural"}, "briggs": {"type": "briggs", "robust": 0.0}}
# each entry of the test matrix: (weighting, parts, axis)
CASES = [("natural", 1, "time"), ("natural", 4, "time"), ("briggs", 1, "time"),
         ("briggs", 4, "baseline")]


@pytest.fixture(scope="module")
def observation(tmp_path_factory) -> Path:
    ms = tmp_path_factory.mktemp("e2e") / "obs.ms"
    tinyms.write_ms(str(ms), tinyms.TinyObs(nant=10, ntime=16, nchan=4, noise=0.02,
                                            sources=SOURCES))
    return ms


def write_config(where: Path, ms: Path, weighting: str, parts: int, axis: str) -> Path:
    cfg = {"data": {"ms": str(ms)},
           "image": {"name": NAME, "size": 64, "scale": "2asec"},
           "weighting": WEIGHTINGS[weighting],
           "gridder": {"epsilon": 1.0e-7, "threads": 1, "device": "cpu", "chunk_rows": 500},
           "deconvolution": {"niter": 300, "gain": 0.2, "mgain": 0.8, "auto_threshold": 3.0,
                             "max_cycles": 8},
           "partition": {"parts": parts, "axis": axis},
           "execution": {"request_memory": "1GB", "retries": 2}}
    where.mkdir(parents=True, exist_ok=True)
    path = where / "config.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


FAULTY = ("natural", 1, "time")
FAILING = ("partition", "grid-c00-p000", "deconvolve-c02", "residual-c03-p000", "restore")


class Runs:
    """The module's runs, started together as `htclean run` processes (one job at a time
    each, so the two cores are shared between runs), and the reference products."""

    def __init__(self, root: Path, ms: Path):
        self.root, self.ms = root, ms
        self.procs: dict[str, tuple[subprocess.Popen, Path, IO[str]]] = {}
        self.refs: dict[str, reference.Products] = {}

    def start(self, key: str, case: tuple, env: dict[str, str] | None = None) -> None:
        cfg = write_config(self.root / key, self.ms, *case)
        self.launch(key, ["run", str(cfg), "-o", str(self.root / key / "run")], env)

    def launch(self, key: str, args: list[str], env: dict[str, str] | None = None) -> None:
        """``htclean ARGS --jobs 1`` in the background; stdout and stderr kept in key/."""
        where = self.root / key
        where.mkdir(parents=True, exist_ok=True)
        log = open(where / "stderr.txt", "w")  # closed by wait()
        with open(where / "stdout.txt", "w") as stdout:
            proc = subprocess.Popen([sys.executable, "-m", "htclean.workflows.cli", *args,
                                     "--jobs", "1"], stdout=stdout, stderr=log,
                                    env={**os.environ, **(env or {})})
        self.procs[key] = (proc, where / "run", log)

    def interrupt_at(self, key: str, pattern: str) -> threading.Thread:
        """Send SIGINT to run ``key`` once a file matching ``pattern`` is in its outputs."""
        proc, out, _ = self.procs[key]

        def watch() -> None:
            deadline = time.monotonic() + 600
            while proc.poll() is None and time.monotonic() < deadline:
                if list((out / "outputs").glob(pattern)):
                    proc.send_signal(signal.SIGINT)
                    return
                time.sleep(0.05)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        return thread

    def wait(self, key: str, expect: int = 0) -> Path:
        proc, out, log = self.procs[key]
        proc.wait(timeout=600)
        log.close()
        err = (self.root / key / "stderr.txt").read_text()
        assert proc.returncode == expect, \
            f"htclean run {key}: exit {proc.returncode}\n{err[-3000:]}"
        return out

    def reference(self, weighting: str) -> reference.Products:
        if weighting not in self.refs:
            cfg = write_config(self.root / f"ref-{weighting}", self.ms, weighting, 1, "time")
            _, settings = config.load(cfg)
            self.refs[weighting] = reference.image_ms(str(self.ms), settings)
        return self.refs[weighting]


def case_key(case: tuple) -> str:
    return "-".join(map(str, case))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, observation):
    r = Runs(tmp_path_factory.mktemp("runs"), observation)
    for case in CASES:
        r.start(case_key(case), case)
    r.start("faulty", FAULTY, {"HTCLEAN_FAIL_ONCE": ",".join(FAILING)})
    r.start("interrupted", FAULTY)
    r.watcher = r.interrupt_at("interrupted", "*-model-c02.json")
    r.launch("demo", ["demo", str(r.root / "demo" / "out")])
    yield r
    for proc, _, log in r.procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def products(run_dir: Path) -> dict:
    out = run_dir / "outputs"
    images = {k: fits.read_fits(out / f"{NAME}-{k}.fits")[0] for k in KINDS}
    summary = json.loads((out / f"{NAME}-summary.json").read_text())
    return {"images": images, "summary": summary}


def attempts(run_dir: Path) -> list[dict]:
    return read_attempts(run_dir / "engine")


@pytest.mark.parametrize("case", CASES, ids=[case_key(c) for c in CASES])
def test_run_equals_the_reference(runs, case):
    run_dir = runs.wait(case_key(case))
    ref = runs.reference(case[0])
    got = products(run_dir)
    peak = np.abs(ref.dirty).max()
    expected = {"image": ref.restored, "model": ref.model, "residual": ref.residual,
                "psf": ref.psf, "dirty": ref.dirty}
    for kind in KINDS:
        err = np.abs(got["images"][kind] - expected[kind]).max()
        assert err <= 1e-6 * peak, f"{kind}: {err / peak:.3g} of the peak"
    summary = got["summary"]
    assert summary["cycles"] == ref.cycles >= 3  # several major cycles
    assert summary["stop_reason"] == ref.stop_reason == "threshold"
    assert summary["iterations"] == ref.iterations
    assert summary["components"] == len(ref.components)
    assert summary["beam"]["bmaj_asec"] == pytest.approx(ref.beam.bmaj / tinyms.ASEC, rel=1e-4)
    tries = attempts(run_dir)
    assert {a["status"] for a in tries} == {"succeeded"}
    jobs = Counter(a["type"] for a in tries)
    assert jobs["residual"] == case[1] * ref.cycles and jobs["deconvolve"] == ref.cycles
    for a in tries:  # every job left its record
        if str(a.get("transformation")).startswith("htclean-"):
            rec = json.loads(Path(a["record"]).read_text())
            assert rec["exit_status"] == 0 and rec["wall_s"] > 0 and rec["job"] == a["job"]


def assert_identical(a: dict, b: dict) -> None:
    for kind in KINDS:
        np.testing.assert_array_equal(a["images"][kind], b["images"][kind], err_msg=kind)
    assert a["summary"] == b["summary"]


def test_injected_failures_are_retried_and_change_nothing(runs):
    clean = products(runs.wait(case_key(FAULTY)))
    out = runs.wait("faulty")
    tries = attempts(out)
    by_job = Counter(a["job"] for a in tries)
    for job in FAILING:
        assert by_job[job] == 2, job
        first, second = [a for a in tries if a["job"] == job]
        assert first["status"] == "failed" and first["exit_status"] == 1
        assert first["injected_failure"] and second["status"] == "succeeded"
    assert all(n == 1 for job, n in by_job.items() if job not in FAILING)
    assert_identical(products(out), clean)


def test_interrupted_run_resumes_without_rerunning_what_succeeded(runs):
    """Interrupted (SIGINT) once cycle 2's model exists, then resumed."""
    clean = products(runs.wait(case_key(FAULTY)))
    runs.watcher.join(timeout=600)
    out = runs.wait("interrupted", expect=130)
    before = attempts(out)
    assert not (out / "outputs" / f"{NAME}-image.fits").exists()
    succeeded = {(a["workflow"], a["job"]) for a in before if a["status"] == "succeeded"}
    assert {"partition", "deconvolve-c02"} <= {job for _, job in succeeded}
    cfg = runs.root / "interrupted" / "config.yml"
    assert cli.main(["run", str(cfg), "-o", str(out), "--resume"]) == 0
    after = attempts(out)[len(before):]
    rerun = {(a["workflow"], a["job"]) for a in after}
    assert after and not rerun & succeeded
    assert {a["status"] for a in after} == {"succeeded"}
    assert_identical(products(out), clean)
    assert os.path.isfile(out / "outputs" / f"{NAME}-image.png")


def test_demo(runs, tmp_path):
    """`htclean demo DIR`: the simulated observation, its configuration, the run, the report."""
    demo_dir = runs.root / "demo" / "out"
    runs.wait("demo")
    printed = (runs.root / "demo" / "stdout.txt").read_text()
    assert f"htclean demo: done in {demo_dir}" in printed
    out = demo_dir / "run" / "outputs"
    for name in names.products("demo"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "demo-summary.json").read_text())
    assert summary["stop_reason"] == "threshold" and summary["cycles"] >= 2
    assert summary["image"]["peak"] == pytest.approx(1.0, abs=0.02)  # the 1 Jy source
    assert (demo_dir / "run" / "report" / "report.png").is_file()
    assert config.validate(config.read_yaml(demo_dir / "demo.yml"), demo_dir) == []
    # a directory the demo did not make is refused, and left alone
    (tmp_path / "mine.txt").write_text("keep me")
    assert cli.main(["demo", str(tmp_path)]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]

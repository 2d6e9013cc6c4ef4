"""htclean-next: the loop decision, the workflow it writes (valid, with its inline replica
catalog) from its declared inputs alone, and the same bytes when run again."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_plan import assert_valid, load_yaml, schemas, tiny_ms, write_config  # noqa: F401

from htclean.executables import next as next_job
from htclean.executables.deconvolve import STATE_FORMAT, STATE_VERSION
from htclean.imaging.fits import write_fits
from htclean.imaging.geometry import ImageGeometry
from htclean.workflows import names
from htclean.workflows.plan import plan

R = "run1"
PARTS = 3


@pytest.fixture
def run(tmp_path, tiny_ms):  # noqa: F811
    """A planned local run and next's working directory with its declared inputs (config,
    residual, partition manifest); nothing of the run has reached DIR/outputs."""
    def make(**sections) -> tuple[Path, Path]:
        cfg = write_config(tmp_path, str(tiny_ms), "local", PARTS, **sections)
        result = plan(cfg, tmp_path / "plan", force=True)
        work = tmp_path / "work"
        work.mkdir(exist_ok=True)
        (work / names.config(R)).write_bytes(result.files["config.yml"].read_bytes())
        parts = [{"file": names.part(R, i, PARTS), "bytes": 1000 + i} for i in range(PARTS)]
        (work / names.partitions(R)).write_text(json.dumps({"parts": parts}))
        image = np.zeros((64, 64))
        image[32, 32] = 0.5
        geom = ImageGeometry(64, 64, 1e-5, 1.2, 0.6, 1.4e9)
        write_fits(work / names.dirty_fits(R), image, geom)
        write_fits(work / names.residual_fits(R, 1), image * 0.2, geom)
        return result.out_dir, work
    return make


def argv(work: Path, k: int, state: bool = False) -> list[str]:
    return ["--config", str(work / names.config(R)),
            "--record", str(work / names.record(R, names.next_job(k))),
            "--cycle", str(k), "--residual", str(work / names.residual_fits(R, k)),
            *(["--state", str(work / names.state(R, k))] if state else []),
            "--partitions", str(work / names.partitions(R)),
            "--workflow", str(work / names.cycle_file(k + 1)),
            "--decision", str(work / names.decision(R, k))]


def write_state(out: Path, work: Path, k: int, peak_start: float, iterations: int,
                stop: str) -> None:
    """Cycle k's minor-cycle state (the job's input)."""
    entry = {"cycle": k, "iterations": iterations, "peak_start": peak_start, "peak_end": 0.1,
             "stop_reason": stop, "threshold": 0.0}
    text = json.dumps({"format": STATE_FORMAT, "version": STATE_VERSION, **entry,
                       "iterations_total": iterations, "components": 3, "flux": 1.0,
                       "history": [entry]})
    (work / names.state(R, k)).write_text(text)


def test_cycle_zero_goes_on_with_a_valid_cycle_workflow(run, schemas):  # noqa: F811
    out, work = run()
    assert next_job.main(argv(work, 0)) == 0
    decision = json.loads((work / names.decision(R, 0)).read_text())
    assert decision["go_on"] and decision["next"] == "cycle-01" and decision["peak"] == 0.5
    doc = load_yaml(work / "cycle-01.yml")
    assert_valid(schemas["wf"], doc, "cycle-01.yml")
    assert {j["id"] for j in doc["jobs"]} >= {"deconvolve-c01", "residual-c01-p002",
                                             "next-c01", "cycle-02"}
    pfns = {r["lfn"]: {p["pfn"] for p in r["pfns"]} for r in doc["replicaCatalog"]["replicas"]}
    part = names.part(R, 1, PARTS)
    assert pfns[part] == {f"file://{out}/outputs/{part}", f"file://{out}/scratch/{R}/{part}"}
    assert pfns[names.config(R)] == {f"file://{out}/config.yml"}
    residual = next(j for j in doc["jobs"] if j["id"] == "residual-c01-p001")
    assert residual["profiles"]["condor"]["request_disk"] == str(
        math.ceil((2 * (1001 + 64 * 1024 + 64 * 1024) + 2**30) / 1024))
    assert set(pfns) == set(decision["inputs"])
    assert json.loads((work / names.record(R, "next-c00")).read_text())["exit_status"] == 0


def test_the_loop_stops_with_the_final_workflow(run, schemas):  # noqa: F811
    out, work = run(deconvolution={"niter": 0})
    assert next_job.main(argv(work, 0)) == 0
    doc = load_yaml(work / "cycle-01.yml")
    assert_valid(schemas["wf"], doc, "final")
    assert [j["id"] for j in doc["jobs"]] == ["restore"]
    assert json.loads((work / names.decision(R, 0)).read_text())["reason"] == "niter"

    out, work = run()
    (out / "outputs" / names.model(R, 1)).write_text("{}")
    write_state(out, work, 1, peak_start=0.5, iterations=10, stop="mgain")
    assert next_job.main(argv(work, 1, state=True)) == 0  # 0.1 < 0.5: go on
    assert "deconvolve-c02" in (work / "cycle-02.yml").read_text()
    write_state(out, work, 1, peak_start=0.05, iterations=10, stop="mgain")
    assert next_job.main(argv(work, 1, state=True)) == 0  # 0.1 > 1.5 x 0.05: diverged
    decision = json.loads((work / names.decision(R, 1)).read_text())
    assert (decision["reason"], decision["next"]) == ("diverged", "final")
    restore = load_yaml(work / "cycle-02.yml")["jobs"][0]
    assert restore["arguments"][restore["arguments"].index("--model") + 1] == names.model(R, 1)


def test_next_reads_only_its_declared_inputs(run, capsys):
    """Nothing in DIR/outputs, yet next writes the next level at once (no wait on stage-out
    jobs that are not its parents); a bad manifest or a missing --state is one error line."""
    out, work = run()
    assert not any((out / "outputs").iterdir())
    assert next_job.main(argv(work, 0)) == 0 and (work / "cycle-01.yml").exists()
    (work / names.partitions(R)).write_text("[]")
    assert next_job.main(argv(work, 0)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--partitions" in err[0]
    assert next_job.main(argv(work, 1)) == 2  # a later cycle without its --state


def test_a_retried_next_writes_the_same_bytes(run):
    """Two processes with different hash seeds: byte-identical workflow and decision."""
    out, work = run(weighting={"type": "uniform"})
    written = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-m", "htclean.executables.next", *argv(work, 0)],
                       check=True, env=env, capture_output=True)
        written.append([(work / f).read_bytes() for f in ("cycle-01.yml",
                                                          names.decision(R, 0))])
    assert written[0] == written[1]
    assert names.weights_root(R, PARTS).encode() in written[0][0]


def test_next_runs_the_next_minor_cycle_as_the_deconvolve_job_would(run):
    """With --output-model (a pool plan whose minor cycles run on the submit host), next runs
    minor cycle K+1 once it goes on: the same model and state, byte for byte, as the
    deconvolve job given the same files; when the loop stops it hands cycle K's on as they
    are (at cycle 0, an empty model and a cycle-0 state)."""
    from htclean.executables import deconvolve
    from htclean.imaging.geometry import psf_shape

    out, work = run()
    pnx, pny = psf_shape(64, 64, 2.0)
    psf = np.zeros((pny, pnx))
    psf[pny // 2, pnx // 2] = 1.0
    psf[pny // 2, pnx // 2 + 1] = 0.3
    psf_path = work / names.psf_fits(R)
    write_fits(psf_path, psf, ImageGeometry(pnx, pny, 1e-5, 1.2, 0.6, 1.4e9))

    def minor(k: int, where: str) -> list[str]:
        return ["--output-model", str(work / where / names.model(R, k + 1)),
                "--output-state", str(work / where / names.state(R, k + 1))]
    for where in ("next", "deconvolve"):
        (work / where).mkdir()
    assert next_job.main([*argv(work, 0), "--psf-fits", str(psf_path),
                          *minor(0, "next")]) == 0
    assert json.loads((work / names.decision(R, 0)).read_text())["minor_cycle"] == 1
    common = ["--config", str(work / names.config(R)), "--psf", str(psf_path)]
    assert deconvolve.main([*common, "--cycle", "1", "--residual",
                            str(work / names.dirty_fits(R)), *minor(0, "deconvolve")]) == 0
    for lfn in (names.model(R, 1), names.state(R, 1)):
        assert (work / "next" / lfn).read_bytes() == (work / "deconvolve" / lfn).read_bytes()
    for lfn in (names.model(R, 1), names.state(R, 1)):  # cycle 1's, as the level below has
        (work / lfn).write_bytes((work / "next" / lfn).read_bytes())
    previous = ["--model", str(work / names.model(R, 1))]
    assert next_job.main([*argv(work, 1, state=True), "--psf", str(psf_path), *previous,
                          *minor(1, "next")]) == 0
    assert deconvolve.main([*common, "--cycle", "2", "--residual",
                            str(work / names.residual_fits(R, 1)), *previous, "--state",
                            str(work / names.state(R, 1)), *minor(1, "deconvolve")]) == 0
    for lfn in (names.model(R, 2), names.state(R, 2)):
        assert (work / "next" / lfn).read_bytes() == (work / "deconvolve" / lfn).read_bytes()

    out, work = run(deconvolution={"niter": 0})  # the loop stops at once
    (work / "next").mkdir(exist_ok=True)
    assert next_job.main([*argv(work, 0), "--psf-fits", str(psf_path),
                          *minor(0, "next")]) == 0
    state = deconvolve.read_state(work / "next" / names.state(R, 1))
    assert (state["cycle"], state["iterations_total"], state["history"]) == (0, 0, [])
    assert json.loads((work / names.decision(R, 0)).read_text())["minor_cycle"] is None
    write_state(out, work, 1, peak_start=0.5, iterations=10, stop="niter")
    (work / names.model(R, 1)).write_text(
        (work / "next" / names.model(R, 1)).read_text())
    assert next_job.main([*argv(work, 1, state=True), "--psf", str(psf_path), *previous,
                          *minor(1, "next")]) == 0
    for made in (names.model, names.state):  # cycle 1's, handed on under cycle 2's names
        assert (work / "next" / made(R, 2)).read_bytes() == (work / made(R, 1)).read_bytes()

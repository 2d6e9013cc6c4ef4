"""The local engine on toy workflows written with the Pegasus API (see enginetoys.py)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import enginetoys as toys
import pytest
from Pegasus.api import File, Job, Workflow

from htclean.engine.catalogs import ReplicaCatalog, read_properties
from htclean.engine.progress import PeakTracker, ProgressDisplay, Snapshot, format_line
from htclean.engine.runner import run_workflow
from htclean.engine.state import read_attempts
from htclean.imaging.errors import InputError

SEED = {"seed.txt": "the seed\n"}


def attempts_by_job(plan: Path) -> Counter:
    return Counter((a["workflow"], a["job"]) for a in read_attempts(plan / "engine"))


def last(plan: Path, workflow: str, job: str) -> dict:
    return [a for a in read_attempts(plan / "engine")
            if a["workflow"] == workflow and a["job"] == job][-1]


def outputs_text(storage: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(storage.iterdir())
            if p.is_file() and not p.name.endswith(".record.json")}


def test_dependency_order_outputs_and_records(tmp_path):
    storage = toys.write_plan(tmp_path, toys.diamond(), SEED)
    result = run_workflow(tmp_path, jobs=2)
    assert result.status == "succeeded" and result.exit_code == 0
    assert result.attempts == 5 and result.skipped == 0
    assert (storage / "result.txt").read_text().startswith("join ")
    split = last(tmp_path, "diamond", "split")
    join = last(tmp_path, "diamond", "join")
    for i in range(3):
        work = last(tmp_path, "diamond", f"work-{i}")
        assert split["end"] <= work["start"] and work["end"] <= join["start"]
        assert work["record"] == str(storage / f"work-{i}.record.json")
        assert json.loads(Path(work["record"]).read_text())["job"] == f"work-{i}"
        assert Path(work["stdout"]).read_text() == f"toy work-{i} ran\n"
    state = json.loads((tmp_path / "engine" / "state" / "diamond.json").read_text())
    assert state["status"] == "succeeded"
    assert {j["state"] for j in state["jobs"].values()} == {"done"}
    with pytest.raises(InputError, match="already holds a run"):
        run_workflow(tmp_path, jobs=2)


def test_bounded_concurrency(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    storage = toys.write_plan(tmp_path, toys.diamond(sleep=0.4, markers=str(markers), width=6),
                              SEED)
    assert run_workflow(tmp_path, jobs=3).status == "succeeded"
    works = [a for a in read_attempts(tmp_path / "engine") if a["job"].startswith("work-")]
    assert max_overlap(works) == 3
    seen = [int((storage / f"part-{i}.txt").read_text().split()[2]) for i in range(6)]
    assert 2 <= max(seen) <= 3


def max_overlap(entries: list[dict]) -> int:
    events = sorted([(a["start"], 1) for a in entries] + [(a["end"], -1) for a in entries])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_category_throttle(tmp_path):
    toys.write_plan(tmp_path, toys.diamond(sleep=0.2, width=3), SEED,
                    extra={"dagman.work.maxjobs": "1"})
    assert run_workflow(tmp_path, jobs=3).status == "succeeded"
    works = [a for a in read_attempts(tmp_path / "engine") if a["job"].startswith("work-")]
    assert len(works) == 3 and max_overlap(works) == 1


def test_fail_once_retries_to_identical_outputs(tmp_path, monkeypatch):
    clean, faulty = tmp_path / "clean", tmp_path / "faulty"
    clean_out = toys.write_plan(clean, toys.diamond(), SEED)
    faulty_out = toys.write_plan(faulty, toys.diamond(), SEED)
    assert run_workflow(clean, jobs=2).status == "succeeded"
    monkeypatch.setenv("HTCLEAN_FAIL_ONCE", "work-1, diamond/join")
    result = run_workflow(faulty, jobs=2)
    assert result.status == "succeeded" and result.attempts == 7
    for job in ("work-1", "join"):
        first, second = [a for a in read_attempts(faulty / "engine") if a["job"] == job]
        assert first["status"] == "failed" and first["exit_status"] == 1
        assert first["injected_failure"] and not second["injected_failure"]
        assert second["status"] == "succeeded" and second["attempt"] == 2
    assert outputs_text(faulty_out) == outputs_text(clean_out)
    assert not list(faulty_out.glob(".partial-*"))


def test_failure_beyond_retries_names_the_job_and_resumes(tmp_path):
    flag = tmp_path / "fail-now"
    flag.touch()
    storage = toys.write_plan(tmp_path, toys.diamond(sleep=0.5, fail_if=str(flag)), SEED,
                              retry=1)
    result = run_workflow(tmp_path, jobs=4)
    assert result.status == "failed" and result.exit_code == 1
    assert result.failed_job == "diamond/work-1"
    assert "job diamond/work-1 (toy) failed after 2 attempt(s): exit status 3" in result.message
    assert "told to fail" in result.message
    assert str(tmp_path / "engine" / "logs" / "diamond" / "work-1.2.err") in result.message
    counts = attempts_by_job(tmp_path)
    # the independent works that were running finished; join never started
    assert counts[("diamond", "work-0")] == counts[("diamond", "work-2")] == 1
    assert counts[("diamond", "work-1")] == 2 and ("diamond", "join") not in counts
    assert not (storage / "result.txt").exists()
    flag.unlink()
    result = run_workflow(tmp_path, jobs=4, resume=True)
    assert result.status == "succeeded" and result.skipped == 3 and result.attempts == 2
    counts = attempts_by_job(tmp_path)
    assert counts[("diamond", "split")] == counts[("diamond", "work-0")] == 1
    assert counts[("diamond", "work-1")] == 3 and counts[("diamond", "join")] == 1
    # everything done: resuming again runs nothing
    again = run_workflow(tmp_path, jobs=4, resume=True)
    assert again.status == "succeeded" and again.attempts == 0 and again.skipped == 5


def test_resume_reruns_a_job_whose_output_vanished(tmp_path):
    storage = toys.write_plan(tmp_path, toys.diamond(), SEED)
    assert run_workflow(tmp_path, jobs=2).status == "succeeded"
    (storage / "part-1.txt").unlink()
    result = run_workflow(tmp_path, jobs=2, resume=True)
    assert result.status == "succeeded" and result.attempts == 1
    assert attempts_by_job(tmp_path)[("diamond", "work-1")] == 2
    assert (storage / "part-1.txt").exists()


def test_interrupt_then_resume(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    toys.write_plan(tmp_path, toys.diamond(sleep=1.5, markers=str(markers), width=2), SEED)
    code = ("import sys; from htclean.engine.runner import run_workflow; "
            f"sys.exit(run_workflow({str(tmp_path)!r}, jobs=2).exit_code)")
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 30
    while len(list(markers.iterdir())) < 2 and time.time() < deadline:
        time.sleep(0.05)
    pids = [int(p.name.rsplit(".", 1)[1]) for p in markers.iterdir()]
    assert len(pids) == 2
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    for i in range(2):
        entry = last(tmp_path, "diamond", f"work-{i}")
        assert entry["status"] == "interrupted" and entry["exit_status"] == -signal.SIGTERM
    state = json.loads((tmp_path / "engine" / "state" / "diamond.json").read_text())
    assert state["status"] == "interrupted"
    result = run_workflow(tmp_path, jobs=2, resume=True)
    assert result.status == "succeeded" and result.skipped == 1
    counts = attempts_by_job(tmp_path)
    assert counts[("diamond", "split")] == 1 and counts[("diamond", "work-0")] == 2


def test_nested_subworkflows_written_at_run_time(tmp_path):
    storage = tmp_path / "outputs"
    toys.write_plan(tmp_path, toys.nested(storage, last=3), SEED)
    result = run_workflow(tmp_path, jobs=2)
    assert result.status == "succeeded", result.message
    assert (storage / "data-3.txt").read_text().startswith("work-3 ")
    entries = read_attempts(tmp_path / "engine")
    assert {a["workflow"] for a in entries} == {"top", "level-1", "level-2", "level-3"}
    subs = {(a["workflow"], a["job"]): a for a in entries if a["transformation"] == "subworkflow"}
    assert set(subs) == {("top", "level-1"), ("level-1", "level-2"), ("level-2", "level-3")}
    assert all(a["status"] == "succeeded" for a in subs.values())
    # a parent level ends after its child
    assert subs[("top", "level-1")]["end"] >= last(tmp_path, "level-3", "work-3")["end"]


def test_nested_failure_then_resume_skips_outer_levels(tmp_path):
    flag = tmp_path / "fail-now"
    flag.touch()
    storage = tmp_path / "outputs"
    toys.write_plan(tmp_path, toys.nested(storage, last=2, fail_if=str(flag)), SEED, retry=0)
    result = run_workflow(tmp_path, jobs=2)
    assert result.exit_code == 1 and result.failed_job == "level-2/work-2"
    assert "job level-2/work-2 (toy) failed after 1 attempt(s): exit status 3" in result.message
    assert last(tmp_path, "top", "level-1")["status"] == "failed"
    flag.unlink()
    result = run_workflow(tmp_path, jobs=2, resume=True)
    assert result.status == "succeeded" and result.attempts == 1
    counts = attempts_by_job(tmp_path)
    for key in (("top", "work-0"), ("top", "next-0"), ("level-1", "work-1"),
                ("level-1", "next-1")):
        assert counts[key] == 1
    assert counts[("level-2", "work-2")] == 2
    assert last(tmp_path, "top", "level-1")["status"] == "succeeded"
    assert (storage / "data-2.txt").exists()


def test_planning_errors_name_the_job(tmp_path):
    wf = Workflow("bad")
    wf.add_jobs(Job("nope", _id="lost").add_args("x"))
    toys.write_plan(tmp_path / "a", wf, SEED)
    with pytest.raises(InputError, match="job lost: transformation 'nope' has no entry"):
        run_workflow(tmp_path / "a")
    wf = Workflow("bad")
    wf.add_jobs(toys.toy_job("reader", ["missing.txt"], ["x.txt"]))
    toys.write_plan(tmp_path / "b", wf, SEED)
    with pytest.raises(InputError, match="job reader: input 'missing.txt' is in no replica"):
        run_workflow(tmp_path / "b")
    wf = Workflow("bad")
    wf.add_jobs(Job("toy", _id="liar").add_args("--name", "liar")
                .add_outputs(File("never.txt"), stage_out=True))
    toys.write_plan(tmp_path / "c", wf, SEED, retry=0)
    result = run_workflow(tmp_path / "c")
    assert result.exit_code == 1 and "without its declared output(s) never.txt" in result.message


def test_catalog_details(tmp_path):
    props = tmp_path / "p.properties"
    props.write_text("# comment\ndagman.retry = 3\nenv.FOO:bar\npegasus.mode development\n")
    assert read_properties(props) == {"dagman.retry": "3", "env.FOO": "bar",
                                      "pegasus.mode": "development"}
    rc = ReplicaCatalog.parse([{"lfn": r"part-(\d+)\.tar", "regex": True,
                                "pfns": [{"site": "local", "pfn": "file:///d/p[1].tar"}]}], "t")
    assert rc.lookup("part-007.tar") == [("local", "file:///d/p007.tar")]
    assert rc.lookup("other") == []


def test_progress_display_and_peak(tmp_path):
    stream = io.StringIO()
    display = ProgressDisplay(stream, interval=100.0)
    snap = Snapshot(3, 2, 1, 10, "cycle-02", 0.0012, 12.0)
    display.update(snap)
    display.update(snap)
    display.finish(snap)
    lines = stream.getvalue().splitlines()
    assert lines == [format_line(snap)] * 2
    assert lines[0] == "[   12s] 3/10 done, 2 running, 1 failed | cycle-02 | peak 1.2 mJy"
    tracker = PeakTracker()
    (tmp_path / "R-deconvolve-c02.json").write_text(json.dumps({"peak_end": 0.5}))
    (tmp_path / "R-next-c01.json").write_text(json.dumps({"peak_residual": 0.9}))
    tracker.offer("R-deconvolve-c02.json", str(tmp_path / "R-deconvolve-c02.json"))
    tracker.offer("R-next-c01.json", str(tmp_path / "R-next-c01.json"))
    assert tracker.peak == 0.5


# --- htclean run ----------------------------------------------------------------------------


def fake_planner(monkeypatch, fail_if: str | None = None) -> list:
    """Stand in for workflows.plan: ``plan`` writes a toy diamond and the resolved config."""
    import types

    import yaml

    from htclean.workflows import config

    calls = []

    def load(config_path, site):
        raw = config.read_yaml(config_path)
        raw.setdefault("execution", {})["site"] = site
        resolved = config.resolve(raw, Path(config_path).resolve().parent)
        return resolved, config.parse(resolved)

    def plan(config_path, out_dir, site=None, force=False):
        calls.append((str(config_path), Path(out_dir), site, force))
        resolved, _ = load(config_path, site)
        resolved["output"].update(run_id="toy-1", dir=str(out_dir))
        toys.write_plan(Path(out_dir), toys.diamond(fail_if=fail_if), SEED)
        (Path(out_dir) / "config.yml").write_text(yaml.safe_dump(resolved))
        return types.SimpleNamespace(run_id="toy-1", parts=1, out_dir=Path(out_dir))

    module = types.SimpleNamespace(plan=plan, load=load)
    monkeypatch.setitem(sys.modules, "htclean.workflows.plan", module)
    return calls


def write_config(path: Path, scale: str = "2asec") -> Path:
    (path.parent / "fake.ms").mkdir(exist_ok=True)
    (path.parent / "fake.ms" / "table.dat").touch()
    path.write_text(f"data:\n  ms: fake.ms\nimage:\n  scale: {scale}\n  size: 64\n")
    return path


def test_htclean_run_plans_runs_and_resumes(tmp_path, monkeypatch, capsys):
    from htclean.workflows.cli import main

    calls = fake_planner(monkeypatch)
    cfg = write_config(tmp_path / "c.yml")
    out = tmp_path / "run"
    assert main(["run", str(cfg), "-o", str(out), "--jobs", "2"]) == 0
    assert calls == [(str(cfg), out, "local", False)]
    captured = capsys.readouterr()
    assert f"outputs in {out / 'outputs'}" in captured.out
    assert "5/5 done" in captured.err
    assert main(["run", str(cfg), "-o", str(out)]) == 2
    assert "already holds a run; add --resume" in capsys.readouterr().err
    assert main(["run", str(cfg), "-o", str(out), "--resume"]) == 0
    assert "5 already done" in capsys.readouterr().out
    assert len(calls) == 1 and sum(attempts_by_job(out).values()) == 5
    write_config(cfg, scale="3asec")
    assert main(["run", str(cfg), "-o", str(out), "--resume"]) == 2
    assert "has changed since" in capsys.readouterr().err
    assert main(["run", str(cfg), "-o", str(tmp_path / "nothing"), "--resume"]) == 2
    assert "holds no plan to resume" in capsys.readouterr().err


def test_htclean_run_failure_says_how_to_resume(tmp_path, monkeypatch, capsys):
    from htclean.workflows.cli import main

    flag = tmp_path / "fail-now"
    flag.touch()
    fake_planner(monkeypatch, fail_if=str(flag))
    cfg = write_config(tmp_path / "c.yml")
    out = tmp_path / "run"
    assert main(["run", str(cfg), "-o", str(out), "--jobs", "2"]) == 1
    err = capsys.readouterr().err
    assert "job diamond/work-1 (toy) failed after 3 attempt(s): exit status 3" in err
    assert f"htclean run {cfg} -o {out} --resume" in err
    flag.unlink()
    assert main(["run", str(cfg), "-o", str(out), "--resume"]) == 0


def test_stdout_to_a_declared_file(tmp_path):
    wf = Workflow("streams")
    job = toys.toy_job("echo", [], ["e.txt"])
    job.set_stdout(File("echo.log"), stage_out=True, register_replica=False)
    wf.add_jobs(job)
    storage = toys.write_plan(tmp_path, wf, SEED)
    result = run_workflow(tmp_path, jobs=1)
    assert result.status == "succeeded", result.message
    assert (storage / "echo.log").read_text() == "toy echo ran\n"
    assert last(tmp_path, "streams", "echo")["stdout"] == str(storage / "echo.log")


def test_intermediate_files_and_cleared_scratch(tmp_path):
    wf = Workflow("chain")
    first = toys.toy_job("first", ["seed.txt"], [])
    first.add_args("--outputs", File("mid.txt"))
    first.add_outputs(File("mid.txt"), stage_out=False, register_replica=False)
    wf.add_jobs(first, toys.toy_job("second", ["mid.txt"], ["end.txt"]))
    storage = toys.write_plan(tmp_path, wf, SEED)
    assert run_workflow(tmp_path, jobs=1).status == "succeeded"
    work = tmp_path / "engine" / "work" / "chain"
    assert not (storage / "mid.txt").exists()
    assert sorted(p.name for p in (work / "first").iterdir()) == ["mid.txt"]
    assert list((work / "second").iterdir()) == []
    assert last(tmp_path, "chain", "first")["outputs"] == {"mid.txt": str(work / "first" /
                                                                          "mid.txt")}
    assert (storage / "end.txt").read_text().startswith("second ")

"""htclean report: from a local run's record and from a (tiny, hand-made) stampede database."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import enginetoys as toys
import pytest

from htclean.engine.runner import run_workflow
from htclean.engine.state import read_attempts
from htclean.imaging.errors import InputError
from htclean.workflows.cli import main
from htclean.workflows.report import Attempt, build_report, concurrency, find_source

PNG = b"\x89PNG\r\n\x1a\n"


def brute_peak(intervals: list[tuple[float, float]]) -> int:
    """Most intervals [start, end) covering one instant, checked at every start."""
    return max(sum(s <= t < e for s, e in intervals) for t, _ in intervals)


def test_concurrency_steps():
    attempts = [Attempt("w/a", "grid", 0.0, 2.0, "succeeded", 0, None),
                Attempt("w/b", "grid", 1.0, 3.0, "succeeded", 0, None),
                Attempt("w/c", "gather", 2.0, 4.0, "failed", 1, None)]
    times, counts = concurrency(attempts)
    assert times == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert counts == {"grid": [1, 2, 1, 0, 0], "gather": [0, 0, 1, 1, 0]}


def test_local_report_matches_the_record(tmp_path, monkeypatch, capsys):
    storage = toys.write_plan(tmp_path, toys.diamond(sleep=0.2, width=3), {"seed.txt": "s"})
    monkeypatch.setenv("HTCLEAN_FAIL_ONCE", "work-1")
    assert run_workflow(tmp_path, jobs=2).status == "succeeded"
    report = build_report(tmp_path)
    on_disk = json.loads((tmp_path / "report" / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert (tmp_path / "report" / "report.png").read_bytes()[:8] == PNG
    entries = read_attempts(tmp_path / "engine")
    work = report["types"]["work"]
    assert list(report["types"]) == ["split", "work", "join"]
    assert (work["jobs"], work["attempts"], work["failures"], work["retries"]) == (3, 4, 1, 1)
    ok = [e for e in entries if e["job"].startswith("work-") and e["status"] == "succeeded"]
    assert work["wall_max_s"] == pytest.approx(max(e["end"] - e["start"] for e in ok))
    records = [json.loads((storage / f"work-{i}.record.json").read_text()) for i in range(3)]
    assert work["cpu_s"] == pytest.approx(sum(r["cpu_s"] for r in records))
    assert work["max_rss_mb"] == max(r["max_rss_mb"] for r in records)
    assert work["bytes_written"] == 300 and work["visibilities"] == 3000
    assert work["devices"] == ["cpu"]
    summary = report["summary"]
    assert summary["attempts"] == len(entries) == 6
    assert summary["wall_s"] == pytest.approx(max(e["end"] for e in entries)
                                              - min(e["start"] for e in entries))
    assert summary["peak_concurrency"] == brute_peak([(e["start"], e["end"]) for e in entries])
    assert summary["peak_concurrency"] == 2
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "6 attempts, 1 failed" in out and "peak concurrency 2" in out


def test_subworkflow_entries_are_left_out(tmp_path):
    toys.write_plan(tmp_path, toys.nested(tmp_path / "outputs", last=2), {"seed.txt": "s"})
    assert run_workflow(tmp_path, jobs=2).status == "succeeded"
    report = build_report(tmp_path)
    assert set(report["types"]) == {"work", "next"}
    assert report["types"]["work"]["jobs"] == 3 and report["summary"]["jobs"] == 5


def make_stampede(path: Path) -> None:
    """A stampede DB holding only the tables and columns the report reads."""
    con = sqlite3.connect(path)
    con.executescript("""
    CREATE TABLE workflow (wf_id INTEGER PRIMARY KEY, wf_uuid TEXT, dax_label TEXT);
    CREATE TABLE job (job_id INTEGER PRIMARY KEY, wf_id INTEGER, exec_job_id TEXT,
                      type_desc TEXT);
    CREATE TABLE job_instance (job_instance_id INTEGER PRIMARY KEY, job_id INTEGER,
                               job_submit_seq INTEGER, exitcode INTEGER);
    CREATE TABLE jobstate (job_instance_id INTEGER, state TEXT, timestamp NUMERIC,
                           jobstate_submit_seq INTEGER);
    CREATE TABLE invocation (invocation_id INTEGER PRIMARY KEY, wf_id INTEGER,
                             job_instance_id INTEGER, task_submit_seq INTEGER,
                             start_time NUMERIC, remote_duration NUMERIC,
                             remote_cpu_time NUMERIC, exitcode INTEGER,
                             transformation TEXT, maxrss INTEGER);
    INSERT INTO workflow VALUES (1, 'u1', 'R-top'), (2, 'u2', 'R-cycle-01');
    INSERT INTO job VALUES
      (1, 1, 'stage_in_local_condorpool_0_0', 'stage-in-tx'),
      (2, 1, 'htclean-grid_grid-c00-p000', 'compute'),
      (3, 1, 'htclean-grid_grid-c00-p001', 'compute'),
      (4, 1, 'pegasus-plan_cycle-01', 'dax'),
      (5, 2, 'htclean-deconvolve_ID0000001', 'compute');
    INSERT INTO job_instance VALUES (1, 1, 1, 0), (2, 2, 2, 0), (3, 3, 3, 1), (4, 3, 4, 0),
                                    (5, 4, 5, 0), (6, 5, 1, 0);
    INSERT INTO jobstate VALUES
      (1, 'EXECUTE', 100, 1), (1, 'JOB_TERMINATED', 110, 2),
      (2, 'EXECUTE', 110, 1), (2, 'JOB_TERMINATED', 150, 2),
      (3, 'EXECUTE', 112, 1), (3, 'JOB_TERMINATED', 120, 2),
      (4, 'EXECUTE', 125, 1), (4, 'JOB_TERMINATED', 160, 2),
      (5, 'EXECUTE', 160, 1), (5, 'JOB_TERMINATED', 300, 2);
    INSERT INTO invocation VALUES
      (1, 1, 2, 1, 110.5, 39.0, 30.0, 0, 'htclean::htclean-grid', 204800),
      (2, 1, 4, 1, 125.5, 34.0, 20.0, 0, 'htclean::htclean-grid', 102400),
      (3, 1, 4, -2, 160.0, 1.0, 0.5, 0, 'dagman::post', 1024),
      (4, 2, 6, 1, 200.0, 50.0, 45.0, 0, 'htclean::htclean-deconvolve', 512000);
    """)
    con.commit()
    con.close()


def test_stampede_report(tmp_path, capsys):
    submit = tmp_path / "submit"
    (submit / "R-top" / "run0001").mkdir(parents=True)
    make_stampede(submit / "R-top" / "run0001" / "R-top-0.stampede.db")
    records = tmp_path / "outputs"
    records.mkdir()
    (records / "R-grid-c00-p000.record.json").write_text(json.dumps(
        {"job": "grid-c00-p000", "visibilities": 5000, "bytes_read": 2e6, "device": "gpu:H100"}))
    assert find_source(submit)[0] == "stampede"
    report = build_report(submit, records_dir=records)
    assert set(report["types"]) == {"stage-in-tx", "grid", "deconvolve"}
    grid = report["types"]["grid"]
    assert (grid["jobs"], grid["attempts"], grid["failures"], grid["retries"]) == (2, 3, 1, 1)
    assert grid["wall_max_s"] == 40 and grid["wall_mean_s"] == pytest.approx(37.5)
    assert grid["cpu_s"] == pytest.approx(50.0)  # the post script (seq -2) is not the job's
    assert grid["max_rss_mb"] == 200.0 and grid["visibilities"] == 5000
    assert grid["devices"] == ["gpu:H100"]
    summary = report["summary"]
    # the deconvolve instance has no jobstate rows: its kickstart invocation times it
    assert report["types"]["deconvolve"]["wall_max_s"] == 50
    assert summary["peak_concurrency"] == 2 and summary["wall_s"] == 150
    assert summary["jobs"] == 4 and summary["attempts"] == 5
    assert (submit / "report" / "report.png").read_bytes()[:8] == PNG
    assert main(["report", str(submit), "--records", str(records)]) == 0
    assert "deconvolve" in capsys.readouterr().out


def test_report_errors(tmp_path, capsys):
    with pytest.raises(InputError, match="neither a local run"):
        build_report(tmp_path)
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "no such directory" in capsys.readouterr().err

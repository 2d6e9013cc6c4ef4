"""``htclean report``: per-job-type statistics and a concurrency plot of a run.

Two sources give the same ``Attempt`` list:
- a local run: ``DIR/engine/attempts.jsonl`` (the engine's record) plus each job's own
  ``*.record.json`` (wall, CPU, memory, bytes, visibilities, device);
- a Pegasus submit directory: its stampede database (``*.stampede.db``, SQLite; tables
  workflow, job, job_instance, jobstate, invocation), plus, optionally, the jobs' records from
  the output directory.

Written under ``DIR/report/``: ``report.json`` and ``report.png`` (running jobs against time,
stacked by job type, with the peak concurrency and the total wall beside it).
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from htclean.engine.state import read_attempts, write_json
from htclean.imaging.errors import InputError

NON_COMPUTE = ("dax", "dag")  # sub-workflow jobs: neither counted nor plotted


@dataclass
class Attempt:
    """One attempt of one job: ``job`` = ``<workflow>/<job id>``; times in Unix seconds;
    ``status``: succeeded, failed or interrupted; ``record``: the job's own JSON record."""

    job: str
    type: str
    start: float
    end: float
    status: str
    exit_status: int | None
    record: dict | None


def _load_json(path: str | Path | None) -> dict | None:
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def local_attempts(run_dir: Path) -> list[Attempt]:
    """The compute attempts a local run recorded (sub-workflow entries left out)."""
    out = []
    for e in read_attempts(run_dir / "engine"):
        if e.get("transformation") == "subworkflow" or e.get("start") is None:
            continue
        out.append(Attempt(f"{e['workflow']}/{e['job']}", str(e.get("type") or e["job"]),
                           float(e["start"]), float(e.get("end") or e["start"]),
                           str(e.get("status")), e.get("exit_status"),
                           _load_json(e.get("record"))))
    return out


def _job_type(exec_job_id: str, type_desc: str, transformation: str | None) -> str:
    if type_desc not in ("compute", "staged-compute"):
        return type_desc
    node = exec_job_id.split("_", 1)[1] if "_" in exec_job_id else exec_job_id
    m = re.match(r"[A-Za-z]+", node)
    if m and not re.fullmatch(r"ID\d+", node):
        return m.group(0)
    name = (transformation or node).split("::")[-1].split(":")[0]
    return name.removeprefix("htclean-")


def _job_id(exec_job_id: str) -> str:
    return exec_job_id.split("_", 1)[1] if "_" in exec_job_id else exec_job_id


def _records_by_job(records_dir: Path | None) -> dict[str, dict]:
    if records_dir is None:
        return {}
    found = {}
    for path in sorted(Path(records_dir).glob("*.record.json")):
        rec = _load_json(path)
        if rec and rec.get("job"):
            found[str(rec["job"])] = rec
    return found


STAMPEDE_QUERY = """
SELECT ji.job_instance_id, j.exec_job_id, j.type_desc, ji.exitcode, w.dax_label,
  (SELECT MIN(s.timestamp) FROM jobstate s
     WHERE s.job_instance_id = ji.job_instance_id AND s.state = 'EXECUTE'),
  (SELECT MAX(s.timestamp) FROM jobstate s
     WHERE s.job_instance_id = ji.job_instance_id
       AND s.state IN ('JOB_TERMINATED', 'JOB_SUCCESS', 'JOB_FAILURE', 'JOB_ABORTED')),
  (SELECT MIN(i.start_time) FROM invocation i
     WHERE i.job_instance_id = ji.job_instance_id AND i.task_submit_seq >= 0),
  (SELECT MAX(i.start_time + i.remote_duration) FROM invocation i
     WHERE i.job_instance_id = ji.job_instance_id AND i.task_submit_seq >= 0),
  (SELECT SUM(i.remote_cpu_time) FROM invocation i
     WHERE i.job_instance_id = ji.job_instance_id AND i.task_submit_seq >= 0),
  (SELECT MAX(i.maxrss) FROM invocation i
     WHERE i.job_instance_id = ji.job_instance_id AND i.task_submit_seq >= 0),
  (SELECT i.transformation FROM invocation i
     WHERE i.job_instance_id = ji.job_instance_id AND i.task_submit_seq >= 0
     ORDER BY i.task_submit_seq LIMIT 1)
FROM job_instance ji JOIN job j ON ji.job_id = j.job_id JOIN workflow w ON j.wf_id = w.wf_id
ORDER BY ji.job_instance_id
"""


def stampede_attempts(db: Path, records_dir: Path | None = None) -> list[Attempt]:
    """Job instances of every workflow in a stampede DB (Pegasus's own auxiliary jobs
    included, under their type: stage-in-tx, create-dir, ...). Running time: EXECUTE to
    JOB_TERMINATED in jobstate, else the kickstart invocation's start and duration. CPU and
    peak memory (kickstart's maxrss, KB) come from the invocations; the rest from the job
    records in ``records_dir`` when given."""
    records = _records_by_job(records_dir)
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = con.execute(STAMPEDE_QUERY).fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise InputError(f"{db}: not a readable stampede database ({exc})") from None
    out = []
    for (_, exec_id, type_desc, exitcode, label, ex_start, ex_end, inv_start, inv_end, cpu,
         maxrss, transformation) in rows:
        if type_desc in NON_COMPUTE:
            continue
        start = ex_start if ex_start is not None else inv_start
        end = ex_end if ex_end is not None else inv_end
        if start is None or end is None:
            continue
        record = dict(records.get(_job_id(exec_id), {}))
        if cpu is not None:
            record.setdefault("cpu_s", float(cpu))
        if maxrss is not None:
            record.setdefault("max_rss_mb", float(maxrss) / 1024.0)
        status = "succeeded" if exitcode == 0 else "failed"
        out.append(Attempt(f"{label}/{exec_id}", _job_type(exec_id, type_desc, transformation),
                           float(start), float(end), status, exitcode, record or None))
    return out


def find_source(directory: Path) -> tuple[str, Path]:
    """("local", DIR) for a local run, ("stampede", the root DB) for a submit directory."""
    if (directory / "engine" / "attempts.jsonl").is_file():
        return "local", directory
    dbs = sorted(directory.glob("*.stampede.db")) or sorted(
        directory.rglob("*.stampede.db"), key=lambda p: (len(p.parts), str(p)))
    if dbs:
        return "stampede", dbs[0]
    raise InputError(f"{directory}: neither a local run (engine/attempts.jsonl) nor a Pegasus "
                     "submit directory (*.stampede.db)")


# --- statistics -----------------------------------------------------------------------------


def concurrency(attempts: list[Attempt]) -> tuple[list[float], dict[str, list[int]]]:
    """Running attempts per type after each event: (times, {type: counts}); a step function
    that holds from times[i] to times[i+1]; an attempt ending at t no longer runs at t."""
    events = sorted({a.start for a in attempts} | {a.end for a in attempts})
    types = sorted({a.type for a in attempts}, key=lambda t: min(a.start for a in attempts
                                                                 if a.type == t))
    index = {t: i for i, t in enumerate(events)}
    counts = {t: [0] * len(events) for t in types}
    for t in types:
        delta = [0] * (len(events) + 1)
        for a in attempts:
            if a.type == t and a.end > a.start:
                delta[index[a.start]] += 1
                delta[index[a.end]] -= 1
        running = 0
        for i in range(len(events)):
            running += delta[i]
            counts[t][i] = running
    return events, counts


def _sum(values: list) -> float | None:
    vals = [float(v) for v in values if isinstance(v, (int, float))]
    return sum(vals) if vals else None


def _max(values: list) -> float | None:
    vals = [float(v) for v in values if isinstance(v, (int, float))]
    return max(vals) if vals else None


def type_statistics(attempts: list[Attempt]) -> dict[str, dict]:
    """Per job type: jobs, attempts, failures (failed attempts), retries (attempts beyond
    each job's first), wall mean/max of the succeeded attempts (s), CPU (s, summed), peak
    memory (MB), bytes read/written, visibilities (summed over the succeeded attempts'
    records) and the devices used."""
    stats: dict[str, dict] = {}
    for t in sorted({a.type for a in attempts},
                    key=lambda t: min(a.start for a in attempts if a.type == t)):
        mine = [a for a in attempts if a.type == t]
        ok = [a for a in mine if a.status == "succeeded"]
        recs = [a.record for a in ok if a.record]
        walls = [a.end - a.start for a in ok]
        jobs = len({a.job for a in mine})
        stats[t] = {
            "jobs": jobs, "attempts": len(mine),
            "failures": sum(a.status == "failed" for a in mine),
            "retries": len(mine) - jobs,
            "wall_mean_s": sum(walls) / len(walls) if walls else None,
            "wall_max_s": max(walls) if walls else None,
            "cpu_s": _sum([r.get("cpu_s") for r in recs]),
            "max_rss_mb": _max([r.get("max_rss_mb") for r in recs]),
            "bytes_read": _sum([r.get("bytes_read") for r in recs]),
            "bytes_written": _sum([r.get("bytes_written") for r in recs]),
            "visibilities": _sum([r.get("visibilities") for r in recs]),
            "devices": sorted({str(r["device"]) for r in recs if r.get("device")}),
        }
    return stats


def summarise(attempts: list[Attempt]) -> dict:
    """Totals: jobs, attempts, failures, first start, last end, wall, peak concurrency and
    when it was first reached (seconds from the start)."""
    times, counts = concurrency(attempts)
    totals = [sum(c[i] for c in counts.values()) for i in range(len(times))]
    peak = max(totals, default=0)
    start = min(a.start for a in attempts)
    end = max(a.end for a in attempts)
    return {"jobs": len({a.job for a in attempts}), "attempts": len(attempts),
            "failures": sum(a.status == "failed" for a in attempts),
            "start": start, "end": end, "wall_s": end - start, "peak_concurrency": peak,
            "peak_at_s": times[totals.index(peak)] - start if totals else 0.0}


# --- the report -----------------------------------------------------------------------------


def _fmt(value, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "s":
        return f"{value:.1f}" if value < 1000 else f"{value:.0f}"
    if kind == "bytes":
        for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
            if value >= scale:
                return f"{value / scale:.1f} {unit}"
        return f"{value:.0f} B"
    if kind == "count":
        return f"{value:.3g}" if value >= 1e6 else f"{value:.0f}"
    return str(value)


COLUMNS = (("type", "type", None), ("jobs", "jobs", "count"), ("tries", "attempts", "count"),
           ("failed", "failures", "count"), ("wall mean s", "wall_mean_s", "s"),
           ("wall max s", "wall_max_s", "s"), ("CPU s", "cpu_s", "s"),
           ("peak MB", "max_rss_mb", "count"), ("read", "bytes_read", "bytes"),
           ("written", "bytes_written", "bytes"), ("visibilities", "visibilities", "count"),
           ("device", "devices", None))


def format_table(report: dict) -> str:
    """The per-type statistics as a fixed-width table, with a line of totals."""
    rows = [[c[0] for c in COLUMNS]]
    for t, s in report["types"].items():
        row = []
        for _, key, kind in COLUMNS:
            if key == "type":
                row.append(t)
            elif key == "devices":
                row.append(",".join(s["devices"]) or "-")
            else:
                row.append(_fmt(s[key], kind))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i in (0, len(COLUMNS) - 1) else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True))) for r in rows]
    s = report["summary"]
    lines.append(f"{s['jobs']} jobs, {s['attempts']} attempts, {s['failures']} failed; "
                 f"total wall {s['wall_s']:.1f} s; peak concurrency {s['peak_concurrency']} "
                 f"(at {s['peak_at_s']:.1f} s)")
    return "\n".join(lines)


def build_report(directory: str | Path, records_dir: str | Path | None = None,
                 out_dir: str | Path | None = None) -> dict:
    """Read a local run or a submit directory, write ``report.json`` and ``report.png`` into
    ``out_dir`` (default ``DIR/report``) and return the report (also what the JSON holds)."""
    from htclean.workflows.report_plot import plot_concurrency

    directory = Path(directory).resolve()
    if not directory.is_dir():
        raise InputError(f"{directory}: no such directory")
    kind, source = find_source(directory)
    if kind == "local":
        attempts = local_attempts(source)
    else:
        attempts = stampede_attempts(source, Path(records_dir) if records_dir else None)
    if not attempts:
        raise InputError(f"{source}: no finished job attempts recorded yet")
    out = Path(out_dir) if out_dir else directory / "report"
    out.mkdir(parents=True, exist_ok=True)
    report = {"source": kind, "path": str(source), "summary": summarise(attempts),
              "types": type_statistics(attempts), "plot": str(out / "report.png")}
    times, counts = concurrency(attempts)
    plot_concurrency(times, counts, report["summary"], out / "report.png",
                     title=f"{directory.name} ({kind})")
    write_json(out / "report.json", report)
    return report

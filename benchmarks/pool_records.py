"""What a finished Pegasus run on an HTCondor pool recorded, read for benchmarks/pool_scale.py.

Every level's ``jobstate.log`` (DAGMan's events, through ``pool_cycle.levels``), its HTCondor
user logs (the bytes each job's transfers moved through the schedd: with condorio every byte a
pool job reads or writes crosses the access point), the kickstart records in the jobs' ``.out``
files and htclean's own job records in the plan's ``outputs``. ``measure(submit, outputs)``
returns one dict of figures (seconds, bytes) that pool_scale prints and the campaign model's
test compares with (``tests/data/pool_scale_*.json``).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pool_cycle
from pool_cycle import HTCLEAN, JobTimes, Level

EVENT = re.compile(r"^(\d{3}) \((\d+)\.\d+\.\d+\) ")
NODE = re.compile(r'DAGNodeName = "([^"]+)"')
BYTES = re.compile(r"^\s*(\d+)\s+-\s+Run Bytes (Sent|Received) By Job")
NOT_USER_LOGS = ("jobstate.log", ".dagman.log", ".exitcode.log", ".nodes.log", "monitord")


def union(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one span."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def transfer_bytes(level: Path) -> dict[str, int]:
    """Bytes moved by HTCondor's file transfer per DAG node of one level (all attempts)."""
    out: dict[str, int] = defaultdict(int)
    for log in level.glob("*.log*"):
        if not re.search(r"\.log(\.\d+)?$", log.name) or any(s in log.name
                                                             for s in NOT_USER_LOGS):
            continue
        node: dict[str, str] = {}
        cluster = None
        for line in log.read_text(errors="replace").splitlines():
            m = EVENT.match(line)
            if m:
                cluster = m.group(2)
                continue
            m = NODE.search(line)
            if m and cluster:
                node[cluster] = m.group(1)
                continue
            m = BYTES.match(line)
            if m and cluster in node:
                out[node[cluster]] += int(m.group(1))
    return dict(out)


def kickstart(level: Path, job: str) -> dict | None:
    """The last kickstart record of ``job`` (its executable's start, duration, maxrss)."""
    outs = sorted(level.rglob(f"{job}.out.[0-9][0-9][0-9]"))
    if not outs:
        return None
    text = outs[-1].read_text(errors="replace")
    m = re.search(r"mainjob:\s*\n\s*start: (\S+)\s*\n\s*duration: ([\d.]+)", text)
    rss = re.search(r"mainjob:.*?maxrss: (\d+)", text, re.S)
    if not m:
        return None
    return {"start": m.group(1), "duration_s": float(m.group(2)),
            "maxrss_mb": int(rss.group(1)) / 1024 if rss else None}


def records(outputs: Path, pattern: str) -> dict[str, dict]:
    """htclean's job records in ``outputs`` whose job name matches ``pattern``."""
    found = {}
    for path in sorted(outputs.glob("*.record.json")):
        try:
            rec = json.loads(path.read_text())
        except ValueError:
            continue
        if re.fullmatch(pattern, str(rec.get("job", ""))):
            found[rec["job"]] = rec
    return found


def cycle_split(level: Level, path: list[JobTimes], t0: int) -> dict[str, int]:
    """The seconds of one cycle's serial path (after planning and the DAGMan start, from
    ``t0``) spent waiting in the queue (SUBMIT to EXECUTE of the path's jobs), in htclean's
    jobs (EXECUTE to JOB_TERMINATED) and in Pegasus's own jobs; the rest is DAGMan and Pegasus
    bookkeeping (log scans, submits, POST scripts)."""
    wait = work = aux = 0
    for job in path:
        sub, ex, term = (job.at("SUBMIT"), job.at("EXECUTE"), job.at("JOB_TERMINATED"))
        if sub is None or ex is None or term is None:
            continue
        wait += ex - max(sub, t0)
        if HTCLEAN.match(job.name):
            work += term - ex
        else:
            aux += term - ex
    return {"queue_wait_s": wait, "htclean_s": work, "pegasus_jobs_s": aux}


KEPT = ("SUBMIT", "EXECUTE", "JOB_TERMINATED", "POST_SCRIPT_SUCCESS", "PRE_SCRIPT_STARTED",
        "PRE_SCRIPT_SUCCESS", "DAGMAN_STARTED", "DAGMAN_FINISHED")


def jobstate_lines(submit: Path) -> dict[str, list[str]]:
    """Every level's jobstate.log, trimmed to 'time job state' of the events the campaign
    model's test reads (a small fixture of a real run)."""
    out = {}
    for name, level in pool_cycle.levels(submit).items():
        lines = []
        for line in (level.dir / "jobstate.log").read_text().splitlines():
            parts = line.split()
            if len(parts) > 3 and parts[1] == "INTERNAL":
                parts = [parts[0], "INTERNAL", parts[3]]
            if len(parts) > 2 and parts[2] in KEPT:
                lines.append(" ".join(parts[:3]))
        out[name] = lines
    return out


def widest_step(level: Level, within: str = "") -> dict[str, float]:
    """The level's widest parallel step (e.g. its residual jobs; ``within``: among the htclean
    jobs whose name holds it): jobs, the span of DAGMan's submits (its submit rate), of their
    queue waits, and first EXECUTE to last end."""
    steps: dict[str, list[JobTimes]] = defaultdict(list)
    for name, job in level.jobs.items():
        if HTCLEAN.match(name) and within in name:
            steps[re.sub(r"-p\d+$", "", name)].append(job)
    jobs = max(steps.values(), key=len, default=[])
    sub = [j.at("SUBMIT") for j in jobs if j.at("SUBMIT") is not None]
    ex = [j.at("EXECUTE") for j in jobs if j.at("EXECUTE") is not None]
    end = [j.at("JOB_TERMINATED") for j in jobs if j.at("JOB_TERMINATED") is not None]
    waits = sorted(e - s for j in jobs if (s := j.at("SUBMIT")) is not None
                   and (e := j.at("EXECUTE")) is not None)
    if not (sub and ex and end and waits):
        return {"jobs": len(jobs)}
    return {"jobs": len(jobs), "submit_span_s": max(sub) - min(sub),
            "wait_median_s": waits[len(waits) // 2], "wait_max_s": waits[-1],
            "run_span_s": max(end) - min(ex)}


def measure(submit: Path, outputs: Path) -> dict:
    """The run's figures: wall, jobs, per cycle (wall, planning, DAGMan start, queue waits,
    htclean work, Pegasus's jobs, bookkeeping, serial path, jobs, bytes), next's records,
    planning per level, the processing share."""
    found = pool_cycle.levels(submit)
    top = found["top"]
    everything = [j for lv in found.values() for j in lv.jobs.values()]
    t_start = top.started or min(j.start for j in everything if j.start)
    t_end = max(j.end for j in everything if j.end is not None)
    finished = [ln for ln in (submit / "jobstate.log").read_text().splitlines()
                if "DAGMAN_FINISHED" in ln]
    if finished:
        t_end = max(t_end, int(finished[-1].split()[0]))
    work = [(j.at("EXECUTE"), j.at("JOB_TERMINATED")) for j in everything
            if HTCLEAN.match(j.name) and j.at("EXECUTE") and j.at("JOB_TERMINATED")]
    bytes_by_level = {name: transfer_bytes(lv.dir) for name, lv in found.items()}
    planning = {}
    for lv in found.values():
        for name, job in lv.jobs.items():
            if name.startswith("pegasus-plan_"):
                a, b = job.at("PRE_SCRIPT_STARTED"), job.at("PRE_SCRIPT_SUCCESS")
                if a is not None and b is not None:
                    planning[name.removeprefix("pegasus-plan_")] = b - a
    cycles = []
    names = sorted(n for n in found if n != "top")
    previous = top
    for name in names:
        level = found[name]
        nxt_prev, nxt = pool_cycle.next_name(previous), pool_cycle.next_name(level)
        sub = previous.jobs.get(f"pegasus-plan_{name}")
        if nxt is None or nxt_prev is None or sub is None:
            previous = level
            continue
        t0, t1 = previous.jobs[nxt_prev].end, level.jobs[nxt].end
        if t0 is None or t1 is None:
            break
        plan_end = sub.at("PRE_SCRIPT_SUCCESS") or t0
        plan = plan_end - (sub.at("PRE_SCRIPT_STARTED") or t0)
        dagman = (level.started or plan_end) - plan_end
        # a pool run's cycle K starts in the level above (graph.split_cycles): next-c(K-1),
        # then cycle K's residual jobs there; the chain's jobs that ended after next-c(K-1)
        above = [j for j in pool_cycle.serial_path(previous, sub.name)[:-1]
                 if (j.end or 0) > t0]
        path = pool_cycle.serial_path(level, nxt)
        split = {key: a + b for (key, a), b in zip(
            cycle_split(previous, above, t0).items(),
            cycle_split(level, path, level.started or plan_end).values(), strict=True)}
        wall = t1 - t0
        k = name.removeprefix("cycle-")
        cycles.append({
            "cycle": name, "wall_s": wall, "planning_s": plan, "dagman_start_s": dagman,
            **split, "bookkeeping_s": wall - plan - dagman - sum(split.values()),
            "serial_path": [HTCLEAN.sub(r"\2", j.name) for j in [*above, *path]],
            "jobs": len(level.jobs), "ap_bytes": sum(bytes_by_level[name].values()),
            "widest": widest_step(previous, f"residual-c{k}-") if above
            else widest_step(level)})
        previous = level
    nexts = records(outputs, r"next-c\d+")
    for job, rec in nexts.items():
        level = next((lv for lv in found.values() if f"htclean-next_{job}" in lv.jobs), None)
        rec["kickstart"] = kickstart(level.dir, f"htclean-next_{job}") if level else None
    wall = t_end - t_start
    return {
        "wall_s": wall, "jobs": len(everything),
        "jobs_by_kind": dict(Counter(pool_cycle.kind(j.name) for j in everything)),
        "jobs_per_min": len(everything) / (wall / 60) if wall > 0 else 0.0,
        "processing_s": union(work), "processing_share": union(work) / wall if wall else 0.0,
        "planning_s": planning, "cycles": cycles,
        "ap_bytes_top": sum(bytes_by_level["top"].values()),
        "ap_bytes": sum(sum(b.values()) for b in bytes_by_level.values()),
        "next": {job: {"wall_s": r.get("wall_s"), "cpu_s": r.get("cpu_s"),
                       "max_rss_mb": r.get("max_rss_mb"),
                       "exe_s": (r["kickstart"] or {}).get("duration_s"),
                       "exe_maxrss_mb": (r["kickstart"] or {}).get("maxrss_mb")}
                 for job, r in nexts.items()},
    }

"""The cost of a major cycle on a real HTCondor pool, from a Pegasus submit directory.

    python benchmarks/pool_cycle.py SUBMIT_DIR
    sudo python benchmarks/pool_cycle.py --run CYCLES      (plan, submit, wait, then report)

``--run`` plans tests/poolkit's tiny workflow (720 rows, 64 x 64, 2 parts, site condor, no
container; 1-CPU jobs, a loop that runs CYCLES major cycles) as the test pool's user, submits
it, waits and reports on it: the figures of the README's "The cost of a cycle".

Reads the ``jobstate.log`` of every level (the top and each nested cycle sub-workflow) and the
``.dag`` files, and prints, per major cycle K (from next-c(K-1) ending to next-cK ending):

- wall: the cycle's wall time;
- planning: the sub-workflow's pegasus-plan (the PRE script of its SubWorkflow job);
- dagman: from the end of planning to the sub-DAGMan's start;
- compute: the htclean jobs on the serial path, EXECUTE to JOB_TERMINATED (the widest of a
  parallel step counts once);
- bookkeeping: the rest (scheduling rounds, log scans, POST scripts, Pegasus's own jobs);
- the serial path: the jobs that the cycle's next job waited on, in order: on a pool run
  whose level holds next-c(K-1) and cycle K's residual jobs (workflows/graph.py) it starts in
  the level above, after next-c(K-1), then the sub-workflow, then the level's own jobs.

Then the whole run: its wall time, jobs by kind, and the tail after the last next job. The
figures come from the pool's own records, so run it on a finished (or failed) workflow.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HTCLEAN = re.compile(r"htclean-(\w+)_(.+)")
KINDS = (("create_dir", "create-dir"), ("stage_in", "stage-in"), ("stage_inter", "stage-in"),
         ("stage_out", "stage-out"), ("register", "register"), ("clean_up", "cleanup"),
         ("cleanup", "cleanup"), ("pegasus-plan", "sub-workflow"), ("htclean-", "htclean"))


@dataclass
class JobTimes:
    """When DAGMan saw each event of one job (epoch seconds; the last attempt's)."""

    name: str
    events: dict[str, int] = field(default_factory=dict)

    def at(self, *states: str) -> int | None:
        for state in states:
            if state in self.events:
                return self.events[state]
        return None

    @property
    def start(self) -> int | None:
        return self.at("PRE_SCRIPT_STARTED", "SUBMIT")

    @property
    def end(self) -> int | None:
        return self.at("POST_SCRIPT_SUCCESS", "POST_SCRIPT_FAILURE", "JOB_SUCCESS",
                       "JOB_FAILURE")


@dataclass
class Level:
    """One workflow level: its directory, jobs, parents and the DAGMan start."""

    dir: Path
    jobs: dict[str, JobTimes]
    parents: dict[str, set[str]]
    started: int | None


def kind(name: str) -> str:
    for prefix, what in KINDS:
        if name.startswith(prefix):
            return what
    return "other"


def read_level(directory: Path) -> Level:
    jobs: dict[str, JobTimes] = {}
    started = None
    for line in (directory / "jobstate.log").read_text().splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        if parts[1] == "INTERNAL":
            if "DAGMAN_STARTED" in line and started is None:
                started = int(parts[0])
            continue
        job = jobs.setdefault(parts[1], JobTimes(parts[1]))
        if parts[2] in ("SUBMIT", "PRE_SCRIPT_STARTED") and parts[2] in job.events:
            job.events = {}  # a retry: keep the last attempt
        job.events[parts[2]] = int(parts[0])
    parents: dict[str, set[str]] = {}
    for dag in directory.glob("*.dag"):
        for line in dag.read_text().splitlines():
            m = re.match(r"PARENT\s+(.+?)\s+CHILD\s+(.+)", line)
            if m:
                for child in m.group(2).split():
                    parents.setdefault(child, set()).update(m.group(1).split())
    return Level(directory, jobs, parents, started)


def levels(submit: Path) -> dict[str, Level]:
    """Every level under ``submit`` by name: 'top', then 'cycle-01', ... (the last run of a
    sub-workflow directory when it was resubmitted)."""
    out = {"top": read_level(submit)}
    for log in sorted(submit.rglob("jobstate.log")):
        m = re.search(r"(cycle-\d+)(\.\d+)?$", log.parent.name)
        if m and log.parent != submit:
            out[m.group(1)] = read_level(log.parent)
    return out


def serial_path(level: Level, last: str) -> list[JobTimes]:
    """The chain of jobs that ``last`` waited on: from it, always the parent that ended last."""
    path, name = [], last
    while name in level.jobs:
        path.append(level.jobs[name])
        ended = [level.jobs[p] for p in level.parents.get(name, ()) if p in level.jobs
                 and level.jobs[p].end is not None]
        if not ended:
            break
        name = max(ended, key=lambda j: j.end).name
    return path[::-1]


def compute_seconds(level: Level, path: list[JobTimes]) -> int:
    """EXECUTE to JOB_TERMINATED of the htclean jobs on the path; a parallel step (jobs of the
    same type, e.g. residual-cKK-pNNN) counts its widest job."""
    total = 0
    for job in path:
        m = HTCLEAN.match(job.name)
        if not m:
            continue
        stem = re.sub(r"-p\d+$", "", m.group(2))
        peers = [j for n, j in level.jobs.items() if (mm := HTCLEAN.match(n))
                 and re.sub(r"-p\d+$", "", mm.group(2)) == stem]
        total += max((j.at("JOB_TERMINATED") or 0) - (j.at("EXECUTE") or 0) for j in peers)
    return total


def next_name(level: Level) -> str | None:
    return next((n for n in level.jobs if n.startswith("htclean-next_")), None)


def steps(path: list[JobTimes], start: int) -> str:
    """Each job of a serial path as wait+queue/run/post (s): from the previous job's end (or
    the level's DAGMan start) to its SUBMIT, SUBMIT to EXECUTE, EXECUTE to JOB_TERMINATED,
    JOB_TERMINATED to the end of its POST script."""
    out, before = [], start
    for job in path:
        sub, ex = job.at("SUBMIT"), job.at("EXECUTE")
        term, end = job.at("JOB_TERMINATED"), job.end
        if None in (sub, ex, term, end):
            continue
        label = HTCLEAN.sub(r"\2", job.name).split("_")[0]
        out.append(f"{label} {sub - before}+{ex - sub}/{term - ex}/{end - term}")
        before = end
    return "; ".join(out)


def report(submit: Path, detail: bool = False) -> int:
    found = levels(submit)
    names = sorted(n for n in found if n != "top")
    print(f"submit directory: {submit}")
    print(f"levels: top + {len(names)} sub-workflow(s)")
    print(f"{'cycle':>8} {'wall':>6} {'planning':>9} {'dagman':>7} {'compute':>8} "
          f"{'bookkeeping':>12}  serial path")
    previous = found["top"]
    walls = []
    for name in names:
        level = found[name]
        nxt_prev, nxt = next_name(previous), next_name(level)
        sub = previous.jobs.get(f"pegasus-plan_{name}")
        if nxt is None or nxt_prev is None or sub is None:
            previous = level
            continue  # the final level, or a level that did not get that far
        t0, t1 = previous.jobs[nxt_prev].end, level.jobs[nxt].end
        if t0 is None or t1 is None:
            break
        planning = (sub.at("PRE_SCRIPT_SUCCESS", "PRE_SCRIPT_TERMINATED") or t0) - \
            (sub.at("PRE_SCRIPT_STARTED") or t0)
        dagman = (level.started or t0) - (sub.at("PRE_SCRIPT_SUCCESS") or t0)
        # a pool run's cycle starts in the level above: next-c(K-1), then cycle K's residual
        # jobs there (graph.py), then this level's create-dir and next-cKK
        # (or the level's stage-in, beside next-c(K-1), when it ends later): the chain's
        # jobs that ended after next-c(K-1)
        above = [j for j in serial_path(previous, sub.name)[:-1] if (j.end or 0) > t0]
        path = serial_path(level, nxt)
        compute = compute_seconds(previous, above) + compute_seconds(level, path)
        wall = t1 - t0
        walls.append(wall)
        book = wall - planning - dagman - compute
        chain = " > ".join([*(HTCLEAN.sub(r"\2", j.name) for j in above), name,
                            *(HTCLEAN.sub(r"\2", j.name) for j in path)])
        print(f"{name:>8} {wall:>5}s {planning:>8}s {dagman:>6}s {compute:>7}s {book:>11}s  "
              f"{chain}")
        if detail:
            parts = (steps(above, t0), f"plan+dagman {planning + dagman}",
                     steps(path, level.started or t0))
            print(f"{'':>8} {'; '.join(filter(None, parts))}")
        previous = level
    everything = [j for lv in found.values() for j in lv.jobs.values()]
    starts = [j.start for j in everything if j.start is not None]
    ends = [j.end for j in everything if j.end is not None]
    last_next = max([lv.jobs[n].end or 0 for lv in found.values() if (n := next_name(lv))],
                    default=0)
    if starts and ends:
        counts = Counter(kind(j.name) for j in everything).most_common()
        print(f"run: {max(ends) - min(starts)} s wall, {len(everything)} jobs "
              f"({', '.join(f'{v} {k}' for k, v in counts)})")
        print(f"after the last next job: {max(ends) - last_next} s (the final level and the "
              "unwinding of the nested levels)")
        deepest = found[names[-1]] if names else None
        if deepest is not None and deepest is not found["top"]:
            done = [j.end for j in deepest.jobs.values() if j.end is not None]
            if done:
                tail = max(ends) - max(done)
                print(f"unwinding: {tail} s from the deepest level's last job to the top "
                      f"level's last ({len(names)} nested levels)")
    if walls:
        print(f"per cycle: mean {sum(walls) / len(walls):.0f} s, min {min(walls)} s, "
              f"max {max(walls)} s over {len(walls)} cycle(s)")
    return 0


def run(cycles: int) -> Path:
    """tests/poolkit's tiny run with ``cycles`` major cycles, planned and submitted as the
    pool's user and waited for; its top submit directory."""
    import time

    import yaml

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import poolkit

    why = poolkit.why_not()
    if why:
        raise SystemExit(f"pool_cycle: {why}")
    venv, ws = poolkit.user_venv(), poolkit.workspace("htclean-pool-cycle")
    cfg = poolkit.write_config(ws, ws / "obs.ms", request_cpus=1)
    settings = yaml.safe_load(cfg.read_text())
    # no threshold reached before CYCLES cycles: the loop stops at max_cycles
    settings["deconvolution"].update(niter=3000, gain=0.1, mgain=0.5, auto_threshold=0.5,
                                     max_cycles=cycles)
    cfg.write_text(yaml.safe_dump(settings))
    poolkit.give_to_user(cfg)
    t0, load0 = time.monotonic(), os.getloadavg()
    job = poolkit.Run(ws, venv, "cycles")
    state = job.wait()
    print(f"workflow: {'Success' if state == 0 else 'FAILED'} in {time.monotonic() - t0:.0f} s "
          f"(plan and submit included); load average {load0[0]:.1f} at the start, "
          f"{os.getloadavg()[1]:.1f} over the last 5 minutes at the end")
    return job.submit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("submit", type=Path, nargs="?", help="the top level's submit directory")
    parser.add_argument("--run", type=int, metavar="CYCLES",
                        help="plan, submit and wait for tests/poolkit's tiny run of CYCLES "
                        "major cycles first (as root, on the test pool)")
    parser.add_argument("--detail", action="store_true",
                        help="each serial-path job's wait+queue/run/post seconds")
    args = parser.parse_args(argv)
    if args.run is not None:
        args.submit = run(args.run)
        args.detail = True
    if args.submit is None:
        parser.error("give a submit directory or --run CYCLES")
    if not (args.submit / "jobstate.log").is_file():
        print(f"pool_cycle: {args.submit} holds no jobstate.log", file=sys.stderr)
        return 2
    return report(args.submit, args.detail)


if __name__ == "__main__":
    sys.exit(main())

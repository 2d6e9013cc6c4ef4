"""How a spectral-line cube's jobs grow with its output channels on a real HTCondor pool, and
how many of them run at once.

    sudo python benchmarks/pool_cube.py [--channels 2 4 8] [--parts 1] [--cpus 1]
    python benchmarks/pool_cube.py --report SUBMIT_DIR [SUBMIT_DIR ...]

Without ``--report``: on the test pool (tests/poolkit; as root, submitting as htcuser), one
tiny observation of max(N) channels (tests/poolkit's array and sky: 10 antennas, 16 times,
720 rows), then for each N, one after the other (so that the concurrency figure belongs to one
cube): a cube of N output channels (``image.mode: cube``, width 1, 64 x 64, ``--parts`` parts,
1 major cycle, ``--cpus`` CPUs per compute job) planned for site condor, submitted, waited for
and measured. Each run prints:

- jobs: the DAGMan nodes of every level (top and each channel's sub-workflows), the htclean
  jobs among them by type, and per output channel;
- wall: from the first job's start to the last job's end in the jobstate logs (and the whole
  plan + submit + wait);
- levels: the workflow levels (top + sub-workflows);
- peak at once: the most htclean jobs between EXECUTE and JOB_TERMINATED at the same second,
  over all levels; of them on pool slots (vanilla universe) and in the local universe (next,
  the cube job: on the submit host, no slot); and the mean number of pool jobs running over
  the wall time (their run seconds / wall).

Then one table of all N. The figures come from each level's ``jobstate.log`` and the jobs'
``.sub`` files (for the universe).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

import pool_cycle
from pool_cycle import HTCLEAN, Level


def level_dirs(submit: Path) -> list[Path]:
    """The directories of every level under ``submit`` (the top first)."""
    return [submit, *sorted(p.parent for p in submit.rglob("jobstate.log")
                            if p.parent != submit)]


def universes(level: Path, others: set[Path]) -> dict[str, str]:
    """Each job's HTCondor universe, from the ``.sub`` files of this level (not of the levels
    nested under it)."""
    out = {}
    for sub in level.rglob("*.sub"):
        if any(o in sub.parents for o in others):
            continue
        m = re.search(r"^\s*universe\s*=\s*(\w+)", sub.read_text(errors="replace"), re.M)
        if m:
            out[sub.name[:-4]] = m.group(1)
    return out


def peak(spans: list[tuple[int, int]]) -> int:
    """The most spans (start, end) open at once; a span ending at t and one starting at t do
    not overlap."""
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans],
                    key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def measure(submit: Path) -> dict:
    dirs = level_dirs(submit)
    levels: list[Level] = [pool_cycle.read_level(d) for d in dirs]
    nested = set(dirs[1:])
    nodes, kinds, spans, pool_spans, local_spans = 0, Counter(), [], [], []
    starts, ends = [], []
    for level in levels:
        uni = universes(level.dir, {d for d in nested if d != level.dir
                                    and level.dir in d.parents})
        for name, job in level.jobs.items():
            nodes += 1
            if job.start is not None:
                starts.append(job.start)
            if job.end is not None:
                ends.append(job.end)
            m = HTCLEAN.match(name)
            if not m:
                continue
            kinds[m.group(1)] += 1
            ex, term = job.at("EXECUTE"), job.at("JOB_TERMINATED")
            if ex is None or term is None:
                continue
            spans.append((ex, term))
            (local_spans if uni.get(name) in ("local", "scheduler") else pool_spans).append(
                (ex, term))
    wall = max(ends) - min(starts) if starts and ends else 0
    names = {re.sub(r"\.\d+$", "", d.name) for d in dirs[1:]}
    return {"nodes": nodes, "htclean": sum(kinds.values()), "kinds": dict(kinds),
            "levels": 1 + len(names), "wall_s": wall, "peak": peak(spans),
            "peak_pool": peak(pool_spans), "peak_local": peak(local_spans),
            "pool_busy": sum(b - a for a, b in pool_spans) / wall if wall else 0.0}


def row(n: int | None, m: dict, total_s: float | None = None) -> str:
    per = f"{m['nodes'] / n:.1f} / {m['htclean'] / n:.1f}" if n else "-"
    total = f" ({total_s:.0f})" if total_s is not None else ""
    return (f"| {n if n else '?'} | {m['nodes']} | {m['htclean']} | {per} | {m['levels']} | "
            f"{m['wall_s']}{total} | {m['peak']} ({m['peak_pool']} pool, {m['peak_local']} "
            f"local) | {m['pool_busy']:.2f} |")


HEADER = ("| channels | DAGMan nodes | htclean jobs | per channel (nodes / htclean) | levels | "
          "wall s (plan+submit+wait) | peak htclean jobs at once | mean pool jobs running |\n"
          "|---|---|---|---|---|---|---|---|")


def report(n: int | None, submit: Path, total_s: float | None = None) -> str:
    m = measure(submit)
    print(f"{submit}: {n or '?'} channels: {m['nodes']} DAGMan nodes over {m['levels']} levels, "
          f"htclean jobs {m['htclean']} ("
          + ", ".join(f"{v} {k}" for k, v in sorted(m["kinds"].items(), key=lambda kv: -kv[1]))
          + f"); wall {m['wall_s']} s; at once: {m['peak']} htclean jobs at most "
          f"({m['peak_pool']} on pool slots, {m['peak_local']} local universe), "
          f"{m['pool_busy']:.2f} pool jobs running on average", flush=True)
    return row(n, m, total_s)


def run_all(channels: list[int], parts: int, cpus: int) -> list[str]:
    import yaml

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import poolkit
    import tinyms

    why = poolkit.why_not()
    if why:
        raise SystemExit(f"pool_cube: {why}")
    venv, ws = poolkit.user_venv(), poolkit.workspace("htclean-pool-cube")
    ms = ws / "cube.ms"
    tinyms.write_ms(str(ms), tinyms.TinyObs(nant=10, ntime=16, nchan=max(channels),
                                            noise=0.02, sources=poolkit.SOURCES))
    rows = []
    for n in channels:
        cfg = poolkit.write_config(ws, ms, name=f"config-{n}.yml", cube=True,
                                   request_cpus=cpus)
        settings = yaml.safe_load(cfg.read_text())
        settings["image"].update(start=0, nchan=n, width=1)
        settings["partition"]["parts"] = parts
        cfg.write_text(yaml.safe_dump(settings))
        poolkit.give_to_user(ws)
        load0, t0 = os.getloadavg(), time.monotonic()
        job = poolkit.Run(ws, venv, f"cube{n}", config=cfg.name)
        state = job.wait()
        total = time.monotonic() - t0
        print(f"cube of {n} channels: {'Success' if state == 0 else 'FAILED'} in {total:.0f} s "
              f"(plan, submit and wait); load average {load0[0]:.1f} at the start, "
              f"{os.getloadavg()[1]:.1f} over the last 5 minutes at the end", flush=True)
        rows.append(report(n, job.submit, total))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[2, 4, 8],
                        help="output channels of each cube (default 2 4 8)")
    parser.add_argument("--parts", type=int, default=1, help="parts per channel (default 1)")
    parser.add_argument("--cpus", type=int, default=1,
                        help="execution.request_cpus of each compute job (default 1)")
    parser.add_argument("--report", type=Path, nargs="+", metavar="SUBMIT_DIR",
                        help="only measure these finished runs' top submit directories")
    args = parser.parse_args(argv)
    if args.report:
        rows = []
        for submit in args.report:
            if not (submit / "jobstate.log").is_file():
                print(f"pool_cube: {submit} holds no jobstate.log", file=sys.stderr)
                return 2
            n = len({m.group(1) for p in submit.rglob("jobstate.log")
                     if (m := re.search(r"ch(\d{4})-cycle-", p.parent.name))}) or None
            rows.append(report(n, submit))
    else:
        rows = run_all(args.channels, args.parts, args.cpus)
    print()
    print(HEADER)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

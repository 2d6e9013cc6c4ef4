"""How long ``htclean plan`` takes for 1000 parts, and how big its YAML files are.

    python benchmarks/plan_1000_parts.py [--parts 1000] [--site ospool] [--weighting briggs]
        [--fan-in 8] [--repeat 3] [--keep DIR]

The MS is a remote one (an osdf:// tar of 2 TB, ``data.size``/``data.rows``), so nothing is
read or tarred and the figures are the generators' own. Prints, best of --repeat: the wall
time of ``plan`` (goal: < 10 s for 1000 parts), the size of every file it writes, the jobs
of the top level, and the time and size of a cycle workflow and the final workflow as the
``next`` job builds and writes them (graph.cycle_workflow / final_workflow + serialize).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

from htclean.workflows import config, graph, serialize
from htclean.workflows.context import RunContext
from htclean.workflows.plan import plan


def write_config(path: Path, args: argparse.Namespace) -> None:
    raw = {"data": {"ms": "osdf:///ospool/ap40/data/user/field.ms.tar", "size": "2TB",
                    "rows": 100_000_000},
           "image": {"size": 4096, "scale": "0.5asec"},
           "weighting": {"type": args.weighting},
           "partition": {"parts": args.parts, "fan_in": args.fan_in},
           "gridder": {"device": "gpu"},
           "execution": {"site": args.site, "project": "Bench", "request_memory": "16GB",
                         "staging": "osdf:///ospool/ap40/data/user/staging"},
           "output": {"run_id": "bench-20260101T000000"}}
    path.write_text(yaml.safe_dump(raw))


def best_of(repeat: int, fn):
    """(best wall seconds, last result) of ``repeat`` calls."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def kb(n: int) -> str:
    return f"{n / 1e3:10.1f} kB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", type=int, default=1000)
    parser.add_argument("--site", default="ospool", choices=("condor", "ospool", "path"))
    parser.add_argument("--weighting", default="briggs", choices=("natural", "uniform", "briggs"))
    parser.add_argument("--fan-in", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the plan here and keep it")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="htclean-bench-"))
    cfg = work / "bench.yml"
    write_config(cfg, args)
    out = args.keep or work / "plan"
    seconds, result = best_of(args.repeat, lambda: plan(cfg, out, force=True))
    print(f"htclean plan, {args.parts} parts, site {args.site}, {args.weighting} weighting, "
          f"fan-in {args.fan_in}: {seconds:.2f} s (best of {args.repeat}; goal < 10 s)")
    for name, path in result.files.items():
        print(f"  {name:22s} {kb(path.stat().st_size)}")
    top = yaml.load(result.files["workflow.yml"].read_text(),
                    Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    counts = Counter(j["id"].rsplit("-", 1)[0] if j["id"].startswith(("grid", "weights"))
                     else j["id"].split("-g")[0] for j in top["jobs"])
    listing = ", ".join(f"{k} {v}" for k, v in counts.items())
    print(f"  top-level jobs: {len(top['jobs'])} ({listing})")

    resolved = config.read_yaml(result.files["config.yml"])
    ctx = RunContext.from_config(resolved, config.parse(resolved))
    for label, build in (("cycle-02 workflow", lambda: graph.cycle_workflow(ctx, 2)[0]),
                         ("final workflow", lambda: graph.final_workflow(ctx, 2)[0])):
        seconds, text = best_of(args.repeat, lambda build=build: serialize.to_yaml(build()))
        print(f"next: {label:18s} {seconds:6.2f} s to build and serialise, "
              f"{kb(len(text.encode()))}")
    print(f"plan directory: {result.out_dir}")


if __name__ == "__main__":
    main()

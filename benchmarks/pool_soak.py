"""A soak on the real test pool: the same workflow run N times in a row, each with a fault
drawn at random from tests/poolfaults.py (a seed per run, as HTCLEAN_FAULTS does for the
embedded engine), every image checked bit for bit against the undisturbed one.

    sudo python benchmarks/pool_soak.py [--runs 10] [--seed 0] [--workflow demo|tiny]
                                        [--faults evict,transfer,...]

``demo``: the demo's observation and settings (``htclean demo``: VLA D, 3 h, Briggs, Hogbom,
2 parts, ~5 major cycles; ~17 minutes a run on the idle test pool); ``tiny``: the pool tests'
run (720 rows, 64 x 64, 2 parts, here 2 cycles; ~5 minutes). Both with
``gridder.threads: 1``, which makes runs bit-identical. The reference is the embedded
engine's image of the same configuration. A fault aims at a job or level also drawn: the
level cycle-01 or cycle-02 (demo) or cycle-01 (tiny), and in it the residual jobs of the next
cycle (a level holds next-cKK and cycle K+1's residual jobs: workflows/graph.py).

Prints one line per run, then a table: faults injected per kind, runs that finished with
the reference image, jobs that ran again. Needs root (jobs are submitted as htcuser through
the bundle's run-as-user.sh) and the test pool running; the restart fault waits (bounded)
for the queue to hold no job of another user, and is recorded as not injected otherwise.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import poolfaults  # noqa: E402
import poolkit  # noqa: E402

from htclean.imaging.fits import read_fits  # noqa: E402


def demo_config(ws: Path) -> Path:
    """The demo's observation (simulated into ``ws``) and configuration for site condor."""
    from htclean.imaging.simulation.simulate import SimulationSpec, simulate
    from htclean.workflows.commands import demo

    truth = simulate(str(ws / "demo.ms"), SimulationSpec.demo(), force=True)
    cfg = yaml.safe_load(demo.demo_config(truth, 1))
    cfg["data"]["ms"] = str(ws / "demo.ms")
    cfg["gridder"] = {"threads": 1}
    cfg["execution"] = {"request_memory": "1GB", "request_cpus": 1, "retries": 1,
                        "container": None}
    cfg["output"] = {"run_id": "soak"}
    path = ws / "config.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def target(kind: str, rng: random.Random, cycles: int) -> str:
    """The job (or level) a fault of ``kind`` aims at: level cycle-KK (K < ``cycles``, so
    that it holds residual jobs, those of cycle K+1) or a job in it."""
    k = rng.randint(1, cycles - 1)
    if kind == "next":
        return f"next-c{rng.randint(0, cycles - 1):02d}"
    if kind in ("dagman", "staging", "restart"):
        return f"cycle-{k:02d}"
    return f"residual-c{k + 1:02d}-p{rng.randint(0, 1):03d}"


def one_run(ws: Path, venv: Path, i: int, kind: str, aim: str, reference: np.ndarray) -> dict:
    key = f"run-{i:02d}-{kind}"
    mount = poolfaults.mount_staging if kind == "staging" else None
    t0 = time.monotonic()
    run = poolkit.Run(ws, venv, key, before_submit=mount)
    fault = poolfaults.Fault(kind, run, aim, mine=[ws]).start().join()
    if kind == "staging":
        poolfaults.unmount_staging(run)
    image = run.out / "outputs" / f"{poolkit.NAME}-image.fits"
    same = image.exists() and np.array_equal(read_fits(image)[0], reference)
    again = {j: n for j, n in poolfaults.reruns(run).items() if "/htclean-" in j}
    return {"run": i, "kind": kind, "target": aim, "injected": bool(fault.notes.get("injected")),
            "finished": fault.state == 0 and same, "rerun": again,
            "wall": time.monotonic() - t0, "why": fault.error or fault.notes.get("why", "")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workflow", choices=("demo", "tiny"), default="demo")
    parser.add_argument("--faults", default=",".join(poolfaults.KINDS))
    args = parser.parse_args(argv)
    why = poolkit.why_not()
    if why:
        print(f"pool_soak: {why}", file=sys.stderr)
        return 2
    print(f"pool settings: {poolfaults.tune_pool()}", flush=True)
    kinds = [k for k in args.faults.split(",") if k != "staging" or poolfaults.can_mount()]
    venv, ws = poolkit.user_venv(), poolkit.workspace("htclean-pool-soak")
    if args.workflow == "demo":
        cfg, cycles = demo_config(ws), 3
    else:
        cfg, cycles = poolkit.write_config(ws, ws / "obs.ms", run_id="soak", cycles=2), 2
    poolkit.give_to_user(ws)
    subprocess.run([str(venv / "htclean"), "run", str(cfg), "-o", str(ws / "engine")],
                   check=True, capture_output=True)
    reference = read_fits(ws / "engine" / "outputs" / f"{poolkit.NAME}-image.fits")[0]
    print(f"soak: {args.runs} {args.workflow} runs in {ws}, seed {args.seed}", flush=True)
    results = []
    for i in range(args.runs):
        rng = random.Random(args.seed * 1000 + i)
        kind = rng.choice(kinds)
        res = one_run(ws, venv, i, kind, target(kind, rng, cycles), reference)
        results.append(res)
        print(f"run {i:2d}  {kind:8s} {res['target']:18s} injected={res['injected']!s:5s} "
              f"finished={res['finished']!s:5s} {res['wall']:5.0f} s  rerun={res['rerun']} "
              f"{res['why']}", flush=True)
        print(table(results), flush=True)  # so far: a soak cut short still has its table
    return 0 if all(r["finished"] for r in results) else 1


def table(results: list[dict]) -> str:
    """The soak's summary as a Markdown table."""
    injected = Counter(r["kind"] for r in results if r["injected"])
    drawn = Counter(r["kind"] for r in results)
    rows = ["| fault | drawn | injected | finished, same image | htclean jobs run again |",
            "|---|---|---|---|---|"]
    for kind in poolfaults.KINDS:
        if drawn[kind]:
            mine = [r for r in results if r["kind"] == kind]
            rows.append(f"| {kind} | {drawn[kind]} | {injected[kind]} | "
                        f"{sum(r['finished'] for r in mine)} | "
                        f"{sum(n - 1 for r in mine for n in r['rerun'].values())} |")
    rows.append(f"| all | {len(results)} | {sum(injected.values())} | "
                f"{sum(r['finished'] for r in results)} | "
                f"{sum(n - 1 for r in results for n in r['rerun'].values())} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())

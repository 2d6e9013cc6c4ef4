"""Requests sized to the job: the plan's request_memory against each job's measured peak.

Simulates a few observations (``htclean simulate``), runs ``htclean run`` on each (one job at
a time, every job a fresh process as on a pool: HTCLEAN_FORKSERVER=0, unless --forkserver),
then regenerates every level's workflow with the current code (workflows/requests.py via
profiles.py: the same requests a pool plan writes) and prints, per case and job type, the
job with the smallest request_memory / measured ``max_rss_mb`` (its peak, request and
ratio), the range of the type's requests and its request_cpus.
Every ratio must be above 1: an estimate below a measured peak is a bug.

    python benchmarks/request_sizes.py [--cases demo,1k,...] [--work DIR] [--forkserver]

Cases (all Briggs 0, Hogbom unless said, 2 major cycles; kept small for a shared machine):

    demo      512^2,  VLA D 3 h x 600 s, 4 ch: tiny data, 2 parts (no gather job)
    1k        1024^2, 3 h x 60 s, 16 ch (2 M vis), 4 parts, fan_in 2
    2k        2048^2, 4 h x 30 s, 16 ch (5 M vis), 6 parts, fan_in 3
    bigpart   512^2,  3 h x 10 s, 64 ch (49 M vis), 2 parts of ~150 MB
    1k-nt2    the 1k data, nterms 2
    1k-dbl    the 1k data, gridder.epsilon 1e-7 (double precision)
    1k-ms     the 1k data, multiscale (scales 0, 4, 16)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

HTCLEAN = [sys.executable, "-m", "htclean.workflows.cli"]
CELL = "9asec"
DATA = {  # name: htclean simulate options
    "demo": ["--nchan", "4", "--integration", "600s", "--duration", "3h"],
    "1k": ["--nchan", "16", "--integration", "60s", "--duration", "3h"],
    "2k": ["--nchan", "16", "--integration", "30s", "--duration", "4h"],
    "bigpart": ["--nchan", "64", "--integration", "10s", "--duration", "3h"],
}
CASES = {  # name: (data, image size, configuration overrides)
    "demo": ("demo", 512, {"partition": {"parts": 2}}),
    "1k": ("1k", 1024, {"partition": {"parts": 4, "fan_in": 2}}),
    "2k": ("2k", 2048, {"partition": {"parts": 6, "fan_in": 3}}),
    "bigpart": ("bigpart", 512, {"partition": {"parts": 2}}),
    "1k-nt2": ("1k", 1024, {"partition": {"parts": 4, "fan_in": 2},
                            "deconvolution": {"nterms": 2}}),
    "1k-dbl": ("1k", 1024, {"partition": {"parts": 4, "fan_in": 2},
                            "gridder": {"epsilon": 1e-7}}),
    "1k-ms": ("1k", 1024, {"partition": {"parts": 4, "fan_in": 2},
                           "deconvolution": {"algorithm": "multiscale"}}),
}
RUN_ID = "rq"
TYPES = ("partition", "weights", "grid", "gather", "deconvolve", "residual", "next", "restore")


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def simulate(work: Path, data: str) -> Path:
    ms = work / f"{data}.ms"
    if not (ms / "table.dat").is_file():
        subprocess.run([*HTCLEAN, "simulate", str(ms), "--cell", CELL, *DATA[data], "--force"],
                       check=True, capture_output=True)
    return ms


def config(work: Path, case: str) -> Path:
    data, size, extra = CASES[case]
    cfg = merge({"data": {"ms": str(simulate(work, data))},
                 "image": {"name": "img", "size": size, "scale": CELL},
                 "weighting": {"type": "briggs", "robust": 0.0},
                 "deconvolution": {"niter": 100000, "mgain": 0.8, "threshold": "1uJy",
                                   "max_cycles": 2},
                 "execution": {"request_memory": "8GB", "request_cpus": 2, "retries": 0},
                 "output": {"run_id": RUN_ID}}, extra)
    path = work / f"{case}.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(work: Path, case: str, forkserver: bool) -> Path:
    out = work / f"run-{case}{'-fork' if forkserver else ''}"
    if not (out / "outputs" / f"{RUN_ID}-restore.record.json").is_file():
        env = {**os.environ, "HTCLEAN_FORKSERVER": "1" if forkserver else "0"}
        subprocess.run([*HTCLEAN, "run", str(config(work, case)), "-o", str(out), "--jobs",
                        "1", "--force"], check=True, capture_output=True, env=env)
    return out


def measured(out: Path) -> dict[str, float]:
    """max_rss_mb by job id, from the run's records."""
    peaks = {}
    for path in (out / "outputs").glob(f"{RUN_ID}-*.record.json"):
        record = json.loads(path.read_text())
        peaks[record["job"]] = max(peaks.get(record["job"], 0.0), float(record["max_rss_mb"]))
    return peaks


def requested(out: Path) -> dict[str, tuple[int, int]]:
    """(request_cpus, request_memory) by job id, every level regenerated with this code as
    a pool plan writes them (site condor), with the run's measured part sizes."""
    from htclean.workflows import config as cfg
    from htclean.workflows import graph, serialize
    from htclean.workflows.context import RunContext
    from htclean.workflows.plan import plan

    jobs = []
    with tempfile.TemporaryDirectory() as tmp:
        result = plan(out / "config.yml", Path(tmp) / "plan", site="condor")
        jobs += yaml.safe_load(result.files["workflow.yml"].read_text())["jobs"]
        resolved = cfg.read_yaml(Path(tmp) / "plan" / "config.yml")
    manifest = json.loads((out / "outputs" / f"{RUN_ID}-partitions.json").read_text())
    sizes = {p["file"]: int(p["bytes"]) for p in manifest["parts"]}
    ctx = RunContext.from_config(resolved, cfg.parse(resolved), sizes)
    cycles = len(list((out / "outputs").glob(f"{RUN_ID}-deconvolve-c*.record.json")))
    levels = [graph.cycle_workflow(ctx, k)[0] for k in range(1, cycles + 1)]
    levels.append(graph.final_workflow(ctx, cycles)[0])
    for wf in levels:
        jobs += serialize.as_dict(wf)["jobs"]
    return {j["id"]: (int(j["profiles"]["condor"]["request_cpus"]),
                      int(j["profiles"]["condor"]["request_memory"]))
            for j in jobs if j["type"] == "job"}


def job_type(job_id: str) -> str:
    return re.split(r"-", job_id, maxsplit=1)[0]


def table(case: str, peaks: dict[str, float], asks: dict[str, tuple[int, int]]) -> list[str]:
    rows = []
    for kind in TYPES:
        ids = [j for j in peaks if job_type(j) == kind and j in asks]
        if not ids:
            continue
        worst = min(ids, key=lambda j: asks[j][1] / peaks[j])
        low, high = min(asks[j][1] for j in ids), max(asks[j][1] for j in ids)
        rows.append(f"{case:8s} {kind:10s} {len(ids):4d} {peaks[worst]:9.0f} "
                    f"{asks[worst][1]:9d} {asks[worst][1] / peaks[worst]:6.2f} "
                    f"{low if low == high else f'{low}-{high}':>11} "
                    f"{'/'.join(sorted({str(asks[j][0]) for j in ids})):>5s}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument("--work", default=None, help="keep MSs and runs here (reused)")
    parser.add_argument("--forkserver", action="store_true",
                        help="run the jobs under the local engine's fork server (its default)")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="htclean-requests-")).absolute()
    work.mkdir(parents=True, exist_ok=True)
    print(f"{'case':8s} {'job type':10s} {'jobs':>4s} {'peak MB':>9s} {'asks MB':>9s} "
          f"{'ratio':>6s} {'all ask MB':>11s} {'cpus':>5s}")
    below = 0
    for case in args.cases.split(","):
        out = run(work, case, args.forkserver)
        peaks, asks = measured(out), requested(out)
        below += sum(asks[j][1] < peaks[j] for j in peaks if j in asks)
        print("\n".join(table(case, peaks, asks)), flush=True)
    print(f"(peak, asks, ratio: max_rss_mb, request_memory and their ratio of the type's job "
          f"with the smallest ratio; all ask: the type's requests; {below} job(s) below)")
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())

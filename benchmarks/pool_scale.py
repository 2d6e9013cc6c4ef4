"""A rehearsal at scale on the real test pool: N parts, exactly C major cycles, measured.

    sudo python benchmarks/pool_scale.py --parts 128 --cycles 5 [--pool-file FILE]
    python benchmarks/pool_scale.py --report SUBMIT_DIR --parts N --cycles C [...]

Simulates a small VLA observation (``htclean simulate``: one channel, one timestamp every
30 s, enough timestamps that every part holds whole ones), writes a configuration of N parts,
a 64 x 64 image and a loop that runs exactly C major cycles (no threshold, niter out of
reach, max_cycles C), plans it for site condor and submits it as htcuser (``tests/poolkit``),
waits, and prints from the pool's own records (``pool_records.measure``): the planning time
of every level; jobs and jobs per minute; per cycle the wall time split into queue waits
(SUBMIT to EXECUTE on the serial path: negotiation), htclean's work, Pegasus's own jobs,
planning, the DAGMan start and the rest of the bookkeeping; each cycle's serial path;
``next``'s time and peak memory on the submit host (its record and kickstart's); the bytes
HTCondor transferred through the access point per cycle; the share of the wall time in which
an htclean job ran. Then the campaign model's prediction (``htclean model``) of the same
configuration on the pool file (default ``testpool-ospool``, the OSPool-like profile,
with the negotiation interval the pool reports), beside the measurement, with the ratio.

Each job of the tiny run takes seconds, mostly Python start-up: what is measured is the
orchestration. Apply the profile first (``benchmarks/pool/ospool_like.sh apply``) for an
OSPool-like rehearsal; on the default pool it measures the default pool. ``--save FILE``
writes the figures as JSON (the campaign model's test reads such a file).
"""

from __future__ import annotations

import argparse
import gzip
import json
import shlex
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import pool_records  # noqa: E402
import poolkit  # noqa: E402

NAME = "scale"
INTEGRATION_S = 30


def observation(ws: Path, parts: int, venv: Path) -> Path:
    """A one-channel VLA D observation with at least 2 x ``parts`` timestamps."""
    hours = max(1.0, 2 * parts * INTEGRATION_S / 3600)
    ms = ws / "obs.ms"
    subprocess.run([str(venv / "htclean"), "simulate", str(ms), "--duration", f"{hours:g}h",
                    "--integration", f"{INTEGRATION_S}s", "--nchan", "1", "--force"],
                   check=True, capture_output=True, text=True)
    return ms


def write_config(ws: Path, ms: Path, parts: int, cycles: int, run_id: str) -> Path:
    """N parts, 64 x 64, exactly ``cycles`` major cycles, 1-CPU jobs, no container."""
    cfg = {"data": {"ms": str(ms)},
           "image": {"name": NAME, "size": 64, "scale": "20asec"},
           "gridder": {"device": "cpu", "threads": 1},
           "deconvolution": {"niter": 1000000, "gain": 0.1, "mgain": 0.5, "threshold": "0Jy",
                             "auto_threshold": None, "max_cycles": cycles,
                             "divergence": 1000.0},
           "partition": {"parts": parts, "axis": "time"},
           "execution": {"request_cpus": 1, "request_memory": "1GB", "retries": 1,
                         "container": None},
           "output": {"run_id": run_id}}
    path = ws / "config.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def no_worker_package(out: Path) -> None:
    """Jobs use the pool's own Pegasus install instead of the worker package Pegasus ships
    with every job of a PegasusLite site (each job untars its 19 MB: 3-4 CPU s, mostly the
    kernel's, on the machine that stands for all the pool's execute nodes). An env profile
    PEGASUS_HOME on the sites is what makes pegasus-plan leave the package out."""
    sites = yaml.safe_load((out / "sites.yml").read_text())
    for site in sites["sites"]:
        site.setdefault("profiles", {}).setdefault("env", {})["PEGASUS_HOME"] = \
            str(poolkit.TESTPOOL / "pegasus")
    (out / "sites.yml").write_text(yaml.safe_dump(sites, sort_keys=False))


def submit(parts: int, cycles: int, timeout: float,
           worker_package: bool = True) -> tuple[Path, Path, Path, dict]:
    """Simulate, configure, plan and submit as htcuser, wait. Returns (config, submit dir,
    outputs dir, {htclean plan: s, pegasus-plan of the top level: s, state})."""
    venv = poolkit.user_venv()
    ws = poolkit.TESTPOOL / "home" / poolkit.USER / "htclean-pool-scale" / \
        f"{parts}x{cycles}-{time.strftime('%Y%m%dT%H%M%S')}"
    ws.mkdir(parents=True)
    ms = observation(ws, parts, venv)
    config = write_config(ws, ms, parts, cycles, f"s{parts}x{cycles}")
    poolkit.give_to_user(ws.parent, ws)
    out = ws / "run"
    t = time.monotonic()
    text = poolkit.checked(poolkit.as_user(f"htclean plan {config} -o {out} --site condor",
                                           path=venv, timeout=600)).strip().splitlines()
    timing = {"htclean_plan_s": time.monotonic() - t}
    line = text[-1].strip()
    if not worker_package:
        no_worker_package(out)
    run_id = text[0].split()[2].rstrip(":")
    t = time.monotonic()
    poolkit.checked(poolkit.as_user(line, path=venv, timeout=900))
    timing["top_pegasus_plan_s"] = time.monotonic() - t
    sub = out / "submit" / run_id
    print(f"pool_scale: submitted {sub}", flush=True)
    proc = poolkit.as_user(f"{poolkit.TESTPOOL}/wait-wf.sh {shlex.quote(str(sub))} "
                           f"{int(timeout)}", timeout=timeout + 120)
    timing["state"] = {0: "Success", 1: "Failure"}.get(proc.returncode, "timeout")
    return config, sub, out / "outputs", timing


def pool_interval() -> float | None:
    """The negotiator's interval on the running pool, as it reads its configuration."""
    proc = poolkit.as_root("condor_config_val -subsystem negotiator NEGOTIATOR_INTERVAL")
    try:
        return float(proc.stdout.strip())
    except ValueError:
        return None


def predict(config: Path, pool_file: str, interval: float | None, parts: int,
            cycles: int, worker_package: bool = True) -> dict:
    """The campaign model's figures for the same configuration and pool."""
    from htclean.workflows.campaign import campaign, htclean_graph, metrics, pool, simulate

    p = pool.load(pool_file)
    if interval:
        p = replace(p, negotiation_interval_s=interval)
    if not worker_package:
        p = replace(p, worker_package_bytes=0.0)
    c = campaign.load(config, parts=parts, cycles=cycles, site="condor")
    nodes = htclean_graph.build(c, p)
    s = metrics.summarise(nodes, simulate.simulate(nodes, p, seed=1))
    return {"pool": p.name, "negotiation_interval_s": p.negotiation_interval_s,
            "wall_s": s.wall_s, "jobs": s.total_jobs, "jobs_per_min": s.jobs_per_min,
            "processing_share": s.processing_share,
            "cycle_s": [c.loop_s for c in s.cycles if 1 <= c.cycle <= cycles],
            "ap_bytes": s.ap_bytes, "data_bytes": c.data_bytes,
            "visibilities": c.visibilities}


def write_fixture(path: Path, sub: Path, config: Path, args: argparse.Namespace,
                  interval: float | None, model: dict) -> None:
    """A recorded run for tests/test_campaign_model.py: its configuration (the MS given by
    its size), pool parameters and every level's trimmed jobstate.log."""
    cfg = yaml.safe_load(config.read_text())
    cfg["data"]["ms"] = "/recorded/obs.ms"
    cfg.pop("output", None)
    fixture = {"parts": args.parts, "cycles": args.cycles, "pool": model["pool"],
               "negotiation_interval_s": interval,
               "worker_package": not args.no_worker_package,
               "data_bytes": model["data_bytes"], "visibilities": model["visibilities"],
               "config": cfg, "jobstate": pool_records.jobstate_lines(sub)}
    with gzip.open(path, "wt") as f:
        json.dump(fixture, f, separators=(",", ":"))


def mb(b: float) -> str:
    return f"{b / 1e6:.1f} MB"


def show(m: dict, model: dict | None, timing: dict) -> None:
    """Print the measured tables (and the model beside them)."""
    if timing:
        print(f"state: {timing.get('state')}; htclean plan {timing['htclean_plan_s']:.1f} s, "
              f"pegasus-plan of the top level (and submit) {timing['top_pegasus_plan_s']:.1f} s")
    plans = ", ".join(f"{k} {v} s" for k, v in sorted(m["planning_s"].items()))
    print(f"planning per level (each sub-workflow's PRE script): {plans}")
    kinds = ", ".join(f"{v} {k}" for k, v in sorted(m["jobs_by_kind"].items(),
                                                     key=lambda kv: -kv[1]))
    print(f"run: {m['wall_s']} s wall (top DAGMan start to end), {m['jobs']} jobs ({kinds}), "
          f"{m['jobs_per_min']:.1f} jobs/min")
    print(f"processing: an htclean job ran during {m['processing_s']:.0f} s, "
          f"{100 * m['processing_share']:.0f} % of the wall time")
    print(f"bytes through the access point (HTCondor transfers): top level "
          f"{mb(m['ap_bytes_top'])}, all {mb(m['ap_bytes'])}")
    print("| cycle | wall | planning | DAGMan start | queue waits | htclean | Pegasus jobs | "
          "bookkeeping | jobs | bytes via AP | serial path |")
    print("| --- | " + "--- | " * 10)
    for c in m["cycles"]:
        print(f"| {c['cycle']} | {c['wall_s']} s | {c['planning_s']} s | "
              f"{c['dagman_start_s']} s | {c['queue_wait_s']} s | {c['htclean_s']} s | "
              f"{c['pegasus_jobs_s']} s | {c['bookkeeping_s']} s | {c['jobs']} | "
              f"{mb(c['ap_bytes'])} | {' > '.join(c['serial_path'])} |")
    print("| cycle | parallel jobs | DAGMan submitting them | queue wait median / max | "
          "first start to last end |")
    print("| --- | --- | --- | --- | --- |")
    for c in m["cycles"]:
        w = c["widest"]
        if "submit_span_s" in w:
            print(f"| {c['cycle']} | {w['jobs']} | {w['submit_span_s']} s | "
                  f"{w['wait_median_s']} / {w['wait_max_s']} s | {w['run_span_s']} s |")
    print("| next job | record wall | record CPU | record peak RSS | executable (kickstart) | "
          "its max RSS |")
    print("| --- | --- | --- | --- | --- | --- |")
    for job, r in sorted(m["next"].items()):
        print(f"| {job} | {r['wall_s'] or 0:.2f} s | {r['cpu_s'] or 0:.2f} s | "
              f"{r['max_rss_mb'] or 0:.0f} MB | {r['exe_s'] or 0:.2f} s | "
              f"{r['exe_maxrss_mb'] or 0:.0f} MB |")
    if model:
        cyc = [c["wall_s"] for c in m["cycles"]]
        mean = sum(cyc) / len(cyc) if cyc else float("nan")
        mmean = sum(model["cycle_s"]) / len(model["cycle_s"]) if model["cycle_s"] else 0
        print(f"model ({model['pool']}, negotiation {model['negotiation_interval_s']:g} s) "
              "vs measured:")
        print("| figure | measured | model | model / measured |")
        print("| --- | --- | --- | --- |")
        for label, meas, mod in (("wall", m["wall_s"], model["wall_s"]),
                                 ("mean cycle", mean, mmean),
                                 ("jobs", m["jobs"], model["jobs"]),
                                 ("jobs/min", m["jobs_per_min"], model["jobs_per_min"]),
                                 ("processing share", m["processing_share"],
                                  model["processing_share"])):
            print(f"| {label} | {meas:.3g} | {mod:.3g} | {mod / meas if meas else 0:.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=int, required=True)
    parser.add_argument("--cycles", type=int, required=True)
    parser.add_argument("--pool-file", help="the campaign model's pool file (default "
                        "testpool-ospool where the profile is applied, else testpool)")
    parser.add_argument("--interval", type=float, help="negotiation interval for the model "
                        "(default: what the running pool reports)")
    parser.add_argument("--report", type=Path, metavar="SUBMIT",
                        help="only read an earlier run's submit directory")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--save", type=Path, help="write the figures as JSON")
    parser.add_argument("--fixture", type=Path, help="write the run's trimmed records and "
                        "configuration as gzipped JSON (tests/data: the model's test)")
    parser.add_argument("--no-worker-package", action="store_true",
                        help="jobs use the pool's Pegasus, not the shipped worker package")
    args = parser.parse_args(argv)
    timing: dict = {}
    if args.report:
        if args.save and args.save.exists():  # keep what only the run itself measured
            timing = json.loads(args.save.read_text()).get("timing", {})
        sub = args.report.resolve()
        out = sub.parents[1] / "outputs"
        config = sub.parents[1] / "config.yml"
    else:
        why = poolkit.why_not()
        if why:
            print(f"pool_scale: {why}", file=sys.stderr)
            return 2
        config, sub, out, timing = submit(args.parts, args.cycles, args.timeout,
                                          not args.no_worker_package)
    m = pool_records.measure(sub, out)
    profiled = (poolkit.TESTPOOL / "etc" / "config.d" / "70-ospool-like.conf").exists()
    interval = args.interval or (pool_interval() if profiled else None)
    pool_file = args.pool_file or ("testpool-ospool" if profiled else "testpool")
    model = predict(config, pool_file, interval, args.parts, args.cycles,
                    not args.no_worker_package)
    show(m, model, timing)
    if args.save:
        args.save.write_text(json.dumps({"parts": args.parts, "cycles": args.cycles,
                                         "timing": timing, "measured": m, "model": model},
                                        indent=1, default=str))
    if args.fixture:
        write_fixture(args.fixture, sub, config, args, interval, model)
    return 0 if timing.get("state", "Success") == "Success" else 1


if __name__ == "__main__":
    sys.exit(main())

"""Run the imaging workflow on this machine with the embedded engine (no HTCondor needed).

Plans the run for site local into DIR (as `htclean plan CONFIG -o DIR --site local` does),
then runs exactly that workflow: jobs in dependency order, several at a time, with retries,
each major cycle's sub-workflow when it is reached. Products go to DIR/outputs, the record of
every job attempt to DIR/engine.

With --resume, DIR is not planned again: the run goes on from its record, rerunning only what
did not succeed (after a failure, Ctrl-C or a crash). The configuration must be the one DIR
was planned with.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from htclean.imaging.errors import InputError

HELP = "run the workflow on this machine (the embedded engine); --resume goes on after a stop"
# What plan fills in or overrides; the rest must match for --resume.
PLANNED_KEYS = ("output.run_id", "output.dir", "partition.parts", "partition.max_size",
                "execution.site")
# Left unset in the user's file (this value), plan writes the one it chose.
FILLED_KEYS = {"image.reference_frequency": None, "gridder.threads": 0, "image.nchan": None,
               "output.blank_channels": None}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="the configuration file (YAML)")
    parser.add_argument("-o", "--output", metavar="DIR",
                        help="the run directory (default: output.dir of the configuration)")
    parser.add_argument("--resume", action="store_true",
                        help="go on with the run in DIR: rerun only what did not succeed")
    parser.add_argument("--jobs", type=int, metavar="N",
                        help="jobs at a time (default: execution.jobs; 0 = CPU cores)")
    parser.add_argument("--site", choices=("local",), default="local",
                        help="where jobs run: only local (use htclean plan for a pool)")
    parser.add_argument("--job-timeout", type=float, metavar="SECONDS",
                        help="stop (and retry) a job that runs longer than this (default: none)")
    parser.add_argument("--force", action="store_true",
                        help="replace a plan or run already in DIR (its outputs are deleted)")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changed_keys(current: dict, planned: dict) -> list[str]:
    """Configuration keys whose values differ, ignoring those ``plan`` fills in."""
    a, b = _flat(current), _flat(planned)
    keys = sorted(set(a) | set(b))
    filled = {k for k, unset in FILLED_KEYS.items() if a.get(k) == unset}  # plan chose them
    return [k for k in keys if k not in PLANNED_KEYS and k not in filled
            and json.dumps(a.get(k), sort_keys=True) != json.dumps(b.get(k), sort_keys=True)]


def check_resumable(config_path: str, out: Path) -> None:
    """Refuse --resume when DIR holds no local plan or the configuration has changed."""
    import yaml

    from htclean.workflows import plan

    planned_path = out / "config.yml"
    if not (out / "workflow.yml").is_file() or not planned_path.is_file():
        raise InputError(f"{out}: holds no plan to resume; run without --resume")
    planned = yaml.safe_load(planned_path.read_text()) or {}
    site = (planned.get("execution") or {}).get("site")
    if site != "local":
        raise InputError(f"{out}: was planned for site {site}; the local engine runs only "
                         "plans for site local (htclean run without --resume replans)")
    current, _ = plan.load(config_path, "local")
    changed = changed_keys(current, planned)
    if changed:
        raise InputError(f"{config_path} has changed since {out} was planned "
                         f"({', '.join(changed)}); --resume needs the same configuration: "
                         "undo the change, or start a new run (--force or another -o)")


def _print_products(result, image_name: str, nterms: int = 1,
                    primary_beam: bool = False) -> None:
    from htclean.workflows import names

    found = [result.storage_dir / p for p in names.products(image_name, nterms, primary_beam)
             if (result.storage_dir / p).exists()]
    print(f"done in {result.wall_s:.1f} s ({result.attempts} job attempt(s), "
          f"{result.skipped} already done); outputs in {result.storage_dir}")
    for path in found:
        print(f"  {path}")
    print(f"job statistics and the concurrency plot: htclean report {result.storage_dir.parent}")


def run(args: argparse.Namespace) -> int:
    from htclean.engine.progress import ProgressDisplay
    from htclean.engine.runner import run_workflow
    from htclean.engine.state import has_record
    from htclean.workflows import config

    _, settings = config.load(args.config)
    out = Path(args.output or settings["output"]["dir"]).absolute()
    jobs = args.jobs if args.jobs is not None else settings["execution"]["jobs"]
    if jobs < 0:
        raise InputError(f"--jobs must be >= 0 (0 = CPU cores), got {jobs}")
    if args.resume:
        check_resumable(args.config, out)
    else:
        if has_record(out / "engine") and not args.force:
            raise InputError(f"{out}: already holds a run; add --resume to go on with it, "
                             "--force to start again, or choose another -o")
        from htclean.engine import forkserver
        from htclean.workflows.plan import plan

        forkserver.prestart()  # its imports overlap the planning
        planned = plan(args.config, out, site="local", force=args.force)
        print(f"planned run {planned.run_id}: {planned.parts} part(s) in {out}", file=sys.stderr)
    result = run_workflow(out, jobs=jobs or None, resume=args.resume,
                          progress=ProgressDisplay(sys.stderr),
                          job_timeout=getattr(args, "job_timeout", None))
    if result.exit_code == 0:
        _print_products(result, settings["image"]["name"], settings["deconvolution"]["nterms"],
                        settings["image"]["primary_beam"])
        return 0
    print(f"htclean run: {result.message}", file=sys.stderr)
    print(f"htclean run: the run can be resumed: htclean run {args.config} -o {out} --resume",
          file=sys.stderr)
    return result.exit_code

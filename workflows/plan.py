"""``plan``: a configuration in, a complete plan directory out.

    DIR/workflow.yml          the top-level workflow (graph.top_workflow)
    DIR/sites.yml             site catalog           DIR/transformations.yml   transformations
    DIR/replicas.yml          replica catalog        DIR/pegasus.properties    properties
    DIR/config.yml            the resolved configuration (run id, parts, site, output.dir set)
    DIR/inputs/<ms>.tar       each input MS as one file (where data.ms names an MS directory)
    DIR/bin/htclean-exitcode  the DAGMan POST script (workflows.exitcode)
    DIR/scratch, DIR/outputs  the submit host's scratch and output directories (empty)

The configuration is validated and the MS inspected before anything is written; everything
is written into a temporary directory beside DIR and renamed into place, so DIR never holds
half a plan. An existing plan is replaced only with ``force``.
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from htclean.catalogs import replicas, sites, transformations
from htclean.executables.atomic import write_bytes_atomic
from htclean.imaging.cpus import planned_threads
from htclean.imaging.errors import InputError
from htclean.workflows import config, exitcode, graph, names, properties, serialize
from htclean.workflows.context import RunContext

PLAN_FILES = ("workflow.yml", "sites.yml", "transformations.yml", "replicas.yml",
              "pegasus.properties", "config.yml")


@dataclass(frozen=True)
class PlanResult:
    """What ``plan`` wrote: the plan directory, the run id, the number of parts, the site,
    the plan files by name, and the pegasus-plan command line for a pool."""

    out_dir: Path
    run_id: str
    parts: int
    site: str
    files: dict[str, Path]
    command: str


def inspect_ms(ms: replicas.MSInput, settings: dict) -> tuple[int, int | None]:
    """(size in bytes, rows or None) of the input MS, read at plan time; InputError naming
    data.ms when it is not a whole Measurement Set (or a tar of one) with data to image
    (imaging.ms.mscheck)."""
    from htclean.imaging.ms import mscheck

    data = settings["data"]
    local = ms.source or ms.path
    if local is not None:
        mscheck.check(local, data, settings["partition"]["axis"])
    if ms.source is not None:
        from htclean.imaging.ms import msinfo

        info = msinfo.describe(ms.source)
        return int(info.size_bytes), int(info.rows)
    if ms.path is None:  # a URL: the configuration gives the size
        return int(data["size"]), data["rows"]
    return ms.path.stat().st_size, data["rows"]


def choose_parts(settings: dict, size: int, rows: int | None) -> int:
    """P: partition.parts, else ceil(size / partition.max_size), else 1; at most the rows."""
    part = settings["partition"]
    if part["parts"] is not None:
        p = int(part["parts"])
    elif part["max_size"] is not None:
        p = max(1, math.ceil(size / part["max_size"]))
    else:
        p = 1
    if rows is not None and p > rows:
        from htclean.workflows.partition_check import origin

        raise InputError(f"{origin(settings)} {p} parts but the MS has only {rows} rows")
    return p


def load(config_path: str | os.PathLike, site: str | None) -> tuple[dict, dict]:
    """The validated, resolved configuration with ``execution.site`` overridden by ``site``."""
    raw = config.read_yaml(config_path)
    if site is not None:
        if not isinstance(raw.get("execution", {}), dict):
            raise config.ConfigError("execution", "must be a mapping of keys")
        raw.setdefault("execution", {})["site"] = site
    base = Path(config_path).resolve().parent
    errors = config.validate(raw, base)
    if errors:
        raise errors[0]
    resolved = config.resolve(raw, base)
    return resolved, config.parse(resolved)


def _check_target(out: Path, force: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    if any(out.iterdir()):
        is_plan = (out / "workflow.yml").exists() or (out / "pegasus.properties").exists()
        if not is_plan:
            raise InputError(f"{out}: exists, is not empty and holds no htclean plan; "
                             "choose a new or empty directory")
        if not force:
            raise InputError(f"{out}: already holds a plan; use --force to replace it "
                             "(its outputs are deleted)")


def _install(tmp: Path, out: Path) -> None:
    """Move the finished plan ``tmp`` to ``out``, replacing what is there."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def pegasus_plan_command(ctx: RunContext) -> str:
    """The pegasus-plan line that plans and submits the top level (for a pool). DAGMan's
    settings travel in the workflow (context.DAGMAN_ENV), not in the user's environment."""
    from Pegasus.client._client import get_planner_args

    args = get_planner_args(conf=ctx.out_dir / "pegasus.properties",
                            dir=ctx.out_dir / "submit", submit=True,
                            **graph.planner_args(ctx, top=True))
    return shlex.join(["pegasus-plan", *args, str(ctx.out_dir / "workflow.yml")])


def write_plan(ctx: RunContext, ms: list[replicas.MSInput], where: Path,
               axis=None) -> dict[str, Path]:
    """Write every plan file of ``ctx`` into the directory ``where``; returns them by name
    (a cube's: with its frequency ``axis`` and every output channel's configuration)."""
    files = {name: where / name for name in PLAN_FILES}
    for sub in ("outputs", "scratch"):
        (where / sub).mkdir()
    config.dump(ctx.resolved, files["config.yml"])
    if ctx.cube:
        from htclean.workflows.cube import group_contexts

        for c in group_contexts(ctx):
            config.dump(c.resolved, where / c.config_path.name)
    serialize.write(sites.site_catalog(ctx), files["sites.yml"])
    serialize.write(transformations.transformation_catalog(ctx), files["transformations.yml"])
    serialize.write(replicas.replica_catalog(ctx, ms), files["replicas.yml"])
    write_bytes_atomic(files["pegasus.properties"],
                       properties.to_text(properties.properties(ctx)).encode())
    serialize.write(graph.top_workflow(ctx, axis), files["workflow.yml"])
    exitcode.write(where)
    return files


def plan(config_path: str | os.PathLike, out_dir: str | os.PathLike | None = None,
         site: str | None = None, force: bool = False,
         inject: tuple[str, ...] = ()) -> PlanResult:
    """Validate ``config_path``, inspect its MS and write the plan into ``out_dir``
    (default: the configuration's ``output.dir``) for ``site`` (default: execution.site).

    Raises InputError (nothing written) for a bad configuration, an unreadable MS, or an
    ``out_dir`` that holds something else (or a plan, without ``force``). ``inject``: job ids
    for the failure-injection test hook (context.INJECT_ENV).
    """
    resolved, settings = load(config_path, site)
    out = Path(out_dir if out_dir is not None else settings["output"]["dir"]).absolute()
    _check_target(out, force)
    ms = [replicas.ms_input(m, out / "inputs") for m in settings["data"]["ms"]]
    measured = [inspect_ms(m, settings) for m in ms]
    size = sum(b for b, _ in measured)
    rows = None if any(n is None for _, n in measured) else sum(n for _, n in measured)
    parts = choose_parts(settings, size, rows)
    from htclean.workflows.partition_check import check_partition

    check_partition([m.source or m.path for m in ms], settings, parts)
    from htclean.workflows import cube

    axis = cube.prepare(resolved, settings, [m.source or m.path for m in ms])
    settings = config.parse(resolved)
    run_id = settings["output"]["run_id"] or names.run_id(settings["image"]["name"])
    resolved["output"].update(run_id=run_id, dir=str(out))
    resolved["partition"].update(parts=parts, max_size=None)
    # the jobs' thread count is the plan's, never the cores a job finds (it fixes the bits)
    resolved["gridder"]["threads"] = planned_threads(settings)
    if settings["deconvolution"]["nterms"] > 1 and settings["image"]["reference_frequency"] \
            is None:
        local = [m.source or m.path for m in ms]
        if any(p is None for p in local):
            raise InputError("image.reference_frequency: is required with nterms > 1 when "
                             "data.ms is a URL (htclean cannot read a remote MS's band)")
        from htclean.workflows.band import mean_frequency

        image = settings["image"]
        chans = None if image["nchan"] is None else \
            (image["start"], image["start"] + image["nchan"])
        resolved["image"]["reference_frequency"] = mean_frequency(local, settings["data"],
                                                                  chans)
    if settings["image"]["primary_beam"] and all(m.source or m.path for m in ms):
        from htclean.workflows.band import check_pointing

        check_pointing([m.source or m.path for m in ms], settings["data"],
                       settings["image"]["phase_centre"])
    settings = config.parse(resolved)

    sizes = {m.lfn: b for m, (b, _) in zip(ms, measured, strict=True)}
    ctx = RunContext(resolved, settings, out, tuple(m.lfn for m in ms), sizes, tuple(inject))
    ctx.check()

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.plan-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the plan directory is not
    try:
        packed = dict(ctx.sizes)
        for m in ms:
            if m.source is not None:
                from htclean.executables.msparts import pack

                (tmp / "inputs").mkdir(exist_ok=True)
                packed[m.lfn] = pack(m.source, tmp / "inputs" / m.lfn).stat().st_size
        ctx = replace(ctx, sizes=packed)
        files = write_plan(ctx, ms, tmp, axis)
        _install(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return PlanResult(out, run_id, parts, ctx.site,
                      {name: out / p.name for name, p in files.items()},
                      pegasus_plan_command(ctx))

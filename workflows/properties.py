"""pegasus.properties: what every level's planner reads (sub-workflows inherit it).

- Standalone catalogs named by absolute path, so every deferred sub-workflow sees them
  (inline catalogs are not inherited; DESIGN.md).
- ``pegasus.data.configuration`` of the run (sharedfs on local, nonsharedfs or condorio).
- ``pegasus.integrity.checking = nosymlink``: every transferred file is checksummed (kickstart
  records the outputs' sha256, PegasusLite verifies the inputs with pegasus-integrity before
  the job starts); inputs symlinked from the submit host's own scratch (site local) are not
  read twice. Never turned off.
- ``dagman.post.path.pegasus-exitcode``: the plan's own POST script (workflows.exitcode), which
  passes a job's exit status 2 (bad input) on to DAGMan so that ``UNLESS-EXIT 2`` applies.
- ``dagman.retry`` explicitly (the planner's default and its documentation disagree); jobs
  carry their own (compute: execution.retries, sub-workflows: 0).
- ``dagman.maxpre`` bounds concurrent sub-workflow planning; ``dagman.<category>.maxjobs``
  throttles each job type (execution.throttles over the defaults below).
- Cleanup: every level is planned with ``--cleanup inplace``; ``pegasus.file.cleanup.scope =
  deferred`` makes each sub-workflow take that from its own planner arguments (hierarchical
  workflows have cleanup off otherwise). That is safe here because no level reads another
  level's scratch files: files that cross levels are staged out and named by their output
  copies in the next level's replica catalog.
- ``pegasus.mode = production``; on pools, the submit host's worker package travels with the
  jobs (execute nodes need not download one).
"""

from __future__ import annotations

from htclean.workflows import exitcode
from htclean.workflows.config import CATEGORIES
from htclean.workflows.context import LOCAL, RunContext

# Concurrent jobs per category unless execution.throttles says otherwise.
DEFAULT_THROTTLES = {"partition": 1, "weights": 500, "grid": 500, "gather": 100,
                     "deconvolve": 1, "residual": 500, "next": 1, "restore": 1}


def properties(ctx: RunContext) -> dict[str, str]:
    """The properties of a run, in the order they are written."""
    execution = ctx.settings["execution"]
    props = {
        "pegasus.mode": "production",
        "pegasus.catalog.site": "YAML",
        "pegasus.catalog.site.file": str(ctx.out_dir / "sites.yml"),
        "pegasus.catalog.transformation": "YAML",
        "pegasus.catalog.transformation.file": str(ctx.out_dir / "transformations.yml"),
        "pegasus.catalog.replica": "YAML",
        "pegasus.catalog.replica.file": str(ctx.out_dir / "replicas.yml"),
        "pegasus.data.configuration": ctx.data_configuration,
        "pegasus.integrity.checking": "nosymlink",
        "dagman.post.path.pegasus-exitcode": str(exitcode.path(ctx.out_dir)),
        "pegasus.file.cleanup.scope": "deferred",
        "dagman.retry": str(execution["retries"]),
        "dagman.maxpre": str(execution["maxpre"]),
    }
    if ctx.site != LOCAL:
        props["pegasus.transfer.worker.package"] = "true"
    throttles = {**DEFAULT_THROTTLES, **(execution["throttles"] or {})}
    for category in CATEGORIES:
        props[f"dagman.{category}.maxjobs"] = str(throttles[category])
    return props


def to_text(props: dict[str, str]) -> str:
    """Java properties text, one ``key = value`` a line."""
    lines = ["# Written by htclean plan; every level of the run is planned with these."]
    lines += [f"{key} = {value}" for key, value in props.items()]
    return "\n".join(lines) + "\n"

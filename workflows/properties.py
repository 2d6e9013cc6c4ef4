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
- Cleanup: ``pegasus.file.cleanup.scope = deferred`` makes each level take its own
  ``--cleanup`` (graph.py): leaf at the top, whose one cleanup job removes the top staging
  directory, and with it every level's (they are nested inside it), once everything is over;
  none below. Files cross levels through staging copies that therefore live until the end.
- ``pegasus.dir.staging.mapper = Flat`` and the top level's ``--relative-dir <run id>`` put
  the top level's files at ``<staging>/<run id>/<lfn>``; ``pegasus.selector.replica = Regex``
  ranks those copies first (replicas.py), before the output site's.
- ``pegasus.transfer.links = true`` where the staging site is the submit host (condorio,
  sharedfs): a level's stage-in links the files of the levels above (the parts) instead of
  copying them again every cycle.
- ``pegasus.mode = production``; on pools, the submit host's worker package travels with the
  jobs (execute nodes need not download one).
"""

from __future__ import annotations

import re

from htclean.catalogs.replicas import top_staging_dir
from htclean.workflows import exitcode
from htclean.workflows.config import CATEGORIES
from htclean.workflows.context import LOCAL, RunContext

# Concurrent jobs per category unless execution.throttles says otherwise.
DEFAULT_THROTTLES = {"partition": 1, "weights": 500, "grid": 500, "gather": 100,
                     "deconvolve": 1, "residual": 500, "next": 1, "restore": 1, "cube": 1}
# a cube's channels each run their own loop: their serial jobs must not wait for each other
CUBE_THROTTLES = {"deconvolve": 100, "next": 100, "restore": 100}


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
        "pegasus.dir.staging.mapper": "Flat",
        "pegasus.selector.replica": "Regex",
        "pegasus.selector.replica.regex.rank.1": literal_regex(top_staging_dir(ctx)[1]) + "/.*",
        "pegasus.selector.replica.regex.rank.2": ".*",
        "dagman.retry": str(execution["retries"]),
        "dagman.maxpre": str(execution["maxpre"]),
    }
    if ctx.staging_site == LOCAL:  # condorio, sharedfs: link the parts, never copy them
        props["pegasus.transfer.links"] = "true"
    if ctx.site != LOCAL:
        props["pegasus.transfer.worker.package"] = "true"
    cube = CUBE_THROTTLES if ctx.cube else {}
    throttles = {**DEFAULT_THROTTLES, **cube, **(execution["throttles"] or {})}
    for category in CATEGORIES:
        props[f"dagman.{category}.maxjobs"] = str(throttles[category])
    return props


def literal_regex(text: str) -> str:
    """A Java regex matching ``text`` without backslashes (the properties format eats them):
    each special character in a character class; a bracket, which Java's classes treat
    specially, matched by '.' (any character, the bracket among them)."""
    return re.sub(r"([.^$|?*+(){}\\])", r"[\1]", re.sub(r"[\[\]]", "?", text)).replace(
        "[?]", ".")


def to_text(props: dict[str, str]) -> str:
    """Java properties text, one ``key = value`` a line."""
    lines = ["# Written by htclean plan; every level of the run is planned with these."]
    lines += [f"{key} = {value}" for key, value in props.items()]
    return "\n".join(lines) + "\n"

"""The site catalog (sites.yml): the submit host, the HTCondor pool and the OSDF staging site.

    local       the submit host: shared scratch <plan>/scratch, local storage <plan>/outputs
                (the output site; the local engine 'stages out' there too); runs next jobs
    condorpool  the pool that runs compute jobs: HTCondor's container universe with the
                image of the transformation catalog wherever execution.container is set
                (ospool and path: nonsharedfs through OSDF by default; condor: condorio, and
                the vanilla universe without a container)
    staging     nonsharedfs only: the OSDF directory of execution.staging (osdf:// file
                server, auxillary.local so transfers run on the access point, DESIGN.md)

Site profiles carry what holds for every job there: the universe, +ProjectName and
execution.attributes, DAGMan's settings (context.DAGMAN_ENV: Pegasus writes the local site's
env profiles into the top level's DAGMan submit file), PEGASUS_HOME where Pegasus is
installed (the submit host's own, found on PATH at plan time; execution.pegasus_home on the
pool), so that pegasus-plan ships no worker package to those jobs, and a periodic_remove
that removes a job held for a failed file transfer at once (HTCondor holds it, Pegasus's
default waits 30 minutes), so DAGMan retries it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from Pegasus.api import Directory, FileServer, Namespace, Operation, Site, SiteCatalog

from htclean.workflows.context import (
    DAGMAN_ENV,
    INJECT_ENV,
    LOCAL,
    POOL,
    STAGING,
    RunContext,
    file_url,
    staging_path,
)

# Held with HoldReasonCode 12 (TransferOutputError) or 13 (TransferInputError): remove now;
# any other hold: after 30 minutes, as Pegasus does by default.
PERIODIC_REMOVE = ("JobStatus == 5 && ((HoldReasonCode =?= 12 || HoldReasonCode =?= 13) "
                   "|| time() - EnteredCurrentStatus > 1800)")


def submit_host_pegasus() -> str | None:
    """PEGASUS_HOME of the Pegasus on this host's PATH (the one that will plan the run), or
    None: the directory above the ``bin`` that holds pegasus-plan and pegasus-kickstart."""
    found = shutil.which("pegasus-plan")
    if found is None:
        return None
    home = Path(found).resolve().parent.parent
    return str(home) if (home / "bin" / "pegasus-kickstart").exists() else None


def _directory(kind, path) -> Directory:
    return Directory(kind, path).add_file_servers(FileServer(file_url(path), Operation.ALL))


def local_site(ctx: RunContext) -> Site:
    """The submit host, with the plan's scratch and output directories (and, for the failure
    injection test hook, the job ids in the next jobs' environment)."""
    site = Site(LOCAL).add_directories(
        _directory(Directory.SHARED_SCRATCH, ctx.scratch_dir),
        _directory(Directory.LOCAL_STORAGE, ctx.outputs_dir))
    if ctx.inject:
        site.add_env(**{INJECT_ENV: ",".join(ctx.inject)})
    if ctx.site != LOCAL:  # the top level's DAGMan gets the local site's env profiles
        site.add_env(**DAGMAN_ENV)
    home = submit_host_pegasus()
    if home is not None and ctx.site != LOCAL:
        # PegasusLite then runs the submit host's jobs (next, deconvolve) with this Pegasus,
        # and pegasus-plan ships them no worker package to unpack (3-4 s a job)
        site.add_env(PEGASUS_HOME=home)
    return site


def attributes(ctx: RunContext) -> dict[str, str]:
    """Job ClassAd attributes: +ProjectName and execution.attributes (``+`` added to a bare
    name; booleans written as ClassAd booleans)."""
    execution = ctx.settings["execution"]
    out = {}
    if execution["project"]:
        out["+ProjectName"] = f'"{execution["project"]}"'
    for name, value in (execution["attributes"] or {}).items():
        key = name if name.startswith(("+", "My.", "MY.")) else f"+{name}"
        out[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def pool_site(ctx: RunContext) -> Site:
    """The HTCondor execution site for condor, ospool or path: the container universe when
    the run has a container (on condor too: a docker:// image runs where the execute nodes
    have docker, a CVMFS or .sif one where they have Apptainer), else vanilla."""
    container = bool(ctx.settings["execution"]["container"])
    site = Site(POOL)
    site.add_pegasus_profile(style="condor")
    site.add_condor_profile(universe="container" if container else "vanilla",
                            periodic_remove=PERIODIC_REMOVE)
    for key, value in attributes(ctx).items():
        site.add_profiles(Namespace.CONDOR, key=key, value=value)
    if ctx.settings["execution"]["pegasus_home"]:
        site.add_env(PEGASUS_HOME=ctx.settings["execution"]["pegasus_home"])
    return site


def staging_site(ctx: RunContext) -> Site:
    """The OSDF staging site of nonsharedfs runs (execution.staging)."""
    url = ctx.settings["execution"]["staging"]
    staging = Site(STAGING).add_directories(
        Directory(Directory.SHARED_SCRATCH, staging_path(url))
        .add_file_servers(FileServer(url.rstrip("/"), Operation.ALL)))
    staging.add_pegasus_profile(auxillary_local="true")
    return staging


def site_catalog(ctx: RunContext) -> SiteCatalog:
    """sites.yml for the run's site."""
    sc = SiteCatalog().add_sites(local_site(ctx))
    if ctx.site != LOCAL:
        sc.add_sites(pool_site(ctx))
    if ctx.staging_site == STAGING:
        sc.add_sites(staging_site(ctx))
    return sc

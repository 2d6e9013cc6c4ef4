"""Replica catalogs: where the run's input files are, and where later levels find earlier files.

``replicas.yml`` (written once by ``htclean plan``) names the resolved configuration
(``R-config.yml`` -> ``<plan dir>/config.yml``) and the input MS (a tar written at plan time,
the user's own ``.tar``, or an ``osdf://`` URL). Each cycle's workflow carries an inline
catalog, written by ``next``, that points at the output site's copies of files made by earlier
levels: deferred sub-workflows do not receive their parent's files otherwise (DESIGN.md).

Files made by the top level (the parts, the manifest, the weights, the PSF and the dirty
image) are named first at the top level's staging copy (``top_staging``): they are inputs of
the top level's SubWorkflow job, so Pegasus keeps them there until the whole run is over,
and ``pegasus.selector.replica = Regex`` (properties.py) makes every level prefer that copy.
The output site's copy comes second, for the local engine, which stages out as each job
ends; the planner never depends on a stage-out having finished. Files made by the level just
above come to Pegasus through its input cache (graph.carried), which outranks this catalog.

Output copies live in ``<plan dir>/outputs`` on site ``local``. When that directory is on an
OSPool access point's OSDF-exported storage (``/ospool/<ap>/data/...``) and the run stages
through OSDF, the catalog gives the ``osdf://`` URL instead and the jobs read those files
straight from OSDF (bypassing the staging site), so a part crosses the submit host only once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from Pegasus.api import ReplicaCatalog

from htclean.imaging.errors import InputError
from htclean.workflows import names
from htclean.workflows.context import LOCAL, STAGING, RunContext, file_url

OSDF_SITE = "osdf"        # the site label of osdf:// and pelican:// replicas
WEB_SITE = "web"          # the site label of http(s):// replicas
OSDF_EXPORTED = "/ospool/"
REMOTE_SCHEMES = {"osdf": OSDF_SITE, "pelican": OSDF_SITE, "stash": OSDF_SITE,
                  "http": WEB_SITE, "https": WEB_SITE}


@dataclass(frozen=True)
class MSInput:
    """The input Measurement Set as the catalog names it.

    ``lfn``: its logical name; ``site``/``url``: its replica; ``source``: the local MS
    directory that ``htclean plan`` must tar to ``url`` first (None when nothing is to tar);
    ``path``: the local file, if any (for its size).
    """

    lfn: str
    site: str
    url: str
    source: Path | None
    path: Path | None


def ms_input(ms: str, inputs_dir: Path) -> MSInput:
    """How the catalog names ``data.ms``: a URL as it is (it must name a ``.tar``), a local
    ``.tar`` as it is, a local MS directory as ``inputs_dir/<name>.tar`` (for the planner to
    write)."""
    lfn = names.ms_lfn(ms)
    parsed = urlparse(ms)
    if parsed.scheme in REMOTE_SCHEMES:
        if not parsed.path.endswith(".tar"):
            raise InputError(f"data.ms: a URL must name a tar of the MS (.tar), got {ms!r}")
        return MSInput(lfn, REMOTE_SCHEMES[parsed.scheme], ms, None, None)
    path = Path(unquote(parsed.path) if parsed.scheme == "file" else ms).resolve()
    if path.is_dir():
        tar = inputs_dir / lfn
        return MSInput(lfn, LOCAL, file_url(tar), path, tar)
    return MSInput(lfn, LOCAL, file_url(path), None, path)


def output_location(ctx: RunContext, lfn: str) -> tuple[str, str]:
    """(site, URL) of the output site's copy of ``lfn``; the configuration is the plan's
    config.yml, always read through the submit host."""
    if lfn == names.config(ctx.stem):
        return LOCAL, file_url(ctx.config_path)
    path = ctx.outputs_dir / lfn
    if ctx.staging_site == STAGING and str(path).startswith(OSDF_EXPORTED):
        return OSDF_SITE, f"osdf://{path}"
    return LOCAL, file_url(path)


def top_staging_dir(ctx: RunContext) -> tuple[str, str]:
    """(site, URL) of the top level's staging directory: ``<staging>/<run id>`` (the top level
    is planned with ``--relative-dir <run id>`` and ``pegasus.dir.staging.mapper = Flat``)."""
    if ctx.staging_site == STAGING:
        return STAGING, f"{ctx.settings['execution']['staging'].rstrip('/')}/{ctx.run_id}"
    return LOCAL, file_url(ctx.scratch_dir / ctx.run_id)


def top_made(ctx: RunContext) -> set[str]:
    """The LFNs that the top level makes and later levels read."""
    from htclean.workflows.graph import carried

    return set(carried(ctx, 0))


def locations(ctx: RunContext, lfn: str) -> list[tuple[str, str]]:
    """Every (site, URL) the inline catalogs give ``lfn``, in order of preference."""
    out = [output_location(ctx, lfn)]
    if lfn in top_made(ctx):
        site, url = top_staging_dir(ctx)
        out.insert(0, (site, f"{url}/{lfn}"))
    return out


def is_remote(url: str) -> bool:
    """Whether jobs fetch ``url`` themselves (OSDF, HTTP) rather than through staging."""
    return urlparse(url).scheme in REMOTE_SCHEMES


def replica_catalog(ctx: RunContext, ms: list[MSInput]) -> ReplicaCatalog:
    """replicas.yml: the resolved configuration and the input MSs."""
    rc = ReplicaCatalog()
    config = names.config(ctx.run_id)
    site, url = output_location(ctx, config)
    rc.add_replica(site, config, url)
    for m in ms:
        rc.add_replica(m.site, m.lfn, m.url)
    if ctx.cube:  # every channel's configuration, and its products for the cube job
        from htclean.workflows import cube_graph
        from htclean.workflows.cube import group_contexts

        for c in group_contexts(ctx):
            rc.add_replica(LOCAL, names.config(c.stem), file_url(c.config_path))
        for lfn in cube_graph.cube_inputs(ctx):
            rc.add_replica(LOCAL, lfn, file_url(ctx.outputs_dir / lfn))
    return rc


def inline_catalog(ctx: RunContext, lfns: list[str]) -> ReplicaCatalog:
    """The catalog a cycle's workflow carries: ``locations`` of each of ``lfns``."""
    rc = ReplicaCatalog()
    for lfn in lfns:
        for site, url in locations(ctx, lfn):
            rc.add_replica(site, lfn, url)
    return rc

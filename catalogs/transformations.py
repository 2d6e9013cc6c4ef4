"""The transformation catalog (transformations.yml): every htclean executable, and where.

On a pool (condor, ospool, path) the compute executables run inside one container, the image
of ``execution.container``, where the image installs them in ``CONTAINER_BIN``
(containers/). Without a container they are taken as installed on the execute nodes at the
submit host's paths. ``htclean-next`` (and ``htclean-deconvolve`` where the minor cycle
runs on the submit host: ``RunContext.submit_host_jobs``) is catalogued on site ``local``
only, at the absolute path of the submit host's console script (its shebang names the
interpreter: the local universe gives it a bare environment), and its jobs are pinned there
(graph.py). On site
``local`` every executable is the submit host's console script, so the local engine and a
workstation ``pegasus-plan`` find them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from urllib.parse import urlparse

from Pegasus.api import Container, Transformation, TransformationCatalog

from htclean.imaging.errors import InputError
from htclean.workflows.context import LOCAL, POOL, RunContext, file_url
from htclean.workflows.names import TRANSFORMATIONS

CONTAINER_BIN = "/opt/htclean/bin"   # where containers/ installs the console scripts
CONTAINER_NAME = "htclean"


def installed(name: str) -> Path:
    """The absolute path of this installation's console script ``name``."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return beside
    found = shutil.which(name)
    if found:
        return Path(found).absolute()
    raise InputError(f"{name}: no such console script beside {sys.executable} or on PATH; "
                     "install htclean (pip install -e .) in this environment")


def container(image: str) -> Container:
    """The Apptainer container of every pool job, used where it lives (Pegasus's container
    staging bypass): no stage-in job copies it, and each job's ``.sub`` names the image itself.

    A CVMFS path is read on the execute node (site condorpool); another absolute path is a
    file of the submit host that HTCondor sends with the job; a URL (osdf://, https://,
    docker://) is fetched by HTCondor or Apptainer on the execute node. The jobs run in
    HTCondor's container universe (sites.py), which picks the runtime: a docker:// image
    runs in docker where the execute node has it (the type written here is then unused).
    """
    scheme = urlparse(image).scheme
    if scheme:
        return Container(CONTAINER_NAME, Container.SINGULARITY, image, bypass_staging=True)
    if not image.startswith("/"):
        raise InputError(f"execution.container: {image!r} must be an absolute path or a URL")
    site = POOL if image.startswith("/cvmfs/") else LOCAL
    return Container(CONTAINER_NAME, Container.SINGULARITY, file_url(image),
                     image_site=site, bypass_staging=True)


def transformation_catalog(ctx: RunContext) -> TransformationCatalog:
    """transformations.yml for the run's site."""
    tc = TransformationCatalog()
    image = ctx.settings["execution"]["container"]
    box = container(image) if ctx.site != LOCAL and image else None
    if box is not None:
        tc.add_containers(box)
    on_submit_host = {f"htclean-{category}" for category in ctx.submit_host_jobs}
    for name in TRANSFORMATIONS:
        if name in on_submit_host or ctx.site == LOCAL:
            tr = Transformation(name, site=LOCAL, pfn=installed(name), is_stageable=False)
        elif box is not None:
            tr = Transformation(name, site=POOL, pfn=f"{CONTAINER_BIN}/{name}",
                                is_stageable=False, container=box)
        else:
            tr = Transformation(name, site=POOL, pfn=installed(name), is_stageable=False)
        tc.add_transformations(tr)
    return tc

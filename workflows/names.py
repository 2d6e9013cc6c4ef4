"""Logical file names (LFNs) and job ids of docs/job-contract.md, in one place.

The generators (``workflows/``, ``catalogs/``) and the executables build every name that
crosses jobs through these functions, so a name is spelled once. ``R`` is the run id,
``K`` the major cycle (0 = the top level), ``P`` the number of parts, ``L`` a gather level
(1 = above the leaves; the root is the tree's height) and ``J`` a gather node's index.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import PurePosixPath
from urllib.parse import urlparse

TRANSFORMATIONS = ("htclean-partition", "htclean-grid", "htclean-gather", "htclean-deconvolve",
                   "htclean-next", "htclean-restore", "htclean-cube")
PRODUCTS = ("image.fits", "model.fits", "residual.fits", "psf.fits", "dirty.fits",
            "image.png", "residual.png", "psf.png", "summary.json")


def run_id(name: str, when: datetime | None = None) -> str:
    """``NAME-YYYYmmddTHHMMSS`` in UTC (``when`` defaults to now)."""
    when = when or datetime.now(timezone.utc)
    return f"{name}-{when.astimezone(timezone.utc):%Y%m%dT%H%M%S}"


def part_index(i: int, parts: int) -> str:
    """Part index zero-padded to ``max(3, digits(P - 1))``."""
    return f"{i:0{max(3, len(str(max(parts - 1, 0))))}d}"


def cycle(k: int) -> str:
    """``cKK``: two digits or more."""
    return f"c{k:02d}"


def channel_tag(g: int) -> str:
    """``chNNNN``: a cube's output channel ``g`` (its files, job ids and configuration)."""
    return f"ch{g:04d}"


def node(level: int, j: int) -> str:
    """``gL-JJJ``: a gather node (JJJ three digits or more)."""
    return f"g{level}-{j:03d}"


# --- files ------------------------------------------------------------------------------------

def config(r: str) -> str:
    return f"{r}-config.yml"


def ms_tar(ms_name: str) -> str:
    """The LFN of the input MS: ``<ms name>.tar`` (a ``.tar`` keeps its own name)."""
    return ms_name if ms_name.endswith(".tar") else f"{ms_name}.tar"


def ms_lfn(ms: str) -> str:
    """The LFN of ``data.ms``, a path or a URL: ``ms_tar`` of its last path component."""
    return ms_tar(PurePosixPath(urlparse(ms).path.rstrip("/")).name)


def part(r: str, i: int, parts: int) -> str:
    return f"{r}-part-{part_index(i, parts)}.vis.npz"


def partitions(r: str) -> str:
    return f"{r}-partitions.json"


def weights_part(r: str, i: int, parts: int) -> str:
    return f"{r}-weights-p{part_index(i, parts)}.npz"


def weights_node(r: str, level: int, j: int) -> str:
    return f"{r}-weights-{node(level, j)}.npz"


def weights_root(r: str, parts: int) -> str:
    """The global weight density: the part's own file when there is one part."""
    return weights_part(r, 0, 1) if parts == 1 else f"{r}-weights.npz"


def image_part(r: str, i: int, parts: int) -> str:
    return f"{r}-image-p{part_index(i, parts)}.npz"


def image_node(r: str, level: int, j: int) -> str:
    return f"{r}-image-{node(level, j)}.npz"


def psf_fits(r: str) -> str:
    return f"{r}-psf.fits"


def dirty_fits(r: str) -> str:
    return f"{r}-dirty.fits"


def model(r: str, k: int) -> str:
    return f"{r}-model-{cycle(k)}.json"


def state(r: str, k: int) -> str:
    return f"{r}-deconvolve-{cycle(k)}.json"


def residual_part(r: str, k: int, i: int, parts: int) -> str:
    return f"{r}-residual-{cycle(k)}-p{part_index(i, parts)}.npz"


def residual_node(r: str, k: int, level: int, j: int) -> str:
    return f"{r}-residual-{cycle(k)}-{node(level, j)}.npz"


def residual_fits(r: str, k: int) -> str:
    """The residual after major cycle ``k``; the dirty image before the first one."""
    return dirty_fits(r) if k == 0 else f"{r}-residual-{cycle(k)}.fits"


def decision(r: str, k: int) -> str:
    return f"{r}-next-{cycle(k)}.json"


def cycle_file(k: int) -> str:
    """``cycle-KK.yml``: the sub-workflow that ``next-c(K-1)`` writes."""
    return f"{cycle_job(k)}.yml"


def record(r: str, job: str) -> str:
    return f"{r}-{job}.record.json"


def products(image_name: str, nterms: int = 1, primary_beam: bool = False,
             previews: bool = True) -> list[str]:
    """What restore writes: ``NAME-image.fits`` ... ``NAME-summary.json``; multi-term and
    primary-beam products as executables/restore.py names them; no PNG without ``previews``."""
    single = [f"{image_name}-{p}" for p in PRODUCTS] if nterms == 1 else []
    out = single + taylor_products(image_name, nterms, primary_beam)
    return out if previews else [p for p in out if not p.endswith(".png")]


CUBE_KINDS = ("image", "model", "residual", "psf", "dirty")
PRODUCTS_MODULE = "htclean.imaging.spectral.products"  # moments and the channel preview


def cube_products(name: str, rest_frequency: float | None, has_products: bool) -> list[str]:
    """What the cube job writes: NAME-{image,...}.fits cubes and NAME-summary.json; with
    ``PRODUCTS_MODULE`` also NAME-channels.png and, with a rest frequency, the moments."""
    out = [*(f"{name}-{kind}.fits" for kind in CUBE_KINDS), f"{name}-summary.json"]
    if has_products:
        out += [f"{name}-mom0.fits", f"{name}-mom1.fits"] if rest_frequency else []
        out.append(f"{name}-channels.png")
    return out


def taylor_products(name: str, nterms: int, primary_beam: bool) -> list[str]:
    """The products of a multi-term (nterms > 1) restore, and the primary beam's (any
    nterms): executables/restore.py."""
    out: list[str] = []
    if nterms > 1:
        for kind in ("image", "residual", "model"):
            out += [f"{name}-{kind}-tt{t}.fits" for t in range(nterms)]
        out += [f"{name}-{k}.fits" for k in ("alpha", "alpha-error", "psf", "dirty")]
        out += [f"{name}-{k}.png" for k in ("image-tt0", "residual-tt0", "psf", "alpha")]
        out.append(f"{name}-summary.json")
    if primary_beam:
        out.append(f"{name}-pb.fits")
        out += [f"{name}-image-tt0-pb.fits", f"{name}-alpha-pb.fits"] if nterms > 1 else \
            [f"{name}-image-pb.fits"]
    return out


# --- job ids (= DAGMan node labels) -----------------------------------------------------------

PARTITION = "partition"
RESTORE = "restore"
CUBE = "cube"


def weights_job(i: int, parts: int) -> str:
    return f"weights-p{part_index(i, parts)}"


def grid_job(i: int, parts: int) -> str:
    return f"grid-{cycle(0)}-p{part_index(i, parts)}"


def residual_job(k: int, i: int, parts: int) -> str:
    return f"residual-{cycle(k)}-p{part_index(i, parts)}"


def gather_job(tree: str, level: int, j: int) -> str:
    """``tree`` is ``weights`` or a cycle ``cKK``."""
    return f"gather-{tree}-{node(level, j)}"


def deconvolve_job(k: int) -> str:
    return f"deconvolve-{cycle(k)}"


def next_job(k: int) -> str:
    return f"next-{cycle(k)}"


def cycle_job(k: int) -> str:
    """The SubWorkflow job of cycle ``k`` (also its --basename)."""
    return f"cycle-{k:02d}"


def workflow_name(r: str, level: str) -> str:
    """A Pegasus workflow name (letters, digits, '-' and '_' only) for a level of run ``r``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{r}-{level}")

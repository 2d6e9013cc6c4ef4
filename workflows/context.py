"""What every generator needs to know about a run, derived from its resolved configuration.

``htclean plan`` builds a ``RunContext`` from the configuration it resolves (with the run id,
the number of parts, the site and the plan directory filled in); the ``next`` job builds the
same context from the ``R-config.yml`` it is given, so both write workflows the same way.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from htclean.imaging.errors import InputError
from htclean.workflows import names
from htclean.workflows.config import CATEGORIES

LOCAL = "local"            # the submit host: next jobs, output site, the local engine
POOL = "condorpool"        # the HTCondor execution site (generic pool, OSPool or PATH)
STAGING = "staging"        # the OSDF staging site of nonsharedfs runs
SMALL_FILE = 64 * 1024     # size assumed for JSON/YAML files (bytes)
# Test hook (``htclean plan --inject-failure``): job ids whose pool jobs fail while the DAGMan
# that submits them has PEGASUS_HTCLEAN_INJECT_FAILURE=1 in its environment (graph.py).
INJECT_ENV = "HTCLEAN_POOL_INJECT"
# DAGMan's own settings, carried by the workflow (a user cannot change an access point's
# configuration): DAGMan looks at its jobs' log every 5 s by default, and each job on a
# cycle's serial path waits for that look about three times (done, POST script, the next
# submit). Pegasus puts the local site's env profiles into the top level's DAGMan submit file
# (sites.local_site); every level's DAGMan job below has ``getenv = ..._CONDOR_*``, so it
# inherits them from its parent DAGMan; HTCondor reads _CONDOR_<KNOB> from a daemon's
# environment as the knob.
DAGMAN_ENV = {"_CONDOR_DAGMAN_USER_LOG_SCAN_INTERVAL": "1"}


@dataclass(frozen=True)
class RunContext:
    """A run as the generators see it.

    ``resolved``: the resolved configuration (what config.yml holds); ``settings``: its
    parsed form; ``out_dir``: the absolute plan directory (outputs in ``out_dir/outputs``);
    ``ms_lfns``: the input MSs' LFNs (data.ms, in order); ``sizes``: measured sizes in bytes
    by LFN (the MS tars at plan time, the parts once they exist), used for request_disk;
    ``inject``: the job ids of the failure-injection test hook (``INJECT_ENV``).
    """

    resolved: dict
    settings: dict
    out_dir: Path
    ms_lfns: tuple[str, ...]
    sizes: Mapping[str, int] = field(default_factory=dict)
    inject: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, resolved: dict, settings: dict,
                    sizes: Mapping[str, int] | None = None) -> RunContext:
        """The context of a configuration resolved by ``htclean plan`` (run id, parts, site
        and ``output.dir`` = the plan directory filled in)."""
        for key, value in (("output.run_id", settings["output"]["run_id"]),
                           ("partition.parts", settings["partition"]["parts"])):
            if value is None:
                raise InputError(f"{key}: is not set; is this a configuration written by "
                                 "htclean plan?")
        inject = tuple(s.strip() for s in os.environ.get(INJECT_ENV, "").split(",") if s.strip())
        return cls(resolved, settings, Path(settings["output"]["dir"]),
                   tuple(names.ms_lfn(m) for m in settings["data"]["ms"]), dict(sizes or {}),
                   inject)

    @property
    def run_id(self) -> str:
        return self.settings["output"]["run_id"]

    @property
    def group(self) -> int | None:
        """The output channel a cube's per-channel configuration images (None: the run)."""
        group = self.settings["output"]["group"]
        return None if group is None else int(group)

    @property
    def cube(self) -> bool:
        """Whether this is a cube's top level (``image.mode`` cube)."""
        return self.settings["image"]["mode"] == "cube"

    @property
    def stem(self) -> str:
        """What this level's file names start with: the run id, and a cube channel's tag."""
        return self.run_id if self.group is None else \
            f"{self.run_id}-{names.channel_tag(self.group)}"

    @property
    def job_prefix(self) -> str:
        """What this level's job ids (and sub-workflow files) start with: ``chNNNN-`` for a
        cube channel's jobs, nothing otherwise."""
        return "" if self.group is None else f"{names.channel_tag(self.group)}-"

    @property
    def parts(self) -> int:
        return int(self.settings["partition"]["parts"])

    @property
    def site(self) -> str:
        """The configured site: local, condor, ospool or path."""
        return self.settings["execution"]["site"]

    @property
    def exec_site(self) -> str:
        """The Pegasus site that runs the compute jobs."""
        return LOCAL if self.site == LOCAL else POOL

    @property
    def nterms(self) -> int:
        """Taylor terms of the multi-term MFS (1: a flat spectrum)."""
        return int(self.settings["deconvolution"]["nterms"])

    @property
    def weighted(self) -> bool:
        """Uniform and Briggs weighting need the global weight density first."""
        return self.settings["weighting"]["type"] != "natural"

    @property
    def data_configuration(self) -> str:
        """The Pegasus data configuration: sharedfs on local; auto is nonsharedfs on
        ospool/path and condorio on condor."""
        conf = self.settings["execution"]["data_configuration"]
        if self.site == LOCAL:
            return "sharedfs"
        if conf == "auto":
            return "nonsharedfs" if self.site in ("ospool", "path") else "condorio"
        return conf

    @property
    def submit_host_jobs(self) -> frozenset[str]:
        """The job categories that run on the submit host (site local, HTCondor's local
        universe) on a pool: next always; deconvolve with ``execution.deconvolve_on`` submit,
        or auto without ``gridder.device: gpu``; a cube's assembly (``cube``), which reads
        the channels' products where they arrive, in the outputs directory. A cycle's
        serial path then holds one negotiated step, its residual jobs (the minor cycle runs
        where CASA's parallel tclean and WSClean's distributed mode run it: beside the
        loop's control). On site local (the embedded engine) everything runs on this
        machine: a cube's channel (``output.group`` set) folds its minor cycle into next
        (``auto`` or ``submit``: one job fewer per cycle, 64 x 4 at a 64-channel cube, the
        same bytes), an mfs run keeps its deconvolve jobs unless ``submit`` is set."""
        where = self.settings["execution"]["deconvolve_on"]
        if self.site == LOCAL:
            if where == "auto":
                where = "submit" if self.group is not None else "pool"
        elif where == "auto":
            where = "pool" if self.settings["gridder"]["device"] == "gpu" else "submit"
        return frozenset({"next", "cube", "deconvolve"} if where == "submit" else
                         {"next", "cube"})

    @property
    def minor_cycle_in_next(self) -> bool:
        """Whether the ``next`` job of each cycle also runs the next one's minor cycle (the
        minor cycle runs on the submit host on a pool: ``submit_host_jobs``): a cycle's level
        then holds its residual jobs and its ``next``, one serial job fewer (graph.py)."""
        return "deconvolve" in self.submit_host_jobs

    @property
    def staging_site(self) -> str:
        """The staging site: the OSDF site for nonsharedfs on a pool, else the submit host."""
        if self.site != LOCAL and self.data_configuration == "nonsharedfs":
            return STAGING
        return LOCAL

    @property
    def outputs_dir(self) -> Path:
        return self.out_dir / "outputs"

    @property
    def scratch_dir(self) -> Path:
        return self.out_dir / "scratch"

    @property
    def config_path(self) -> Path:
        """config.yml, or a cube channel's ``config-chNNNN.yml`` (workflows/cube.py)."""
        if self.group is None:
            return self.out_dir / "config.yml"
        return self.out_dir / f"config-{names.channel_tag(self.group)}.yml"

    @property
    def image_shape(self) -> tuple[int, int]:
        return int(self.settings["image"]["nx"]), int(self.settings["image"]["ny"])

    def check(self) -> None:
        """InputError when the site cannot work with these settings."""
        if self.staging_site == STAGING and not self.settings["execution"]["staging"]:
            raise InputError(f"execution.staging: is required for nonsharedfs on site "
                             f"{self.site} (an osdf:// directory the jobs can write)")
        if self.parts < 1:
            raise InputError(f"partition.parts: must be >= 1, got {self.parts}")
        unknown = sorted(set(self.settings["execution"]["throttles"] or {}) -
                         set(CATEGORIES))
        if unknown:
            raise InputError(f"execution.throttles: unknown job type {unknown[0]!r}; expected "
                             f"one of {', '.join(CATEGORIES)}")

    # --- sizes (bytes) used for request_disk ---------------------------------------------

    def size(self, lfn: str, estimate: int) -> int:
        """The measured size of ``lfn`` if known, else ``estimate``."""
        return int(self.sizes.get(lfn, estimate))

    def ms_bytes(self) -> int:
        """All the input MSs together."""
        return sum(self.size(lfn, SMALL_FILE) for lfn in self.ms_lfns)

    def part_bytes(self, i: int) -> int:
        """A part's size: measured once it exists, else the MS size / P."""
        return self.size(names.part(self.stem, i, self.parts),
                         math.ceil(self.ms_bytes() / self.parts))

    def partial_bytes(self, images: int) -> int:
        """A partial image file: ``images`` float32 (ny, nx) arrays plus a header."""
        nx, ny = self.image_shape
        return images * nx * ny * 4 + 4096

    def fits_bytes(self) -> int:
        """A FITS image: at most float64 (ny, nx) plus header blocks."""
        nx, ny = self.image_shape
        return nx * ny * 8 + 2 * 2880


def file_url(path: str | os.PathLike) -> str:
    """``file://`` + the absolute path, as written (no percent-encoding: Pegasus and the
    local engine read the path back verbatim)."""
    return f"file://{os.path.abspath(path)}"


def staging_path(url: str) -> str:
    """The directory path of a staging URL (``osdf:///ospool/ap40/data/u/x`` -> ``/ospool/...``)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("osdf", "pelican", "stash", "file"):
        raise InputError(f"execution.staging: {url!r} must be an osdf://, pelican:// or "
                         "file:// URL")
    path = parsed.path.rstrip("/")
    if not path.startswith("/"):
        raise InputError(f"execution.staging: {url!r} has no absolute path")
    return path


def measured_sizes(outputs_dir: Path, lfns: list[str]) -> dict[str, int]:
    """Sizes in bytes of those ``lfns`` that exist in ``outputs_dir``."""
    out = {}
    for lfn in lfns:
        try:
            out[lfn] = os.stat(outputs_dir / lfn).st_size
        except OSError:
            continue
    return out

"""The configuration's keys: every parameter declared once, with its default, meaning and
check (workflows/config.py validates, resolves and parses with them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from htclean.imaging import units
from htclean.imaging.errors import InputError
from htclean.workflows.config_checks import (
    boolean,
    choice,
    classad_expression,
    container_image,
    image_size,
    index_list,
    integer,
    mapping_of,
    number,
    quantity,
    scale_list,
    sky_position,
    text,
    text_list,
)

REQUIRED = object()  # default of a parameter the user must give


@dataclass(frozen=True)
class Param:
    """One configuration key: ``path`` is ``section.key``; ``check`` parses or raises ValueError."""

    path: str
    default: Any
    info: str
    check: Callable[[Any], Any]
    example: Any = None

    @property
    def section(self) -> str:
        return self.path.split(".", 1)[0]

    @property
    def key(self) -> str:
        return self.path.split(".", 1)[1]


class ConfigError(InputError):
    """A bad configuration value: ``str()`` is one line naming the key path."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path


# --- the parameters ------------------------------------------------------------------------

CATEGORIES = ("partition", "weights", "grid", "gather", "deconvolve", "residual", "next",
              "restore", "cube")

SINGLE_EPSILON = 1e-5  # the finest gridder.epsilon single precision is used at

PARAMETERS: tuple[Param, ...] = (
    # data
    Param("data.ms", REQUIRED,
          "Measurement Set(s) to image: a path, a .ms.tar or an osdf:// URL, or a list of them "
          "(imaged together: one weighting, normalisation and phase centre)",
          text_list(), "observation.ms"),
    Param("data.column", "DATA", "visibility column: DATA or CORRECTED_DATA",
          choice("DATA", "CORRECTED_DATA", "MODEL_DATA")),
    Param("data.field", 0, "FIELD_ID to image", integer(0)),
    Param("data.spw", None, "spectral window (DATA_DESC_ID) to image; null = all",
          integer(0, nullable=True)),
    Param("data.polarization_rule", "available",
          "Stokes I from the parallel hands: 'available' uses the unflagged hand when one is "
          "flagged; 'wsclean' drops the sample if either hand is flagged and weights it "
          "min(w1, w2) (WSClean 3.1); 'tclean' drops it if any correlation is flagged and "
          "weights it w1 + w2 (CASA tclean)",
          choice("available", "wsclean", "tclean")),
    Param("data.size", None, "size of a remote (osdf://) MS, used to plan parts and disk requests",
          quantity(units.size_bytes, positive=True, nullable=True)),
    Param("data.rows", None, "rows of a remote (osdf://) MS", integer(1, nullable=True)),
    Param("data.continuum.linefree", None,
          "uv-plane continuum subtraction (CASA uvcontsub) before imaging: the line-free "
          "channels in CASA syntax, e.g. '0~5;55~62'; null = no subtraction",
          text(nullable=True)),
    Param("data.continuum.fitorder", 0,
          "order of the polynomial fitted to each spectrum's line-free channels",
          integer(0, 5)),
    # image
    Param("image.name", "htclean", "prefix of the products: NAME-image.fits, NAME-psf.fits, ...",
          text(pattern=r"[A-Za-z0-9_.-]+")),
    Param("image.mode", "mfs",
          "mfs (one image of every selected channel) or cube (one image per output channel, "
          "each cleaned on its own; tclean specmode cube, WSClean -channels-out)",
          choice("mfs", "cube")),
    Param("image.start", 0, "first channel imaged (CASA start, in channels of the window)",
          integer(0)),
    Param("image.nchan", None,
          "channels imaged from image.start (WSClean -channel-range); null = to the end of "
          "the window", integer(1, nullable=True)),
    Param("image.width", 1,
          "cube: MS channels per output channel (CASA width); must divide the channels "
          "imaged", integer(1)),
    Param("image.rest_frequency", None,
          "cube: rest frequency written as RESTFRQ, so viewers show velocity (CASA restfreq)",
          quantity(units.frequency, positive=True, nullable=True), "1420.405752MHz"),
    Param("image.size", 512, "pixels: N or [width, height], even", image_size),
    Param("image.scale", REQUIRED, "pixel size (cell), e.g. 1asec; `htclean inspect` suggests one",
          quantity(units.angle, positive=True), "1asec"),
    Param("image.psf_oversize", 2.0,
          "PSF size relative to the image: 2 keeps PSF subtraction exact anywhere in the image "
          "(1 = the image size, as CASA and WSClean; deep cleans may then diverge)",
          number(1.0, 4.0)),
    Param("image.phase_centre", None,
          "image centre 'RA Dec' (J2000); null = the phase centre of the (first) MS", sky_position),
    Param("image.primary_beam", False,
          "correct for the VLA primary beam (EVLA Memo 195), weighted over the channels as the "
          "data are: writes NAME-pb.fits and NAME-image-pb.fits", boolean),
    Param("image.pb_limit", 0.2,
          "primary-beam-corrected pixels where the beam is below this level are blanked "
          "(tclean pblimit)", number(0.0, 1.0, lo_open=True)),
    Param("image.reference_frequency", None,
          "reference frequency of the Taylor terms and of the products' header; null = the "
          "weighted mean frequency of all the data", quantity(units.frequency, positive=True,
                                                              nullable=True), "1.5GHz"),
    # weighting
    Param("weighting.type", "natural", "natural, uniform or briggs",
          choice("natural", "uniform", "briggs")),
    Param("weighting.robust", None, "Briggs robust parameter, -2 (uniform) .. 2 (natural)",
          number(-2.0, 2.0, nullable=True)),
    # gridder
    Param("gridder.wgridding", True, "correct for the w term (w-stacking)", boolean),
    Param("gridder.epsilon", 1e-5, "gridding accuracy (single precision: 1e-5 or more)",
          number(2e-13, 1e-1, lo_open=True)),
    Param("gridder.precision", "auto",
          "auto (single where gridder.epsilon >= 1e-5, as WSClean; else double), single "
          "(float32 / complex64) or double (float64 / complex128) gridding",
          choice("auto", "single", "double")),
    Param("gridder.device", "auto", "auto (GPU when one is found), cpu or gpu",
          choice("auto", "cpu", "gpu")),
    Param("gridder.threads", 0, "CPU threads for gridding; 0 = the job's request_cpus", integer(0)),
    Param("gridder.chunk_rows", 200000, "rows read at a time; bounds a job's memory", integer(1)),
    # deconvolution
    Param("deconvolution.algorithm", "hogbom", "hogbom, clark or multiscale",
          choice("hogbom", "clark", "multiscale")),
    Param("deconvolution.nterms", 1,
          "Taylor terms of the multi-term MFS (Rau & Cornwell 2011): 1 = a flat spectrum, "
          "2 adds the spectral index, 3 its curvature (hogbom or multiscale)", integer(1, 3)),
    Param("deconvolution.niter", 1000, "maximum CLEAN components in total", integer(0)),
    Param("deconvolution.gain", 0.1, "loop gain", number(0.0, 1.0, lo_open=True)),
    Param("deconvolution.mgain", 0.8,
          "major-cycle gain: a minor cycle stops when the peak has dropped by this fraction "
          "(WSClean -mgain)", number(0.0, 1.0, lo_open=True)),
    Param("deconvolution.threshold", "0Jy", "stop cleaning at this peak residual",
          quantity(units.flux)),
    Param("deconvolution.auto_threshold", None,
          "stop at this many times the robust noise (MAD) of the residual; null = off",
          number(0.0, nullable=True, lo_open=True)),
    Param("deconvolution.scales", None, "multiscale: scales in pixels; null = [0, 4, 16]",
          lambda v: None if v is None else scale_list(v)),
    Param("deconvolution.scale_bias", 0.6,
          "multiscale: bias towards small scales, 0 < b <= 1 (WSClean -multiscale-scale-bias; "
          "lower favours larger scales)", number(0.0, 1.0, lo_open=True)),
    Param("deconvolution.max_cycles", 20, "maximum major cycles", integer(1, 1000)),
    Param("deconvolution.divergence", 1.5,
          "stop when the peak residual grows by this factor between major cycles",
          number(1.0, lo_open=True)),
    # restore
    Param("restore.common_beam", False,
          "cube: restore every channel with one common beam (the smallest of the channels' "
          "shape that holds every channel's beam) instead of its own (a BEAMS table)",
          boolean),
    # partition
    Param("partition.parts", None, "number of parts; null = from max_size, or 1",
          integer(1, 100000, nullable=True)),
    Param("partition.max_size", None, "largest part, e.g. 2GB (instead of parts)",
          quantity(units.size_bytes, positive=True, nullable=True)),
    Param("partition.axis", "time", "split along time, baseline or channel",
          choice("time", "baseline", "channel")),
    Param("partition.fan_in", 8, "inputs per gather job (the gather is a tree)", integer(2, 1000)),
    # execution
    Param("execution.site", "local", "where jobs run: local, condor, ospool or path",
          choice("local", "condor", "ospool", "path")),
    Param("execution.container",
          "/cvmfs/singularity.opensciencegrid.org/htclean/htclean:0.1.0",
          "Apptainer image every job runs in (CVMFS path, osdf:// .sif, or docker://), used "
          "where it lives; a .sif name has one suffix (htclean-0_1_0.sif, not htclean-0.1.0.sif)",
          container_image),
    Param("execution.data_configuration", "auto",
          "Pegasus data configuration: auto (nonsharedfs on ospool/path, condorio on condor), "
          "nonsharedfs, condorio or sharedfs",
          choice("auto", "nonsharedfs", "condorio", "sharedfs")),
    Param("execution.staging", None,
          "staging URL for nonsharedfs, e.g. osdf:///ospool/ap40/data/USER/htclean",
          text(nullable=True)),
    Param("execution.deconvolve_on", "auto",
          "where the minor cycle runs on a pool: submit (the submit host, in HTCondor's local "
          "universe, as next: no negotiation per cycle), pool (a pool job; with "
          "gridder.device gpu it gets a GPU), or auto (pool with gridder.device gpu, else "
          "submit). On site local (htclean run) auto folds the minor cycle into next for a "
          "cube's channels and keeps a deconvolve job for an mfs run; submit folds it for both",
          choice("auto", "submit", "pool")),
    Param("execution.pegasus_home", None,
          "Pegasus installed at this path on the execute nodes (or in the container): pool "
          "jobs use it, and Pegasus ships them no worker package (19 MB, unpacked by every "
          "job); the submit host's own jobs always use the submit host's Pegasus",
          text(nullable=True)),
    Param("execution.retries", 3, "retries of a failed compute job (dagman.retry)",
          integer(0, 100)),
    Param("execution.request_cpus", 2, "CPU cores per compute job", integer(1, 256)),
    Param("execution.request_memory", "8GB",
          "memory per compute job (HTCondor units: 1GB = 1024MB; a plain number is MB)",
          quantity(lambda v: units.size_bytes(v, "MB", binary=True), positive=True)),
    Param("execution.disk_margin", "1GB", "added to 2 x the inputs' size for request_disk",
          quantity(lambda v: units.size_bytes(v, "MB", binary=True))),
    Param("execution.gpu.capability", 8.0, "minimum CUDA compute capability (require_gpus)",
          number(1.0)),
    Param("execution.gpu.memory_mb", 24000, "minimum GPU memory in MB (require_gpus)",
          integer(0)),
    Param("execution.gpu.driver", 12.0, "minimum CUDA driver version (require_gpus)",
          number(1.0)),
    Param("execution.requirements", None, "extra HTCondor requirements (a ClassAd expression)",
          classad_expression),
    Param("execution.project", None, "OSPool project name (+ProjectName)", text(nullable=True)),
    Param("execution.attributes", None,
          "extra job ClassAd attributes, name: expression (e.g. +WantOSPoolGPUs: true)",
          mapping_of(lambda v: v)),
    Param("execution.throttles", None,
          f"maximum concurrent jobs per category ({', '.join(CATEGORIES)})",
          mapping_of(integer(1))),
    Param("execution.maxpre", 2, "sub-workflow plannings at a time (dagman.maxpre)",
          integer(1, 100)),
    Param("execution.jobs", 0, "local engine: jobs at a time; 0 = CPU cores", integer(0)),
    # output
    Param("output.dir", "htclean-out", "where the products and the run's records go", text()),
    Param("output.run_id", None, "names this run's files (set by htclean plan); null = generate",
          text(nullable=True, pattern=r"[A-Za-z0-9_.-]+")),
    Param("output.group", None,
          "set by htclean plan in a cube's per-channel configurations: the output channel "
          "they image; leave null", integer(0, nullable=True)),
    Param("output.blank_channels", None,
          "set by htclean plan for a cube: the output channels with no unflagged data (blank "
          "planes, no workflow); leave null", index_list),
    Param("output.previews", True, "write the PNG previews of the products", boolean),
)

BY_PATH: dict[str, Param] = {p.path: p for p in PARAMETERS}
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(p.section for p in PARAMETERS))
SECTION_INFO = {
    "data": "the observation",
    "image": "image geometry and product names",
    "weighting": "visibility weighting (CASA's definitions)",
    "gridder": "gridding and degridding (ducc0 wgridder on the CPU, CuPy on the GPU)",
    "deconvolution": "the minor cycle and the major-cycle loop",
    "restore": "the restoring beam",
    "partition": "how the data are split into parts, one job each",
    "execution": "where and how jobs run (HTCondor requests, retries, throttles)",
    "output": "where the results go",
}

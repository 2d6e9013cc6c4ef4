"""The htclean configuration: every parameter declared once, with its default and meaning.

The declarations in ``PARAMETERS`` drive validation (``validate``), the commented template
(``template``), the resolved configuration that travels with every job (``resolve``) and the
parsed settings the code uses (``parse``: quantities in base units: radians, Jy, bytes).
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from htclean.imaging import units
from htclean.imaging.errors import InputError
from htclean.imaging.geometry import psf_shape
from htclean.workflows.config_checks import (
    boolean,
    choice,
    classad_expression,
    container_image,
    image_size,
    integer,
    mapping_of,
    ms_list_problems,
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
              "restore")

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
    # image
    Param("image.name", "htclean", "prefix of the products: NAME-image.fits, NAME-psf.fits, ...",
          text(pattern=r"[A-Za-z0-9_.-]+")),
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
)

BY_PATH: dict[str, Param] = {p.path: p for p in PARAMETERS}
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(p.section for p in PARAMETERS))
SECTION_INFO = {
    "data": "the observation",
    "image": "image geometry and product names",
    "weighting": "visibility weighting (CASA's definitions)",
    "gridder": "gridding and degridding (ducc0 wgridder on the CPU, CuPy on the GPU)",
    "deconvolution": "the minor cycle and the major-cycle loop",
    "partition": "how the data are split into parts, one job each",
    "execution": "where and how jobs run (HTCondor requests, retries, throttles)",
    "output": "where the results go",
}


# --- loading, validation, resolution -------------------------------------------------------


def _flatten(raw: dict, prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings to dotted keys, stopping at declared leaf parameters."""
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"{prefix}{key}"
        if path in BY_PATH or not isinstance(value, dict):
            flat[path] = value
        else:
            flat.update(_flatten(value, path + "."))
    return flat


def _unknown(path: str) -> str:
    """'unknown key', with the closest declared name as a hint: a section for a section, a key
    of the same section for a key."""
    if "." not in path:
        candidates = list(SECTIONS)
    else:
        section = path.split(".", 1)[0]
        candidates = [p for p in BY_PATH if p.startswith(section + ".")] or list(BY_PATH)
    close = difflib.get_close_matches(path, candidates, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown {'section' if '.' not in path else 'key'}{hint}"


class _Loader(yaml.SafeLoader):
    """YAML 1.2's floats: ``1e-6`` is a number, as users write it (YAML 1.1, PyYAML's
    default, wants ``1.0e-6`` and reads ``1e-6`` as a string)."""


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in
                                   yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def read_yaml(path: str | os.PathLike) -> dict:
    """Read a configuration file; raise ConfigError naming the file when it is not a mapping."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(str(p), "no such configuration file")
    try:
        raw = yaml.load(p.read_text(), Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(str(p), f"not valid YAML{where}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(str(p), "must be a YAML mapping of sections (data, image, ...)")
    return raw


def validate(raw: dict, base_dir: str | os.PathLike = ".",
             check_files: bool = True) -> list[ConfigError]:
    """All problems of a raw configuration, one ConfigError each (empty list: valid)."""
    errors: list[ConfigError] = []
    for section, value in raw.items():
        if section not in SECTIONS:
            errors.append(ConfigError(str(section), _unknown(str(section))))
        elif not isinstance(value, dict):
            errors.append(ConfigError(section, f"must be a mapping of keys, got {value!r}"))
    flat = _flatten({s: v for s, v in raw.items() if s in SECTIONS and isinstance(v, dict)})
    parsed: dict[str, Any] = {}
    for path, value in flat.items():
        if path not in BY_PATH:
            errors.append(ConfigError(path, _unknown(path)))
            continue
        try:
            parsed[path] = BY_PATH[path].check(value)
        except ValueError as exc:
            errors.append(ConfigError(path, str(exc)))
    malformed = {s for s, v in raw.items() if not isinstance(v, dict)}
    for p in PARAMETERS:
        if p.default is REQUIRED and p.path not in flat and p.section not in malformed:
            errors.append(ConfigError(p.path, f"is required (for example {p.example!r})"))
    if errors:
        return errors
    for p in PARAMETERS:
        parsed.setdefault(p.path, p.check(p.default) if p.default is not REQUIRED else None)
    errors.extend(_consistency(flat, parsed, Path(base_dir), check_files))
    return errors


def resolve_precision(precision: str, epsilon: float) -> str:
    """gridder.precision as the gridder uses it: ``auto`` is single where epsilon allows."""
    if precision == "auto":
        return "single" if epsilon >= SINGLE_EPSILON else "double"
    return precision


def image_memory_bytes(nx: int, ny: int, precision: str, psf_oversize: float = 1.0) -> float:
    """Rough peak memory of a grid job: the 2x padded complex grid of the largest product (the
    PSF), plus the PSF, dirty and model images."""
    item = 8 if precision == "double" else 4
    pnx, pny = psf_shape(nx, ny, psf_oversize)
    return pnx * pny * (4 * 2 * item + 2 * item) + nx * ny * 4 * item


def _consistency(flat: dict, parsed: dict, base: Path, check_files: bool) -> Iterable[ConfigError]:
    if flat.get("weighting.robust") is not None and parsed["weighting.type"] != "briggs":
        yield ConfigError("weighting.robust",
                          f"only applies to weighting.type briggs, not {parsed['weighting.type']}")
    multiscale = parsed["deconvolution.algorithm"] == "multiscale"
    if flat.get("deconvolution.scales") is not None and not multiscale:
        yield ConfigError("deconvolution.scales", "only applies to algorithm multiscale")
    nterms = parsed["deconvolution.nterms"]
    if nterms > 1 and parsed["image.reference_frequency"] is None \
            and any("://" in m for m in parsed["data.ms"]):
        yield ConfigError("image.reference_frequency", "is required with deconvolution.nterms "
                          "> 1 when data.ms is a URL (htclean cannot read a remote MS's band)")
    if nterms > 1 and parsed["deconvolution.algorithm"] == "clark":
        yield ConfigError("deconvolution.nterms", f"{nterms} terms need algorithm hogbom or "
                          "multiscale (the multi-term minor cycle has no Clark variant)")
    if parsed["output.run_id"] is not None and parsed["output.run_id"] == parsed["image.name"]:
        yield ConfigError("output.run_id", f"must differ from image.name "
                          f"({parsed['image.name']!r}): the run's own files (RUN_ID-psf.fits, "
                          "...) would take the products' names (NAME-psf.fits, ...)")
    if parsed["partition.parts"] is not None and parsed["partition.max_size"] is not None:
        yield ConfigError("partition.max_size", "give partition.parts or partition.max_size, "
                          "not both")
    if parsed["gridder.precision"] == "single" and parsed["gridder.epsilon"] < SINGLE_EPSILON:
        yield ConfigError("gridder.epsilon", f"must be 1e-5 or more with gridder.precision "
                          f"single (float32 cannot reach {parsed['gridder.epsilon']:g}); use "
                          "double")
    nx, ny = parsed["image.size"]
    precision = resolve_precision(parsed["gridder.precision"], parsed["gridder.epsilon"])
    need = image_memory_bytes(nx, ny, precision, parsed["image.psf_oversize"])
    have = parsed["execution.request_memory"]
    if need > have:
        oversize = parsed["image.psf_oversize"]
        yield ConfigError("image.size", f"a {nx}x{ny} image (PSF x{oversize:g}) "
                          f"needs about {units.format_bytes(need)} to grid, more than "
                          f"execution.request_memory ({units.format_bytes(have)})")
    pnx, pny = psf_shape(nx, ny, parsed["image.psf_oversize"])
    if max(pnx, pny) * parsed["image.scale"] / 2 >= 1:
        yield ConfigError("image.psf_oversize", f"a PSF of {pnx}x{pny} pixels reaches beyond the "
                          "sky hemisphere at this image.scale; lower it or the image size")
    fov = max(nx, ny) * parsed["image.scale"]
    if fov >= math.pi / 2:
        yield ConfigError("image.scale", f"the field of view ({units.format_angle(fov)}) "
                          "must be well below 90 degrees")
    for key, message in ms_list_problems(parsed, base, check_files):
        yield ConfigError(key, message)
    staging = parsed["execution.staging"]
    if staging:
        yield from _check_url("execution.staging", staging)
    data_conf, site = parsed["execution.data_configuration"], parsed["execution.site"]
    if site in ("ospool", "path") and data_conf in ("auto", "nonsharedfs") \
            and not parsed["execution.staging"]:
        yield ConfigError("execution.staging", f"is required on site {site} with nonsharedfs "
                          "(an osdf:// directory under your /ospool/<ap>/data/<user>)")


def _check_url(path: str, url: str) -> Iterable[ConfigError]:
    """A staging URL: a scheme Pegasus transfers, and for osdf/file a path after three slashes."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    schemes = ("osdf", "pelican", "file", "http", "https", "gsiftp", "s3", "scp")
    if parts.scheme not in schemes:
        yield ConfigError(path, f"{url!r} is not a URL with one of the schemes "
                          f"{', '.join(s + '://' for s in schemes)}")
    elif parts.scheme in ("osdf", "file") and parts.netloc:
        yield ConfigError(path, f"{url!r} names host {parts.netloc!r}; {parts.scheme} URLs give "
                          f"the path after three slashes: {parts.scheme}:///{parts.netloc}"
                          f"{parts.path}")
    elif not parts.path.startswith("/"):
        yield ConfigError(path, f"{url!r} has no absolute path")


def resolve(raw: dict, base_dir: str | os.PathLike = ".") -> dict:
    """The full configuration: every key present (defaults filled), paths made absolute.

    The result is what travels with every job as the run's ``config.yml``; it keeps the user's
    own spellings (``3asec``), so ``parse`` gives the same numbers everywhere.
    """
    base = Path(base_dir).resolve()
    flat = _flatten(raw)
    out: dict[str, dict] = {s: {} for s in SECTIONS}
    for p in PARAMETERS:
        value = flat.get(p.path, None if p.default is REQUIRED else p.default)
        briggs = flat.get("weighting.type") == "briggs"
        if p.path == "weighting.robust" and value is None and briggs:
            value = 0.0
        if p.path == "deconvolution.scales" and value is None:
            value = [0, 4, 16] if flat.get("deconvolution.algorithm") == "multiscale" else None
        if p.path == "data.ms" and isinstance(value, list):
            value = [_absolute(base, v) for v in value]
        elif p.path in ("data.ms", "output.dir") and value:
            value = _absolute(base, value)
        node = out
        *parents, leaf = p.path.split(".")
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return out


def _absolute(base: Path, value: Any) -> Any:
    """A local path made absolute against ``base``; a URL (or a non-string) as it is."""
    if not isinstance(value, str) or "://" in value or os.path.isabs(value):
        return value
    return str((base / value).resolve())


def parse(resolved: dict) -> dict:
    """Settings for the code: nested dict, quantities in base units (rad, Jy, bytes)."""
    flat = _flatten(resolved)
    out: dict[str, dict] = {}
    for p in PARAMETERS:
        if p.path in flat:
            value = flat[p.path]  # an explicit null stays null (e.g. execution.container)
        elif p.default is REQUIRED:
            raise ConfigError(p.path, "is required")
        else:
            value = p.default
        try:
            parsed = p.check(value)
        except ValueError as exc:
            raise ConfigError(p.path, str(exc)) from None
        node = out
        *parents, leaf = p.path.split(".")
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = parsed
    out["image"]["nx"], out["image"]["ny"] = out["image"]["size"]
    out["image"]["cell"] = out["image"]["scale"]
    return out


def load(path: str | os.PathLike, check_files: bool = True) -> tuple[dict, dict]:
    """Read, validate and resolve a configuration file: (resolved raw dict, parsed settings).

    Raises ConfigError for the first problem; ``validate`` lists them all.
    """
    raw = read_yaml(path)
    base = Path(path).resolve().parent
    errors = validate(raw, base, check_files)
    if errors:
        raise errors[0]
    resolved = resolve(raw, base)
    return resolved, parse(resolved)


def dump(resolved: dict, path: str | os.PathLike) -> None:
    """Write a resolved configuration atomically."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(yaml.safe_dump(resolved, sort_keys=False, default_flow_style=None))
    os.replace(tmp, p)


def template(values: dict[str, Any] | None = None) -> str:
    """A configuration with every key and a comment on each, ready to edit; ``values`` (dotted
    key -> value) replace the defaults, e.g. ``{"data.ms": "obs.ms", "image.size": 180}``."""
    values = values or {}
    lines = ["# htclean configuration. Every key is optional except data.ms and image.scale.",
             "# Check it with: htclean validate THIS_FILE", ""]
    for section in SECTIONS:
        lines.append(f"# {SECTION_INFO[section]}")
        lines.append(f"{section}:")
        current_sub = None
        for p in (p for p in PARAMETERS if p.section == section):
            parts = p.key.split(".")
            indent = "  "
            if len(parts) == 2:
                if parts[0] != current_sub:
                    lines.append(f"  {parts[0]}:")
                    current_sub = parts[0]
                indent = "    "
            value = p.example if p.default is REQUIRED else p.default
            value = values.get(p.path, value)
            dumped = yaml.safe_dump(value, default_flow_style=True).strip()
            dumped = dumped.removesuffix("\n...").removesuffix("...").strip()
            lines.append(f"{indent}# {p.info}")
            lines.append(f"{indent}{parts[-1]}: {dumped}")
        lines.append("")
    return "\n".join(lines)

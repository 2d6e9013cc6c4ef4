"""The htclean configuration: reading, validating, resolving and parsing it.

The declarations in ``PARAMETERS`` (config_keys.py) drive validation (``validate``), the
commented template (``template``), the resolved configuration that travels with every job
(``resolve``) and the parsed settings the code uses (``parse``: quantities in base units:
radians, Jy, bytes).
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from htclean.imaging import units
from htclean.imaging.geometry import psf_shape
from htclean.workflows.config_checks import ms_list_problems
from htclean.workflows.config_keys import (  # noqa: F401 (the keys are config's API too)
    BY_PATH,
    CATEGORIES,
    PARAMETERS,
    REQUIRED,
    SECTION_INFO,
    SECTIONS,
    SINGLE_EPSILON,
    ConfigError,
    Param,
)

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


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML 1.2's floats: ``1e-6`` is a number, as users write it (YAML 1.1, PyYAML's
    default, wants ``1.0e-6`` and reads ``1e-6`` as a string). libyaml's parser where PyYAML
    has it (every job reads the configuration: 0.7 ms a read, not 4.5)."""


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
    yield from _spectral(flat, parsed)
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


def _spectral(flat: dict, parsed: dict) -> Iterable[ConfigError]:
    """The channel selection, cube and continuum keys against the rest (the MS's own
    channels are checked at plan time: workflows/cube.py)."""
    cube = parsed["image.mode"] == "cube"
    if not cube:
        for key in ("image.width", "image.rest_frequency", "restore.common_beam"):
            if flat.get(key) not in (None, BY_PATH[key].default):
                yield ConfigError(key, "only applies to image.mode cube")
    if cube and parsed["deconvolution.nterms"] > 1:
        yield ConfigError("deconvolution.nterms", f"{parsed['deconvolution.nterms']} Taylor "
                          "terms are a multi-frequency synthesis (image.mode mfs); a cube "
                          "cleans every channel on its own: use nterms 1")
    if cube and parsed["image.primary_beam"]:
        yield ConfigError("image.primary_beam", "is not supported with image.mode cube yet")
    if cube and parsed["partition.axis"] == "channel":
        yield ConfigError("partition.axis", "a cube splits along channels itself (one "
                          "workflow per output channel); split its parts by time or baseline")
    nchan, width = parsed["image.nchan"], parsed["image.width"]
    if cube and nchan is not None and nchan % width:
        yield ConfigError("image.width", f"{width} channels per output channel does not "
                          f"divide image.nchan {nchan}")
    if parsed["data.continuum.fitorder"] and parsed["data.continuum.linefree"] is None:
        yield ConfigError("data.continuum.fitorder", "needs data.continuum.linefree")


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

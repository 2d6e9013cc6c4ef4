"""Value checkers of the configuration schema: each returns the parsed value or raises
ValueError with the reason (the caller adds the key path)."""

from __future__ import annotations

import math
import os
import re
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping", type(None): "nothing (null)"}.get(
        type(value), type(value).__name__)


def integer(lo: int | None = None, hi: int | None = None, nullable: bool = False):
    def check(v):
        if v is None and nullable:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"must be an integer, got {_type_name(v)} {v!r}")
        if lo is not None and v < lo:
            raise ValueError(f"must be >= {lo}, got {v}")
        if hi is not None and v > hi:
            raise ValueError(f"must be <= {hi}, got {v}")
        return v
    return check


def number(lo: float | None = None, hi: float | None = None, nullable: bool = False,
           lo_open: bool = False):
    def check(v):
        if v is None and nullable:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"must be a number, got {_type_name(v)} {v!r}")
        v = float(v)
        if not math.isfinite(v):
            raise ValueError(f"must be finite, got {v}")
        if lo is not None and (v <= lo if lo_open else v < lo):
            raise ValueError(f"must be {'>' if lo_open else '>='} {lo:g}, got {v:g}")
        if hi is not None and v > hi:
            raise ValueError(f"must be <= {hi:g}, got {v:g}")
        return v
    return check


def boolean(v):
    if not isinstance(v, bool):
        raise ValueError(f"must be true or false, got {_type_name(v)} {v!r}")
    return v


def choice(*options: str, nullable: bool = False):
    def check(v):
        if v is None and nullable:
            return None
        if v not in options:
            raise ValueError(f"must be one of {', '.join(options)}; got {v!r}")
        return v
    return check


def text(nullable: bool = False, pattern: str | None = None):
    def check(v):
        if v is None and nullable:
            return None
        if not isinstance(v, str) or not v:
            raise ValueError(f"must be a non-empty string, got {_type_name(v)} {v!r}")
        if pattern and not re.fullmatch(pattern, v):
            raise ValueError(f"{v!r} may only contain letters, digits, '.', '_' and '-'")
        return v
    return check


def text_list(pattern: str | None = None):
    """A non-empty string or a non-empty list of them, parsed as a list."""
    one = text(pattern=pattern)

    def check(v):
        if isinstance(v, list):
            if not v:
                raise ValueError("must name at least one item, got an empty list")
            return [one(x) for x in v]
        return [one(v)]
    return check


def quantity(parser: Callable[[Any], float], positive: bool = False, nullable: bool = False):
    def check(v):
        if v is None and nullable:
            return None
        q = parser(v)
        if positive and q <= 0:
            raise ValueError(f"must be positive, got {v!r}")
        if q < 0:
            raise ValueError(f"must not be negative, got {v!r}")
        return q
    return check


def image_size(v):
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v, v]
    if (not isinstance(v, list) or len(v) != 2
            or any(isinstance(n, bool) or not isinstance(n, int) for n in v)):
        raise ValueError(f"must be an integer or a list [width, height], got {v!r}")
    for n in v:
        if n < 16:
            raise ValueError(f"must be at least 16 pixels, got {n}")
        if n % 2:
            raise ValueError(f"must be even (the phase centre sits at pixel N/2), got {n}")
        if n > 65536:
            raise ValueError(f"must be at most 65536 pixels, got {n}")
    return [int(v[0]), int(v[1])]


def scale_list(v):
    if (not isinstance(v, list) or not v
            or any(isinstance(s, bool) or not isinstance(s, (int, float)) or s < 0 for s in v)):
        raise ValueError(f"must be a non-empty list of scales in pixels (>= 0), got {v!r}")
    return sorted(float(s) for s in v)


def index_list(v):
    """None, or a list of distinct integers >= 0, sorted."""
    if v is None:
        return None
    if not isinstance(v, list) or any(isinstance(i, bool) or not isinstance(i, int) or i < 0
                                      for i in v):
        raise ValueError(f"must be a list of integers >= 0, got {v!r}")
    return sorted(set(v))


def mapping_of(value_check: Callable[[Any], Any]):
    def check(v):
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ValueError(f"must be a mapping, got {_type_name(v)} {v!r}")
        return {str(k): value_check(x) for k, x in v.items()}
    return check


def sky_position(v):
    if v is None:
        return None
    from astropy.coordinates import SkyCoord

    try:
        c = SkyCoord(v, frame="icrs", unit=("hourangle", "deg"))
    except Exception as exc:  # astropy raises several types for unparsable positions
        raise ValueError(f"is not a sky position like '03h32m38.0s -27d47m00s': {exc}") from None
    return [float(c.ra.rad), float(c.dec.rad)]


def classad_expression(v):
    if v is None:
        return None
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"must be a ClassAd expression string, got {v!r}")
    try:
        import classad2
    except ImportError:  # htcondor bindings absent: generators still validate the syntax later
        return v
    try:
        classad2.ExprTree(v)
    except Exception:
        raise ValueError(f"is not a valid ClassAd expression: {v!r}") from None
    return v


# What Pegasus accepts as a Singularity/Apptainer image file name: it takes the image type
# from everything after the FIRST '.' of the URL's last component (Container.computeLFN) and
# refuses any other suffix; a name with a ':' tag or without a dot has none.
IMAGE_SUFFIXES = (".sif", ".simg", ".img", ".tar", ".tar.gz", ".tar.bz2", ".cpio", ".cpio.gz")
IMAGE_SCHEMES = ("docker", "shub", "library", "oras")   # pulled by Apptainer, no suffix check


def container_image(v):
    """An Apptainer image the real pegasus-plan accepts: an absolute path (a CVMFS image
    directory or a .sif), or a URL (osdf://, https://, docker://...); null for none."""
    if v is None:
        return None
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"must be an absolute path or a URL, got {_type_name(v)} {v!r}")
    from urllib.parse import urlparse

    parsed = urlparse(v)
    if parsed.scheme in IMAGE_SCHEMES:
        return v
    if not parsed.scheme and not v.startswith("/"):
        raise ValueError(f"{v!r} must be an absolute path or a URL (osdf://, https://, "
                         "docker://)")
    name = parsed.path.rstrip("/").rsplit("/", 1)[-1]
    if ":" in name or "." not in name:
        return v
    suffix = name[name.index("."):]
    if suffix not in IMAGE_SUFFIXES:
        ends = [s for s in IMAGE_SUFFIXES if name.endswith(s)]
        last = max(ends, key=len) if ends else ".sif"
        better = name[:len(name) - len(last) if ends else len(name)].replace(".", "_") + last
        raise ValueError(f"{name!r}: Pegasus takes the image type from everything after the "
                         f"first '.' ({suffix!r}) and refuses it; rename it with one suffix, "
                         f"e.g. {better} (accepted: {', '.join(IMAGE_SUFFIXES)})")
    return v


def ms_list_problems(parsed: dict, base: Path, check_files: bool) -> Iterator[tuple[str, str]]:
    """(key, problem) of every data.ms entry: a supported URL (site not local, data.size
    given) or an existing MS directory or tar; no two with the same name (each travels as
    NAME.tar)."""
    site, listed = parsed["execution.site"], parsed["data.ms"]
    stems = [Path(m.rstrip("/")).name.removesuffix(".tar") for m in listed]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        yield ("data.ms", f"two Measurement Sets are named {dup[0]!r}; each travels as "
               "NAME.tar, so their names must differ")
        return
    for ms in listed:
        if "://" in ms:
            if not ms.startswith(("osdf://", "pelican://", "http://", "https://", "file://")):
                yield ("data.ms", f"unsupported URL scheme in {ms!r}")
            if len(listed) > 1:
                yield ("data.ms", f"{ms!r}: a URL can only be imaged alone (htclean cannot "
                       "measure a remote MS, data.size gives one size)")
            elif parsed["data.size"] is None:
                yield ("data.size", "is required when data.ms is a URL (htclean cannot "
                       "measure a remote MS)")
            if site == "local":
                yield ("data.ms", "execution.site local needs a local MS, not a URL")
            continue
        if not check_files:
            continue
        path = (base / ms) if not os.path.isabs(ms) else Path(ms)
        if not path.exists():
            yield ("data.ms", f"no such Measurement Set: {path}")
        elif path.is_dir() and not (path / "table.dat").exists():
            yield ("data.ms", f"{path} is a directory but not a casacore table")
        elif path.is_file() and not tarfile.is_tarfile(path):
            yield ("data.ms", f"{path} is neither a Measurement Set nor a tar of one")

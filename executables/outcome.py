"""How a job ends: exit status classes, the one-line reason of a failure, and the sha256 of
the files a job writes and reads (executables/record.py uses them; ``htclean`` commands map
their own failures the same way).

    0 success; 1 internal (retried); 2 input: configuration or data (never retried);
    3 resources: space, a writable place, memory (retried); 4 integrity: an input differs
    from the sha256 recorded when it was written (retried)
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from pathlib import Path
from typing import Any

from htclean.imaging.errors import InputError

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT, EXIT_RESOURCES, EXIT_INTEGRITY = 0, 1, 2, 3, 4
EXIT_CLASSES = {EXIT_OK: "success", EXIT_INTERNAL: "internal", EXIT_INPUT: "input",
                EXIT_RESOURCES: "resources", EXIT_INTEGRITY: "integrity"}
# OSErrors that say the machine lacks something (space, a writable place), not a bug
RESOURCE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES,
                   errno.EPERM}


class IntegrityError(Exception):
    """An input's sha256 differs from the one recorded when it was written."""


def classify(exc: BaseException) -> tuple[int, str]:
    """(exit status, one-line reason) of a failure, by class (see the module docstring)."""
    if isinstance(exc, IntegrityError):
        return EXIT_INTEGRITY, f"integrity: {_one_line(exc)}"
    if isinstance(exc, InputError):
        return EXIT_INPUT, _one_line(exc)
    if isinstance(exc, MemoryError):
        return EXIT_RESOURCES, "resources: out of memory"
    if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS:
        where = f": {exc.filename}" if exc.filename else ""
        return EXIT_RESOURCES, f"resources: {exc.strerror or _one_line(exc)}{where}"
    return EXIT_INTERNAL, f"{type(exc).__name__}: {_one_line(exc)}"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def sha256_of(path: str | os.PathLike) -> str:
    """The sha256 (hex) of a file, read 1 MiB at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_checksums(path: str | None) -> dict[str, str]:
    """{name: sha256} from a file of ``<sha256>  <name>`` lines; {} without one. A file that
    cannot be read is an internal error (the engine wrote it)."""
    if not path:
        return {}
    out = {}
    for line in Path(path).read_text().splitlines():
        digest, _, name = line.strip().partition("  ")
        if digest and name:
            out[os.path.normpath(name)] = digest
    return out


def file_digests(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """{path as given: {"sha256", "bytes"}} of the regular files among ``paths``."""
    out: dict[str, dict[str, Any]] = {}
    for p in dict.fromkeys(paths):
        with contextlib.suppress(OSError):
            if p.is_file():
                out[str(p)] = {"sha256": sha256_of(p), "bytes": p.stat().st_size}
    return out

"""Atomic outputs: a file is written under a temporary name beside its final one and renamed
only once whole, so a job that dies leaves nothing that could be taken for its output."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def temp_name(path: str | os.PathLike) -> Path:
    """A temporary name beside ``path`` (same directory, so ``os.replace`` is atomic)."""
    p = Path(path)
    return p.with_name(f".{p.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``path`` only if the block succeeds."""
    final = Path(path)
    tmp = temp_name(final)
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"output {final} was not written")
        os.replace(tmp, final)
    except OSError as exc:
        if exc.filename in (None, str(tmp)):  # a write, flush (ENOSPC) or the temporary
            raise OSError(exc.errno, exc.strerror, str(final.absolute())) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return write_bytes_atomic(path, (json.dumps(obj, indent=1) + "\n").encode())



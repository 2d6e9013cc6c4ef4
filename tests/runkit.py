"""Small `htclean run`s for the reliability tests (faults, determinism, bad data).

A tiny MS (6 antennas, 8 integrations, 4 channels), a 32 x 32 image and few major cycles, so
one run is about ten jobs. Runs start as `htclean run` processes so several go at once and a
test can kill one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import tinyms
import yaml

from htclean.engine.state import read_attempts
from htclean.imaging import fits

NAME = "rel"
RUN_ID = "relrun"
KINDS = ("image", "model", "residual", "psf", "dirty")
SOURCES = [(0.0, 0.0, 1.0), (14 * tinyms.ASEC, -8 * tinyms.ASEC, 0.4)]


def write_ms(path: Path) -> Path:
    tinyms.write_ms(str(path), tinyms.TinyObs(nant=6, ntime=8, nchan=4, noise=0.01,
                                              sources=SOURCES))
    return path


def write_config(where: Path, ms: Path, parts: int = 1, cycles: int = 2, threads: int = 1,
                 **sections: dict) -> Path:
    cfg = {"data": {"ms": str(ms)},
           "image": {"name": NAME, "size": 32, "scale": "2asec"},
           "gridder": {"epsilon": 1.0e-6, "threads": threads, "device": "cpu"},
           "deconvolution": {"niter": 200, "gain": 0.2, "mgain": 0.5, "auto_threshold": 2.0,
                             "max_cycles": cycles},
           "partition": {"parts": parts, "axis": "time"},
           "execution": {"request_memory": "1GB", "retries": 3},
           "output": {"run_id": RUN_ID}}
    for name, keys in sections.items():
        cfg.setdefault(name, {}).update(keys)
    where.mkdir(parents=True, exist_ok=True)
    path = where / "config.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def start(cfg: Path, out: Path, *args: str, env: dict[str, str] | None = None,
          log: Path | None = None) -> subprocess.Popen:
    """``htclean run CFG -o OUT ARGS`` in the background (stderr to ``log``)."""
    err = open(log or out.parent / f"{out.name}.stderr", "ab")  # noqa: SIM115 (kept by the child)
    cmd = [sys.executable, "-m", "htclean.workflows.cli", "run", str(cfg), "-o", str(out),
           "--jobs", "1", *args]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HTCLEAN_")}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err,
                            env={**clean, **(env or {})})
    err.close()
    return proc


def stderr_of(out: Path) -> str:
    path = out.parent / f"{out.name}.stderr"
    return path.read_text(errors="replace") if path.exists() else ""


def products(out: Path) -> dict[str, bytes]:
    """The FITS data (raw bytes of the arrays) and every component list of a finished run."""
    found = {}
    for kind in KINDS:
        data = fits.read_fits(out / "outputs" / f"{NAME}-{kind}.fits")[0]
        found[f"{kind}.fits"] = np.ascontiguousarray(data).tobytes()
    for path in sorted((out / "outputs").glob(f"{RUN_ID}-model-c*.json")):
        found[path.name] = path.read_bytes()
    summary = json.loads((out / "outputs" / f"{NAME}-summary.json").read_text())
    found["summary"] = json.dumps(summary, sort_keys=True).encode()
    return found


def attempts(out: Path) -> list[dict]:
    return read_attempts(out / "engine")

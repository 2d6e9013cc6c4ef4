"""Bit-identical runs at the defaults: the same configuration and data give the same FITS
data, component lists and summary whatever else happens.

A simulated observation (`htclean simulate`, the demo's field) and the configuration that
`htclean init-config --ms` writes, changed only where the issue's run was (2 parts,
auto_threshold 3): single-precision gridding on the planned 2 threads, as a default run.
Runs compared with the first:

- a second run, the same way;
- ``--jobs 1`` with ``OMP_NUM_THREADS=1`` (every job finds one core: the plan's thread count
  must still fix the bits, not the cores);
- a run killed with SIGKILL once its first major cycle's residuals are done, then finished
  with ``--resume``.

Before the planned-thread gridding, two such runs differed by ~6e-8 of the peak (ducc0 sums
several threads' samples in an order of their timing).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from htclean.engine.state import read_attempts
from htclean.imaging import fits

NAME = "det"
KINDS = ("image", "model", "residual", "psf", "dirty")


def htclean(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("HTCLEAN_") and k != "OMP_NUM_THREADS"}
    return subprocess.Popen([sys.executable, "-m", "htclean.workflows.cli", *args],
                            env={**clean, **(env or {})}, **kw)


def checked(*args: str, env: dict[str, str] | None = None) -> None:
    proc = htclean(*args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out


def products(run: Path) -> dict[str, bytes]:
    """FITS data, every cycle's component list and the summary of a finished run."""
    found = {}
    for kind in KINDS:
        data = fits.read_fits(run / "outputs" / f"{NAME}-{kind}.fits")[0]
        found[f"{kind}.fits"] = np.ascontiguousarray(data).tobytes()
    for path in sorted((run / "outputs").glob("*-model-c*.json")):
        found[path.name.split("-", 2)[-1]] = path.read_bytes()  # less the run's id
    summary = json.loads((run / "outputs" / f"{NAME}-summary.json").read_text())
    found["summary"] = json.dumps(summary, sort_keys=True).encode()
    return found


def succeeded(run: Path) -> set[str]:
    return {a["job"] for a in read_attempts(run / "engine") if a["status"] == "succeeded"}


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("determinism")
    ms = root / "obs.ms"
    checked("simulate", str(ms))
    cfg = root / "config.yml"
    checked("init-config", str(cfg), "--ms", str(ms))
    text = yaml.safe_load(cfg.read_text())
    assert text["gridder"]["threads"] == 0 and text["gridder"]["precision"] == "auto"
    text["image"]["name"] = NAME
    text["partition"]["parts"] = 2
    text["deconvolution"].update(auto_threshold=3, niter=2000)
    cfg.write_text(yaml.safe_dump(text))
    return cfg


@pytest.fixture(scope="module")
def runs(config) -> dict[str, Path]:
    root = config.parent
    out = {key: root / key for key in ("first", "second", "one-core", "resumed")}
    for key in ("first", "second"):
        checked("run", str(config), "-o", str(out[key]))
    checked("run", str(config), "-o", str(out["one-core"]), "--jobs", "1",
            env={"OMP_NUM_THREADS": "1"})
    proc = htclean("run", str(config), "-o", str(out["resumed"]), "--jobs", "1",
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out["resumed"] / "engine").exists() and \
                any(j.startswith("residual-c01") for j in succeeded(out["resumed"])):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out["resumed"] / "outputs" / f"{NAME}-image.fits").exists()
    checked("run", str(config), "-o", str(out["resumed"]), "--resume")
    return out


def test_the_plan_fixes_the_thread_count(runs):
    planned = yaml.safe_load((runs["first"] / "config.yml").read_text())
    assert planned["gridder"]["threads"] == planned["execution"]["request_cpus"] == 2


@pytest.mark.parametrize("key", ["second", "one-core", "resumed"])
def test_runs_are_bit_identical_at_the_defaults(runs, key):
    first, other = products(runs["first"]), products(runs[key])
    assert first.keys() == other.keys()
    assert sum(k.endswith(".json") for k in first) >= 2  # component lists of the cycles
    for name in first:
        assert first[name] == other[name], f"{key}: {name} differs from the first run"

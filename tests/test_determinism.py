"""Two runs of one configuration give bit-identical FITS data, component lists and summary,
with 1 part and with 2 parts (the gather sums partials in the order the plan names them;
gridder.threads fixed in the configuration)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import runkit

THREADS = 2
CASES = {"one-part": 1, "two-parts": 2}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("determinism")
    ms = runkit.write_ms(root / "obs.ms")
    procs = []
    for key, parts in CASES.items():
        for i in range(2):
            where = root / f"{key}-{i}"
            cfg = runkit.write_config(where, ms, parts=parts, threads=THREADS)
            procs.append((key, where / "run", runkit.start(cfg, where / "run")))
    out: dict[str, list[Path]] = {}
    for key, run, proc in procs:
        assert proc.wait(timeout=300) == 0, runkit.stderr_of(run)
        out.setdefault(key, []).append(run)
    return out


@pytest.mark.parametrize("key", CASES)
def test_two_runs_are_bit_identical(runs, key):
    first, second = (runkit.products(r) for r in runs[key])
    assert first.keys() == second.keys()
    assert sum(k.endswith(".json") for k in first) >= 2  # component lists of the cycles
    for name in first:
        assert first[name] == second[name], f"{key}: {name} differs between two runs"
    for run in runs[key]:  # every job ran once: nothing was retried
        tries = runkit.attempts(run)
        assert {a["status"] for a in tries} == {"succeeded"}
        # the engine handed every job the sha256 of its inputs, and the jobs checked them
        records = [json.loads(Path(a["record"]).read_text()) for a in tries if a.get("record")]
        grids = [r for r in records if r["job"].startswith("grid-")]
        assert grids and all(r["inputs_verified"] for r in grids)

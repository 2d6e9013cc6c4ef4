"""The bad-data corpus: every case meets one line, an exit status of its class, no traceback,
and the outputs that existed before are untouched.

Exit status classes (executables/record.py, README "Reliability"): 2 configuration or input
data (never retried), 3 resources (space, a writable place), 4 integrity (a damaged copy),
1 internal. Plan-time cases run `htclean plan --force` over an existing plan, which must stay
as it was; job-time cases replay a job of a finished run (its command line and inputs from
the plan and the run, so they follow whatever files the workflow names) with one input made
bad, over outputs left by an earlier attempt, which must stay as they were.

A disk too small for the outputs is a real small tmpfs (needs root and mount; skipped
otherwise), an unwritable directory a read-only tmpfs (root) or a mode 0555 directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import casacore.tables as ct
import numpy as np
import pytest
import runkit
import tinyms
import yaml

from htclean.engine.catalogs import load_catalogs, local_replica
from htclean.engine.workflow_spec import load_workflow
from htclean.workflows import cli

CONFIG, DATA, RESOURCES, INTEGRITY = "configuration", "input data", "resources", "integrity"
STATUS = {CONFIG: 2, DATA: 2, RESOURCES: 3, INTEGRITY: 4}


# --- the MS and its mutations --------------------------------------------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    ms = tmp_path_factory.mktemp("bad") / "base.ms"
    tinyms.write_ms(str(ms), tinyms.TinyObs(nant=5, ntime=6, nchan=4, nspw=2, nfield=2))
    return ms


def put(column: str, change: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def mutate(ms: Path) -> None:
        with ct.table(str(ms), readonly=False, ack=False) as t:
            t.putcol(column, change(t.getcol(column)))
    return mutate


def put_sub(sub: str, column: str, row: int, value) -> Callable[[Path], None]:
    def mutate(ms: Path) -> None:
        with ct.table(str(ms / sub), readonly=False, ack=False) as t:
            t.putcell(column, row, value)
    return mutate


def remove(rel: str) -> Callable[[Path], None]:
    def mutate(ms: Path) -> None:
        target = ms / rel
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return mutate


def truncate(rel: str, keep: float) -> Callable[[Path], None]:
    def mutate(ms: Path) -> None:
        path = ms / rel
        os.truncate(path, int(path.stat().st_size * keep))
    return mutate


def not_an_ms(ms: Path) -> None:
    shutil.rmtree(ms)
    ms.mkdir()
    (ms / "notes.txt").write_text("not a table\n")


def drop_column(name: str) -> Callable[[Path], None]:
    def mutate(ms: Path) -> None:
        with ct.table(str(ms), readonly=False, ack=False) as t:
            t.removecols(name)
    return mutate


def empty_model_data(ms: Path) -> None:
    with ct.table(str(ms), readonly=False, ack=False) as t:
        t.addcols(ct.maketabdesc(ct.makearrcoldesc("MODEL_DATA", 0j, ndim=2,
                                                   valuetype="complex")))


def spw_channels(n: int, rewrite_rows: bool) -> Callable[[Path], None]:
    """Spectral window 1 gets ``n`` channels; with ``rewrite_rows`` its rows' cells too."""
    def mutate(ms: Path) -> None:
        with ct.table(str(ms / "SPECTRAL_WINDOW"), readonly=False, ack=False) as t:
            freq = 1.5e9 + np.arange(n) * 4e6
            for col, value in (("CHAN_FREQ", freq), ("CHAN_WIDTH", np.full(n, 4e6)),
                               ("EFFECTIVE_BW", np.full(n, 4e6)),
                               ("RESOLUTION", np.full(n, 4e6))):
                t.putcell(col, 1, value)
            t.putcell("NUM_CHAN", 1, n)
        if not rewrite_rows:
            return
        with ct.table(str(ms), readonly=False, ack=False) as t:
            rows = np.flatnonzero(t.getcol("DATA_DESC_ID") == 1)
            for r in rows:
                for col in ("DATA", "CORRECTED_DATA"):
                    t.putcell(col, int(r), np.ones((n, 2), np.complex64))
                t.putcell("FLAG", int(r), np.zeros((n, 2), bool))
    return mutate


def as_tar(change: Callable[[Path], None] | None = None, cut: float | None = None):
    """Make data.ms a tar of the (changed) MS, optionally cut to ``cut`` of its size."""
    def mutate(ms: Path) -> Path:
        if change is not None:
            change(ms)
        tar = ms.with_name(ms.name + ".tar")
        with tarfile.open(tar, "w") as t:
            t.add(str(ms), arcname=ms.name)
        if cut is not None:
            os.truncate(tar, int(tar.stat().st_size * cut))
        return tar
    return mutate


def garbage_tar(ms: Path) -> Path:
    tar = ms.with_name(ms.name + ".tar")
    tar.write_bytes(os.urandom(20000))
    return tar


def all_autocorrelations(ms: Path) -> None:
    put("ANTENNA2", lambda a: a * 0)(ms)
    put("ANTENNA1", lambda a: a * 0)(ms)


def one_field(ms: Path) -> None:
    put("FIELD_ID", lambda a: a * 0)(ms)


# (name, mutation, configuration changes, class, words the line must hold)
PLAN_CASES = [
    ("not-an-ms-directory", not_an_ms, {}, CONFIG, "not a casacore table"),
    ("no-table-dat", remove("table.dat"), {}, CONFIG, "not a casacore table"),
    ("truncated-table-dat", truncate("table.dat", 0.3), {}, DATA, "cannot be opened"),
    ("truncated-main-data-file", truncate("table.f0", 0.2), {}, DATA, "cannot be read"),
    ("no-spectral-window-subtable", remove("SPECTRAL_WINDOW"), {}, DATA, "SPECTRAL_WINDOW"),
    ("no-polarization-subtable", remove("POLARIZATION"), {}, DATA, "POLARIZATION"),
    ("truncated-subtable", truncate("FIELD/table.dat", 0.3), {}, DATA, "FIELD subtable"),
    ("missing-column", drop_column("CORRECTED_DATA"), {"column": "CORRECTED_DATA"}, DATA,
     "has no CORRECTED_DATA column"),
    ("column-without-values", empty_model_data, {"column": "MODEL_DATA"}, DATA,
     "MODEL_DATA column holds no values"),
    ("no-uvw-column", drop_column("UVW"), {}, DATA, "has no UVW column"),
    ("all-flagged", put("FLAG", np.ones_like), {}, DATA, "every selected sample is flagged"),
    ("all-rows-flagged", put("FLAG_ROW", np.ones_like), {}, DATA, "is flagged"),
    ("nan-data", put("DATA", lambda a: a * np.nan), {}, DATA, "NaN or Inf"),
    ("inf-data", put("CORRECTED_DATA", lambda a: a + np.inf), {"column": "CORRECTED_DATA"},
     DATA, "NaN or Inf"),
    ("nan-uvw", put("UVW", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 10,
                                               np.nan, a)), {}, DATA, "UVW is not finite"),
    ("zero-weights", put("WEIGHT", np.zeros_like), {}, DATA, "weight 0"),
    ("negative-weights", put("WEIGHT", lambda a: -a), {}, DATA, "negative WEIGHT"),
    ("no-such-field", None, {"field": 7}, DATA, "has no field 7"),
    ("no-such-spw", None, {"spw": 5}, DATA, "has no spectral window 5"),
    ("empty-selection", one_field, {"field": 1}, DATA, "no cross-correlation rows of field 1"),
    ("only-autocorrelations", all_autocorrelations, {}, DATA, "no cross-correlation rows"),
    ("cross-hands-only", put_sub("POLARIZATION", "CORR_TYPE", 0, np.array([10, 11], np.int32)),
     {}, DATA, "Stokes I needs"),
    ("negative-frequencies", put_sub("SPECTRAL_WINDOW", "CHAN_FREQ", 0, -np.ones(4)), {}, DATA,
     "finite and positive"),
    ("mixed-channel-counts", spw_channels(8, True), {"axis": "channel"}, DATA,
     "same number of channels"),
    ("data-shape-disagrees", spw_channels(8, False), {}, DATA, "SPECTRAL_WINDOW has 8"),
    ("tar-cut-short", as_tar(cut=0.6), {}, DATA, "tar"),
    ("tar-not-an-ms", as_tar(not_an_ms), {}, DATA, "Measurement Sets at its top level"),
    ("tar-missing-subtable", as_tar(remove("ANTENNA")), {}, DATA, "no ANTENNA subtable"),
    ("not-a-tar", garbage_tar, {}, CONFIG, "data.ms"),
    # what the partition job would refuse (base: 6 timestamps, 10 baselines, 4 channels)
    ("more-parts-than-timestamps", None, {"parts": 7}, DATA,
     "partition.parts: 7 parts along time for"),
    ("more-parts-than-baselines", None, {"axis": "baseline", "parts": 11}, DATA,
     "which has 10 baselines"),
    ("more-parts-than-channels", None, {"axis": "channel", "parts": 5}, DATA,
     "which has 4 channels"),
    ("max-size-below-one-timestamp", None, {"max_size": "20KB"}, DATA,
     "partition.max_size: 20000 bytes gives"),
    ("max-size-below-one-channel", None, {"axis": "channel", "max_size": "40KB"}, DATA,
     "partition.max_size: 40000 bytes gives"),
]


def tree(path: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``path``."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def write_config(where: Path, ms: Path | list[Path], data: dict) -> Path:
    """data: the data section's keys, and partition's ``axis``, ``parts``, ``max_size``."""
    partition = {"axis": data.pop("axis", "time")}
    partition.update({k: data.pop(k) for k in ("parts", "max_size") if k in data})
    shown = [str(m) for m in ms] if isinstance(ms, list) else str(ms)
    cfg = {"data": {"ms": shown, **data}, "image": {"name": "bad", "size": 32,
                                                    "scale": "2asec"},
           "partition": partition}
    path = where / "config.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def old_plan(tmp_path_factory, base) -> Path:
    """A plan made from the good MS: what a bad run must leave as it was."""
    where = tmp_path_factory.mktemp("old")
    assert cli.main(["plan", str(write_config(where, base, {})), "-o", str(where / "plan")]) == 0
    return where / "plan"


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"not one line:\n{err}"
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("name, mutate, data, klass, words", PLAN_CASES,
                         ids=[c[0] for c in PLAN_CASES])
def test_plan_refuses_bad_data(tmp_path, capsys, base, old_plan, name, mutate, data, klass,
                               words):
    ms = tmp_path / "obs.ms"
    shutil.copytree(base, ms)
    given = (mutate(ms) if mutate else None) or ms
    out = tmp_path / "plan"
    shutil.copytree(old_plan, out, symlinks=True)
    before = tree(out)
    capsys.readouterr()
    code = cli.main(["plan", str(write_config(tmp_path, given, dict(data))), "-o", str(out),
                     "--force"])
    line = one_line(capsys.readouterr().err)
    assert code == STATUS[klass], line
    assert line.startswith("htclean plan: error: ") and words in line, line
    if klass == DATA:
        assert str(given) in line  # the line names the MS
    assert tree(out) == before  # nothing written
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".plan")) == []


def test_plan_refuses_fewer_parts_than_measurement_sets(tmp_path, capsys, base, old_plan):
    copies = [tmp_path / "a.ms", tmp_path / "b.ms", tmp_path / "c.ms"]
    for ms in copies:
        shutil.copytree(base, ms)
    out = tmp_path / "plan"
    shutil.copytree(old_plan, out, symlinks=True)
    before = tree(out)
    capsys.readouterr()
    code = cli.main(["plan", str(write_config(tmp_path, copies, {"parts": 2})), "-o",
                     str(out), "--force"])
    line = one_line(capsys.readouterr().err)
    assert code == 2 and "partition.parts: 2 parts for 3 Measurement Sets" in line, line
    assert tree(out) == before


# --- resources at plan time ----------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``where`` (root only; skips the test where it cannot be mounted)."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a small or read-only file system needs root (mount -t tmpfs)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "htclean-test", str(where)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@contextlib.contextmanager
def unwritable(where: Path) -> Iterator[Path]:
    """A directory this process cannot write: a read-only tmpfs as root, else mode 0555."""
    if os.geteuid() == 0:
        with tmpfs(where, "ro,size=1m") as path:
            yield path
        return
    where.mkdir(parents=True, exist_ok=True)
    where.chmod(0o555)
    try:
        yield where
    finally:
        where.chmod(0o755)


def fill(fs: Path, leave: int) -> None:
    """Fill a file system but ``leave`` bytes."""
    free = shutil.disk_usage(fs).free
    with open(fs / "filler", "wb") as f:
        with contextlib.suppress(OSError):
            f.write(b"\0" * max(0, free - leave))


@pytest.mark.parametrize("kind", ["unwritable-output-directory", "disk-too-small"])
def test_plan_resources(tmp_path, capsys, base, kind):
    cfg = write_config(tmp_path, base, {})
    guard = unwritable(tmp_path / "ro") if kind.startswith("unwritable") \
        else tmpfs(tmp_path / "small", "size=256k")
    with guard as fs:
        (fs / "keep.txt").exists() or kind.startswith("unwritable") or \
            (fs / "keep.txt").write_text("keep\n")
        before = tree(fs)
        capsys.readouterr()
        code = cli.main(["plan", str(cfg), "-o", str(fs / "plan")])
        line = one_line(capsys.readouterr().err)
        assert code == STATUS[RESOURCES] and "resources: " in line, line
        assert tree(fs) == before  # nothing left behind


# --- job time: a job of a finished run, replayed with one bad input --------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished run (2 parts, 1 major cycle) whose jobs are replayed."""
    root = tmp_path_factory.mktemp("finished")
    ms = runkit.write_ms(root / "obs.ms")
    out = root / "run"
    proc = runkit.start(runkit.write_config(root, ms, parts=2, cycles=1), out)
    assert proc.wait(timeout=300) == 0, runkit.stderr_of(out)
    return out


def find_job(run: Path, pick: Callable) -> tuple:
    """(workflow, job) of the first job, over the run's workflows, for which ``pick`` holds."""
    files = [run / "workflow.yml", *sorted((run / "outputs").glob("cycle-*.yml"))]
    for path in files:
        wf = load_workflow(path)
        for job in wf.jobs.values():
            if not job.is_subworkflow and pick(job):
                return wf, job
    raise AssertionError("no such job in the run")


def producer_outputs(run: Path, category: str) -> set[str]:
    wf, job = find_job(run, lambda j: j.id.startswith(category))
    return {u.lfn for u in job.outputs}


class Replay:
    """A job's command line in a fresh working directory holding copies of its inputs and,
    at its output names, files left by an earlier attempt."""

    def __init__(self, run: Path, where: Path, pick: Callable):
        self.wf, self.job = find_job(run, pick)
        catalogs = load_catalogs(run)
        produced = {lfn: Path(path) for a in runkit.attempts(run) if a["status"] == "succeeded"
                    for lfn, path in a["outputs"].items()}
        self.dir = where / self.job.id
        self.dir.mkdir(parents=True)
        for use in self.job.inputs:
            src = produced.get(use.lfn)
            if src is None:
                src, _ = local_replica(use.lfn, (self.wf.replicas, catalogs.replicas))
            shutil.copy(src, self.dir / use.lfn)
        self.earlier = {u.lfn: b"left by an earlier attempt\n" for u in self.job.outputs
                        if not u.lfn.endswith(".record.json")}
        for lfn, data in self.earlier.items():
            (self.dir / lfn).write_bytes(data)
        self.args = list(self.job.arguments)

    def input_named(self, lfns: set[str]) -> Path:
        return self.dir / next(u.lfn for u in self.job.inputs if u.lfn in lfns)

    def run(self, env: dict[str, str] | None = None) -> tuple[int, str]:
        exe = Path(sys.executable).parent / self.job.name
        clean = {k: v for k, v in os.environ.items() if not k.startswith("HTCLEAN_")}
        done = subprocess.run([str(exe), *self.args], cwd=self.dir, capture_output=True,
                              text=True, env={**clean, **(env or {})}, timeout=120)
        return done.returncode, done.stderr

    def untouched(self) -> bool:
        return all((self.dir / lfn).read_bytes() == data for lfn, data in self.earlier.items())


def cut(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def scramble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(7)
    data[len(data) // 4:] = rng.integers(0, 256, len(data) - len(data) // 4, np.uint8).tobytes()
    path.write_bytes(bytes(data))


def json_not_components(path: Path) -> None:
    path.write_text('{"format": "something else", "flux": "lots"}\n')


def is_grid(job) -> bool:
    return job.id.startswith("grid-")


def is_gather(job) -> bool:
    """The first job that gathers partial images: a gather job, or the root of the tree
    (next-c00, which gathers up to fan_in partials itself)."""
    return job.id.startswith(("gather-c00", "next-c00"))


def is_residual(job) -> bool:
    return job.id.startswith("residual-")


# (name, which job, which of its inputs: the outputs of jobs of this kind, how it is damaged)
JOB_CASES = [
    ("truncated-part-file", is_grid, "partition", cut),
    ("corrupt-part-file", is_grid, "partition", scramble),
    ("truncated-partial", is_gather, "grid", cut),
    ("corrupt-partial", is_gather, "grid", scramble),
    ("truncated-component-list", is_residual, "deconvolve", cut),
    ("not-a-component-list", is_residual, "deconvolve", json_not_components),
]


@pytest.mark.parametrize("name, pick, producer, damage", JOB_CASES,
                         ids=[c[0] for c in JOB_CASES])
def test_job_refuses_a_bad_input(tmp_path, finished, name, pick, producer, damage):
    job = Replay(finished, tmp_path, pick)
    bad = job.input_named(producer_outputs(finished, producer))
    damage(bad)
    code, err = job.run()
    line = one_line(err)
    assert code == STATUS[DATA], line
    assert line.startswith(f"{job.job.name}: error: ") and bad.name in line, line
    assert job.untouched()


def test_damaged_copy_fails_retriably(tmp_path, finished):
    """A part whose sha256 is known (the engine hands it over) and differs: exit 4."""
    job = Replay(finished, tmp_path, is_grid)
    part = job.input_named(producer_outputs(finished, "partition"))
    good = hashlib.sha256(part.read_bytes()).hexdigest()
    sums = tmp_path / "inputs.sha256"
    sums.write_text(f"{good}  {part.name}\n")
    scramble(part)
    code, err = job.run({"HTCLEAN_INPUT_CHECKSUMS": str(sums)})
    line = one_line(err)
    assert code == STATUS[INTEGRITY], line
    assert "integrity: " in line and part.name in line and "differs" in line, line
    assert job.untouched()
    shutil.copy(finished / "outputs" / part.name, part)  # a fresh copy: the retry succeeds
    code, err = job.run({"HTCLEAN_INPUT_CHECKSUMS": str(sums)})
    assert code == 0, err


@pytest.mark.parametrize("kind", ["unwritable-output-directory", "disk-too-small"])
def test_job_resources(tmp_path, finished, kind):
    job = Replay(finished, tmp_path, is_grid)
    at = job.args.index("--output") + 1
    guard = unwritable(tmp_path / "ro") if kind.startswith("unwritable") \
        else tmpfs(tmp_path / "small", "size=64k")
    with guard as fs:
        if not kind.startswith("unwritable"):
            (fs / Path(job.args[at]).name).write_bytes(b"left by an earlier attempt\n")
            fill(fs, 2048)
        before = tree(fs)
        job.args[at] = str(fs / Path(job.args[at]).name)
        code, err = job.run()
        line = one_line(err)
        assert code == STATUS[RESOURCES] and "resources: " in line, line
        assert tree(fs) == before


@pytest.mark.parametrize("field, ddid", [(0, None), (1, None), (0, 1)])
def test_whole_table_checks_find_the_rows_taql_finds(tmp_path, field, ddid):
    """The UVW and negative-weight scans (numpy, a block at a time) name the first row
    TaQL's query names, with the same selection; flagged rows with negative weights are
    skipped as TaQL skips them."""
    from htclean.imaging.ms import mscheck

    ms = tmp_path / "t.ms"
    tinyms.write_ms(str(ms), tinyms.TinyObs(nant=5, ntime=6, nchan=4, nspw=2, nfield=2))
    where = f"FIELD_ID=={field} AND ANTENNA1!=ANTENNA2" + (
        f" AND DATA_DESC_ID=={ddid}" if ddid is not None else "")
    with ct.table(str(ms), readonly=False, ack=False) as t:
        assert mscheck._first_bad_uvw(t, (field, ddid)) is None
        assert mscheck._first_negative_weight(t, (field, ddid)) is None
        uvw, weight, flag = t.getcol("UVW"), t.getcol("WEIGHT"), t.getcol("FLAG")
        row_flag = t.getcol("FLAG_ROW")
        keep = (t.getcol("FIELD_ID") == field) & (t.getcol("ANTENNA1") != t.getcol("ANTENNA2"))
        if ddid is not None:
            keep &= t.getcol("DATA_DESC_ID") == ddid
        sel, other = np.flatnonzero(keep), np.flatnonzero(~keep)
        uvw[[other[0], sel[5], sel[9]], 1] = [np.nan, np.inf, np.nan]  # other[0]: not selected
        weight[[other[0], sel[2], sel[3], sel[4], sel[8]], 0] = -1.0
        flag[sel[2]] = True  # negative but flagged, every sample or the row: not a bad row
        row_flag[sel[3]] = True
        t.putcol("FLAG_ROW", row_flag)
        t.putcol("UVW", uvw)
        t.putcol("WEIGHT", weight)
        t.putcol("FLAG", flag)
        for scan, query in ((mscheck._first_bad_uvw, f"{where} AND NOT ALL(ISFINITE(UVW))"),
                            (mscheck._first_negative_weight,
                             f"{where} AND ANY(WEIGHT < 0) AND NOT FLAG_ROW AND NOT ALL(FLAG)")):
            found = scan(t, (field, ddid))
            assert found == mscheck._first_row(t, query) and found in (sel[5], sel[4])

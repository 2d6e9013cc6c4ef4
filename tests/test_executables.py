"""The job executables: --help, exit codes and one-line errors, records, atomic outputs,
partition invariance of the parts, gather sums, the deconvolution state, restore products."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import casacore.tables as ct
import numpy as np
import pytest
import tinyms

from htclean.executables import deconvolve, gather, grid, msparts, partition, record, restore
from htclean.executables.record import load_settings
from htclean.imaging import fits, preview
from htclean.imaging.deconvolution import loop
from htclean.imaging.geometry import ImageGeometry, psf_geometry
from htclean.imaging.ms import msread, partfile, partials, parts

EXECUTABLES = ("partition", "grid", "gather", "deconvolve", "restore")
MAINS = {"partition": partition.main, "grid": grid.main, "gather": gather.main,
         "deconvolve": deconvolve.main, "restore": restore.main}
COLUMNS = ("TIME", "ANTENNA1", "ANTENNA2", "UVW")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A tiny MS: 7 antennas, 12 times, 6 channels, two point sources."""
    path = tmp_path_factory.mktemp("ms") / "tiny.ms"
    tinyms.write_ms(str(path), tinyms.TinyObs(nchan=6, ntime=12, noise=0.01))
    return path


def write_config(where: Path, ms: Path, **sections) -> Path:
    cfg = {"data": {"ms": str(ms)}, "image": {"size": 64, "scale": "2asec"},
           "output": {"run_id": "R"}}
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    path = where / "R-config.yml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


def run(name: str, args: list[str], cwd: Path, monkeypatch) -> int:
    monkeypatch.chdir(cwd)
    return MAINS[name](["--config", "R-config.yml", *args])


def one_error_line(capsys, prog: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"htclean-{prog}: error: ")
    return err[0]


def table_columns(ms: Path) -> dict[str, np.ndarray]:
    with ct.table(str(ms), ack=False) as t:
        return {c: t.getcol(c) for c in COLUMNS}


def random_partial(rng, geom: ImageGeometry, images=("psf", "dirty")) -> partials.Partial:
    shapes = {"psf": psf_geometry(geom, 2.0).shape}  # image.psf_oversize 2, the default
    return partials.Partial({k: rng.normal(size=shapes.get(k, geom.shape)) for k in images},
                         float(rng.uniform(1, 10)), int(rng.integers(1, 1000)), 0, geom)


GEOM = ImageGeometry(nx=64, ny=64, cell=2 * tinyms.ASEC, ra=1.2, dec=0.6, freq=1.4e9,
                     bandwidth=4.8e7)


# --- command lines -------------------------------------------------------------------------


@pytest.mark.parametrize("name", EXECUTABLES)
def test_help(name):
    exe = Path(sys.executable).parent / f"htclean-{name}"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith(f"usage: htclean-{name}")
    assert "--config" in out.stdout and "--record" in out.stdout


def test_usage_error_is_one_line(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exc:
        run("grid", ["--mode", "nonsense"], tmp_path, monkeypatch)
    assert exc.value.code == 2
    assert "--mode" in one_error_line(capsys, "grid")


def test_missing_input_exit_2_names_it(tiny, tmp_path, monkeypatch, capsys):
    write_config(tmp_path, tiny)
    code = run("grid", ["--mode", "psf-dirty", "--part", "nope.ms.tar", "--output", "x.npz",
                        "--record", "R-grid.record.json"], tmp_path, monkeypatch)
    assert code == 2
    assert "nope.ms.tar" in one_error_line(capsys, "grid")
    rec = json.loads((tmp_path / "R-grid.record.json").read_text())
    assert rec["exit_status"] == 2 and "nope.ms.tar" in rec["error"] and rec["job"] == "grid"
    assert not (tmp_path / "x.npz").exists()


def test_corrupt_npz_exit_2(tiny, tmp_path, monkeypatch, capsys):
    write_config(tmp_path, tiny)
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    partials.save_partial(tmp_path / "good.npz", random_partial(np.random.default_rng(1), GEOM))
    code = run("gather", ["--inputs", "good.npz", "bad.npz", "--output", "g.npz"], tmp_path,
               monkeypatch)
    assert code == 2
    assert "bad.npz" in one_error_line(capsys, "gather")
    assert not (tmp_path / "g.npz").exists()


def test_mismatched_geometry_exit_2(tiny, tmp_path, monkeypatch, capsys):
    write_config(tmp_path, tiny)
    rng = np.random.default_rng(2)
    other = ImageGeometry(nx=64, ny=64, cell=3 * tinyms.ASEC, ra=1.2, dec=0.6, freq=1.4e9)
    partials.save_partial(tmp_path / "a.npz", random_partial(rng, GEOM))
    partials.save_partial(tmp_path / "b.npz", random_partial(rng, other))
    code = run("gather", ["--inputs", "a.npz", "b.npz", "--psf-fits", "p.fits",
                          "--image-fits", "d.fits"], tmp_path, monkeypatch)
    assert code == 2
    line = one_error_line(capsys, "gather")
    assert "b.npz" in line and "geometry" in line
    assert not list(tmp_path.glob("*.fits"))


def test_unexpected_failure_exit_1_one_line(tiny, tmp_path, monkeypatch, capsys):
    write_config(tmp_path, tiny)
    (tmp_path / "out").mkdir()  # a directory where the output file should go
    partials.save_partial(tmp_path / "a.npz", random_partial(np.random.default_rng(3), GEOM))
    code = run("gather", ["--inputs", "a.npz", "--output", "out"], tmp_path, monkeypatch)
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("htclean-gather: failed: ")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_sigterm_removes_outputs_and_is_recorded(tiny, tmp_path, monkeypatch, capsys):
    write_config(tmp_path, tiny)

    def work(args, job):
        job.write_json("first.json", {"written": True})
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        job.write_json("second.json", {"written": True})

    monkeypatch.chdir(tmp_path)
    before = signal.getsignal(signal.SIGTERM)
    code = record.run_job("htclean-test", record.job_parser("htclean-test", "a test job"), work,
                          ["--config", "R-config.yml", "--record", "R-test.record.json"])
    assert code == 143 and signal.getsignal(signal.SIGTERM) == before
    assert capsys.readouterr().err.strip() == "htclean-test: interrupted (SIGTERM)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["R-config.yml", "R-test.record.json"]
    rec = json.loads((tmp_path / "R-test.record.json").read_text())
    assert rec["exit_status"] == 143 and rec["job"] == "test" and rec["wall_s"] < 5


PARENT_OF_A_JOB = """
import json, resource, subprocess, sys
import numpy as np
held = np.ones(300 * 2**20 // 8)  # 300 MiB, touched: the parent's high-water mark
job = ("from htclean.executables.gather import main; raise SystemExit(main())")
subprocess.run([sys.executable, "-c", job, *sys.argv[1:]], check=True)
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0))
"""


def test_record_peak_memory_is_the_jobs_own(tiny, tmp_path):
    """Linux carries a parent's ru_maxrss across fork+exec: the record must not report it."""
    write_config(tmp_path, tiny)
    partials.save_partial(tmp_path / "a.npz", random_partial(np.random.default_rng(5), GEOM))
    out = subprocess.run([sys.executable, "-c", PARENT_OF_A_JOB, "--config", "R-config.yml",
                          "--inputs", "a.npz", "--output", "g.npz", "--record", "g.json"],
                         cwd=tmp_path, capture_output=True, text=True, check=True)
    parent_peak = json.loads(out.stdout)
    rec = json.loads((tmp_path / "g.json").read_text())
    assert rec["exit_status"] == 0 and parent_peak > 300
    assert 10 < rec["max_rss_mb"] < parent_peak - 150, (rec["max_rss_mb"], parent_peak)


# --- partition -----------------------------------------------------------------------------


@pytest.mark.parametrize("axis,nparts", [("time", 3), ("baseline", 4), ("channel", 4)])
def test_partition_union_is_the_data(tiny, tmp_path, monkeypatch, axis, nparts):
    """The parts' Stokes I, weights, uvw and frequencies are exactly what the MS reader gives
    for the whole MS, each row (or channel) in one part, a timestamp or baseline in one part."""
    write_config(tmp_path, tiny)
    with tarfile.open(tmp_path / "tiny.ms.tar", "w") as tar:
        tar.add(str(tiny), arcname="tiny.ms")
    outs = [f"R-part-{i:03d}.vis.npz" for i in range(nparts)]
    code = run("partition", ["--ms", "tiny.ms.tar", "--axis", axis, "--outputs", *outs,
                             "--manifest", "R-partitions.json",
                             "--record", "R-partition.record.json"], tmp_path, monkeypatch)
    assert code == 0
    whole = table_columns(tiny)
    (ref,) = msread.read_chunks(tiny)
    got = [list(partfile.read_chunks(tmp_path / o)) for o in outs]
    assert all(len(g) == 1 for g in got)  # one chunk each (chunk_rows is larger)
    got = [g[0] for g in got]
    assert all(g.vis.dtype == np.complex64 and g.weight.dtype == np.float32 for g in got)
    manifest = json.loads((tmp_path / "R-partitions.json").read_text())
    assert [p["file"] for p in manifest["parts"]] == outs
    assert [p["rows"] for p in manifest["parts"]] == [len(g.uvw) for g in got]
    assert all(p["bytes"] == (tmp_path / p["file"]).stat().st_size for p in manifest["parts"])
    if axis == "channel":
        for name in ("vis", "weight", "freq"):
            joined = np.concatenate([getattr(g, name) for g in got], axis=-1)
            np.testing.assert_array_equal(joined, getattr(ref, name).astype(joined.dtype))
        assert all(np.array_equal(g.uvw, ref.uvw) for g in got)
        assert sum(p["channels"] for p in manifest["parts"]) == len(ref.freq)
    else:
        sizes = [len(g.uvw) for g in got]
        assert sum(sizes) == len(whole["TIME"])
        assert max(sizes) - min(sizes) <= 2 * 21  # about equal: within two units of rows
        keys = {tuple(u): (t, a, b) for u, t, a, b in zip(
            whole["UVW"], whole["TIME"], whole["ANTENNA1"], whole["ANTENNA2"], strict=True)}
        pick = (lambda k: k[0]) if axis == "time" else (lambda k: k[1:])
        units = [{pick(keys[tuple(u)]) for u in g.uvw} for g in got]
        for i in range(nparts):  # a timestamp or baseline lives in one part only
            for j in range(i + 1, nparts):
                assert not units[i] & units[j]
        joined = {n: np.concatenate([getattr(g, n) for g in got]) for n in ("uvw", "vis",
                                                                          "weight")}
        order = np.lexsort(joined["uvw"].T)
        rorder = np.lexsort(ref.uvw.T)
        np.testing.assert_array_equal(joined["uvw"][order], ref.uvw[rorder])
        for n in ("vis", "weight"):
            np.testing.assert_array_equal(joined[n][order],
                                          getattr(ref, n)[rorder].astype(joined[n].dtype))
        if axis == "time":
            ranges = [p["time_range"] for p in manifest["parts"]]
            assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    rec = json.loads((tmp_path / "R-partition.record.json").read_text())
    assert rec["job"] == "partition" and rec["exit_status"] == 0 and rec["error"] is None
    assert rec["bytes_written"] == sum((tmp_path / o).stat().st_size for o in outs) + \
        (tmp_path / "R-partitions.json").stat().st_size
    assert rec["visibilities"] == len(whole["TIME"]) * len(ref.freq)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files


def test_part_file_is_smaller_and_checked(tiny, tmp_path, monkeypatch, capsys):
    """A part file is several times smaller than the MS tar it replaces, and a grid job
    given other data settings than the partition's refuses it in one line."""
    write_config(tmp_path, tiny)
    assert run("partition", ["--ms", str(tiny), "--outputs", "p.vis.npz", "--manifest",
                             "m.json"], tmp_path, monkeypatch) == 0
    tar = msparts.pack(tiny, tmp_path / "tiny.ms.tar")
    assert (tmp_path / "p.vis.npz").stat().st_size * 2 < tar.stat().st_size
    write_config(tmp_path, tiny, data={"polarization_rule": "wsclean"})
    code = run("grid", ["--mode", "psf-dirty", "--part", "p.vis.npz", "--output", "x.npz"],
               tmp_path, monkeypatch)
    assert code == 2
    assert "polarization_rule" in one_error_line(capsys, "grid")


def test_partition_too_many_parts_exit_2(tiny, tmp_path, monkeypatch, capsys):
    write_config(tmp_path, tiny)
    outs = [f"p{i}.vis.npz" for i in range(7)]
    code = run("partition", ["--ms", str(tiny), "--axis", "channel", "--outputs", *outs,
                             "--manifest", "m.json"], tmp_path, monkeypatch)
    assert code == 2
    assert "6 channels into 7 parts" in one_error_line(capsys, "partition")
    assert not list(tmp_path.glob("p*.vis.npz"))


def test_failure_leaves_no_output(tiny, tmp_path, monkeypatch, capsys):
    """The third part cannot be written: the two already written are removed too."""
    write_config(tmp_path, tiny)
    outs = ["p0.vis.npz", "p1.vis.npz", "missing-dir/p2.vis.npz"]
    code = run("partition", ["--ms", str(tiny), "--axis", "time", "--outputs", *outs,
                             "--manifest", "m.json", "--record", "rec.json"], tmp_path,
               monkeypatch)
    assert code == 1
    assert capsys.readouterr().err.startswith("htclean-partition: failed: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["R-config.yml", "rec.json"]


def test_injected_failure_writes_nothing(tiny, tmp_path, monkeypatch, capsys):
    write_config(tmp_path, tiny)
    monkeypatch.setenv("HTCLEAN_INJECT_FAILURE", "1")
    code = run("partition", ["--ms", str(tiny), "--outputs", "p0.vis.npz", "--manifest",
                             "m.json", "--record", "R-partition.record.json"], tmp_path,
               monkeypatch)
    assert code == 1
    assert "injected failure" in capsys.readouterr().err
    rec = json.loads((tmp_path / "R-partition.record.json").read_text())
    assert rec["exit_status"] == 1 and "HTCLEAN_INJECT_FAILURE" in rec["error"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["R-config.yml",
                                                          "R-partition.record.json"]


# --- grid and gather -----------------------------------------------------------------------


def test_gather_of_four_is_the_sum(tiny, tmp_path, monkeypatch):
    write_config(tmp_path, tiny)
    rng = np.random.default_rng(4)
    inputs_ = [random_partial(rng, GEOM) for _ in range(4)]
    for i, p in enumerate(inputs_):
        partials.save_partial(tmp_path / f"i{i}.npz", p)
    inputs = [f"i{i}.npz" for i in range(4)]
    assert run("gather", ["--inputs", *inputs, "--output", "g.npz", "--record", "g.json"],
               tmp_path, monkeypatch) == 0
    total = partials.load_partial(tmp_path / "g.npz")
    wsum = sum(p.weight_sum for p in inputs_)
    assert total.weight_sum == wsum
    assert total.visibilities == sum(p.visibilities for p in inputs_)
    for name in ("psf", "dirty"):
        exact = sum(p.images[name].astype(np.float32).astype(np.float64) for p in inputs_)
        assert total.images[name].dtype == np.float32
        np.testing.assert_allclose(total.images[name], exact, rtol=0, atol=1e-6)
    assert run("gather", ["--inputs", *inputs, "--psf-fits", "psf.fits", "--image-fits",
                          "dirty.fits"], tmp_path, monkeypatch) == 0
    for name in ("psf", "dirty"):
        image, geom, header = fits.read_fits(tmp_path / f"{name}.fits")
        exact = sum(p.images[name].astype(np.float32).astype(np.float64) for p in inputs_)
        np.testing.assert_allclose(image, exact / wsum, rtol=0, atol=1e-6)
        assert geom.nx == {"psf": 128, "dirty": 64}[name]
        assert geom.cell == pytest.approx(GEOM.cell, rel=1e-12)
        assert (geom.ra, geom.dec) == pytest.approx((1.2, 0.6), rel=1e-12)
    rec = json.loads((tmp_path / "g.json").read_text())
    assert rec["bytes_read"] == sum((tmp_path / f).stat().st_size
                                    for f in [*inputs, "R-config.yml"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("weighting", [{"type": "natural"}, {"type": "briggs", "robust": 0.5}])
def test_parts_grid_gather_equals_one_part(tiny, tmp_path, monkeypatch, weighting):
    """Partition invariance through the executables: 3 channel parts (Briggs needs the
    gathered density) give the images of the whole MS in one process."""
    write_config(tmp_path, tiny, weighting=weighting)
    outs = [f"p{i}.vis.npz" for i in range(3)]
    assert run("partition", ["--ms", str(tiny), "--axis", "channel", "--outputs", *outs,
                             "--manifest", "m.json"], tmp_path, monkeypatch) == 0
    weights = []
    if weighting["type"] != "natural":
        for i, o in enumerate(outs):
            assert run("grid", ["--mode", "weights", "--part", o, "--output", f"w{i}.npz"],
                       tmp_path, monkeypatch) == 0
        assert run("gather", ["--inputs", "w0.npz", "w1.npz", "w2.npz", "--output", "w.npz"],
                   tmp_path, monkeypatch) == 0
        weights = ["--weights", "w.npz"]
    for i, o in enumerate(outs):
        assert run("grid", ["--mode", "psf-dirty", "--part", o, *weights, "--output",
                            f"i{i}.npz", "--record", f"R-grid-c00-p{i:03d}.record.json"],
                   tmp_path, monkeypatch) == 0
    assert run("gather", ["--inputs", "i0.npz", "i1.npz", "--output", "g.npz"], tmp_path,
               monkeypatch) == 0
    assert run("gather", ["--inputs", "g.npz", "i2.npz", "--psf-fits", "psf.fits",
                          "--image-fits", "dirty.fits"], tmp_path, monkeypatch) == 0
    settings = load_settings(str(tmp_path / "R-config.yml"))
    density = parts.part_density(tiny, settings) if weights else None
    ref = partials.normalise(parts.part_psf_dirty(tiny, settings, density))
    for name in ("psf", "dirty"):
        image, geom, _ = fits.read_fits(tmp_path / f"{name}.fits")
        peak = np.abs(ref[name]).max()
        assert np.abs(image - ref[name]).max() < 1e-6 * peak, name
    assert geom.freq == pytest.approx(parts.part_density(tiny, settings).geom.freq, rel=1e-12)
    rec = json.loads((tmp_path / "R-grid-c00-p001.record.json").read_text())
    assert rec["job"] == "grid-c00-p001" and rec["device"] == "cpu"
    assert rec["visibilities"] > 0 and rec["cpu_s"] > 0 and rec["max_rss_mb"] > 0


def test_grid_briggs_without_weights_exit_2(tiny, tmp_path, monkeypatch, capsys):
    write_config(tmp_path, tiny, weighting={"type": "briggs"})
    code = run("grid", ["--mode", "psf-dirty", "--part", str(tiny), "--output", "x.npz"],
               tmp_path, monkeypatch)
    assert code == 2
    assert "--weights" in one_error_line(capsys, "grid")


# --- deconvolve and restore ----------------------------------------------------------------


def _dirty_and_psf(tiny: Path, tmp_path: Path, monkeypatch) -> None:
    assert run("grid", ["--mode", "psf-dirty", "--part", str(tiny), "--output", "i.npz"],
               tmp_path, monkeypatch) == 0
    assert run("gather", ["--inputs", "i.npz", "--psf-fits", "R-psf.fits", "--image-fits",
                          "R-dirty.fits"], tmp_path, monkeypatch) == 0


def test_deconvolve_cycles_state_and_restore(tiny, tmp_path, monkeypatch, capsys):
    write_config(tmp_path, tiny, deconvolution={"niter": 200, "auto_threshold": 3})
    _dirty_and_psf(tiny, tmp_path, monkeypatch)
    assert run("deconvolve", ["--cycle", "1", "--psf", "R-psf.fits", "--residual",
                              "R-dirty.fits", "--output-model", "R-model-c01.json",
                              "--output-state", "R-deconvolve-c01.json"],
               tmp_path, monkeypatch) == 0
    s1 = json.loads((tmp_path / "R-deconvolve-c01.json").read_text())
    assert s1["cycle"] == 1 and s1["iterations"] == s1["iterations_total"] > 0
    assert s1["stop_reason"] in ("mgain", "threshold", "niter", "no-peak")
    assert s1["peak_end"] < s1["peak_start"] and s1["threshold"] > 0
    assert len(s1["history"]) == 1
    # the residual of cycle 1, then cycle 2 from it
    assert run("grid", ["--mode", "residual", "--part", str(tiny), "--model",
                        "R-model-c01.json", "--output", "r.npz"], tmp_path, monkeypatch) == 0
    assert run("gather", ["--inputs", "r.npz", "--image-fits", "R-residual-c01.fits"],
               tmp_path, monkeypatch) == 0
    assert run("deconvolve", ["--cycle", "2", "--psf", "R-psf.fits", "--residual",
                              "R-residual-c01.fits", "--model", "R-model-c01.json", "--state",
                              "R-deconvolve-c01.json", "--output-model", "R-model-c02.json",
                              "--output-state", "R-deconvolve-c02.json"],
               tmp_path, monkeypatch) == 0
    s2 = json.loads((tmp_path / "R-deconvolve-c02.json").read_text())
    assert s2["iterations_total"] == s1["iterations_total"] + s2["iterations"]
    assert [h["cycle"] for h in s2["history"]] == [1, 2]
    m1 = json.loads((tmp_path / "R-model-c01.json").read_text())
    m2 = json.loads((tmp_path / "R-model-c02.json").read_text())
    assert m2["total_flux"] != m1["total_flux"] and m2["count"] >= m1["count"]
    # a state of the wrong cycle is bad input
    code = run("deconvolve", ["--cycle", "3", "--psf", "R-psf.fits", "--residual",
                              "R-residual-c01.fits", "--model", "R-model-c01.json", "--state",
                              "R-deconvolve-c01.json", "--output-model", "x.json",
                              "--output-state", "y.json"], tmp_path, monkeypatch)
    assert code == 2 and "cycle 2" in one_error_line(capsys, "deconvolve")
    # the residual of cycle 2, then restore
    assert run("grid", ["--mode", "residual", "--part", str(tiny), "--model",
                        "R-model-c02.json", "--output", "r.npz"], tmp_path, monkeypatch) == 0
    assert run("gather", ["--inputs", "r.npz", "--image-fits", "R-residual-c02.fits"],
               tmp_path, monkeypatch) == 0
    write_preview = preview.write_preview

    def recorded(path, image, geom, **kwargs):  # drawn in forked children: kept in files
        (tmp_path / f"{Path(path).name}.kwargs").write_bytes(pickle.dumps(kwargs))
        write_preview(path, image, geom, **kwargs)

    monkeypatch.setattr(preview, "write_preview", recorded)
    assert run("restore", ["--psf", "R-psf.fits", "--dirty", "R-dirty.fits", "--residual",
                           "R-residual-c02.fits", "--model", "R-model-c02.json", "--state",
                           "R-deconvolve-c02.json",
                           "--name", "tiny", "--record", "R-restore.record.json"],
               tmp_path, monkeypatch) == 0
    for kind in ("image", "model", "residual", "psf", "dirty"):
        _, _, header = fits.read_fits(tmp_path / f"tiny-{kind}.fits")
        assert header["BMAJ"] > header["BMIN"] > 0 and "BPA" in header
    previews = {p.name.removesuffix(".kwargs"): pickle.loads(p.read_bytes())
                for p in tmp_path.glob("*.png.kwargs")}
    for kind in ("image", "residual", "psf"):
        assert (tmp_path / f"tiny-{kind}.png").read_bytes()[:4] == b"\x89PNG"
        drawn = previews[f"tiny-{kind}.png"]  # with the restoring beam, in the right unit
        assert drawn["beam"].bpa == pytest.approx(header["BPA"])
        assert drawn["bunit"] == ("" if kind == "psf" else "Jy/beam")
    assert previews["tiny-psf.png"]["label"] == "PSF (peak 1)"
    assert not previews["tiny-psf.png"]["noise"]
    summary = json.loads((tmp_path / "tiny-summary.json").read_text())
    assert summary["cycles"] == 2 and summary["iterations"] == s2["iterations_total"]
    assert summary["stop_reason"] in loop.REASONS and summary["components"] == m2["count"]
    assert summary["image"]["peak"] == pytest.approx(1.0, abs=0.05)  # the 1 Jy source
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_jobs_fix_the_mmap_threshold():
    """On glibc (this project's Linux machines) a job fixes the mmap threshold, so the large
    temporaries it frees leave its resident memory (executables/heap.py)."""
    import platform

    from htclean.executables import heap

    assert heap.return_freed_memory() == (platform.libc_ver()[0] == "glibc")

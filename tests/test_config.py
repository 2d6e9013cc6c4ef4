"""The configuration: the bad-configuration corpus, the template, resolution and parsing."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from htclean.workflows import cli, config


@pytest.fixture
def fake_ms(tmp_path: Path) -> Path:
    """A directory that looks like a casacore table (validation checks no more than that)."""
    ms = tmp_path / "obs.ms"
    ms.mkdir()
    (ms / "table.dat").write_bytes(b"")
    return ms


def good(ms: Path) -> dict:
    return {"data": {"ms": str(ms)}, "image": {"size": 256, "scale": "2asec"}}


def write(tmp_path: Path, raw: dict | str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw))
    return path


# (what is changed, the key path the one line must name)
BAD = [
    (lambda c: c["image"].update(sise=512), "image.sise"),
    (lambda c: c.update(imaging={"size": 1}), "imaging"),
    (lambda c: c["image"].update(size=-512), "image.size"),
    (lambda c: c["image"].update(size=511), "image.size"),
    (lambda c: c["image"].update(size="big"), "image.size"),
    (lambda c: c["image"].update(scale="3 parsecs"), "image.scale"),
    (lambda c: c["image"].update(scale=3), "image.scale"),
    (lambda c: c["image"].pop("scale"), "image.scale"),
    (lambda c: c.update(weighting={"type": "natural", "robust": 0.5}), "weighting.robust"),
    (lambda c: c.update(weighting={"type": "briggs", "robust": 3}), "weighting.robust"),
    (lambda c: c.update(weighting={"type": "superuniform"}), "weighting.type"),
    (lambda c: c.update(deconvolution={"gain": 0}), "deconvolution.gain"),
    (lambda c: c.update(deconvolution={"niter": 10.5}), "deconvolution.niter"),
    (lambda c: c.update(deconvolution={"threshold": "1 furlong"}), "deconvolution.threshold"),
    (lambda c: c.update(deconvolution={"scales": [0, 4]}), "deconvolution.scales"),
    (lambda c: c.update(partition={"parts": 4, "max_size": "1GB"}), "partition.max_size"),
    (lambda c: c.update(partition={"axis": "frequency"}), "partition.axis"),
    (lambda c: c.update(partition={"fan_in": 1}), "partition.fan_in"),
    (lambda c: c["data"].update(ms="/nonexistent/obs.ms"), "data.ms"),
    (lambda c: (c["data"].update(ms="osdf:///ospool/ap40/data/u/obs.ms.tar"),
                c.update(execution={"site": "condor"})), "data.size"),
    (lambda c: c["image"].update(size=16384), "image.size"),
    (lambda c: c.update(execution={"site": "ospool"}), "execution.staging"),
    (lambda c: c.update(execution={"requirements": "Memory >= "}), "execution.requirements"),
    (lambda c: c.update(execution={"retries": True}), "execution.retries"),
    (lambda c: c.update(gridder={"device": "tpu"}), "gridder.device"),
    (lambda c: c.update(gridder={"epsilon": 0.5}), "gridder.epsilon"),
    (lambda c: c.update(gridder={"precision": "single", "epsilon": 1e-6}), "gridder.epsilon"),
    (lambda c: c.update(image="big"), "image"),
    (lambda c: c.update(execution={"site": "ospool", "staging": "osdf://ospool/ap40/data/u/x"}),
     "execution.staging"),
    (lambda c: c["data"].update(ms=__file__), "data.ms"),
    (lambda c: c["image"].update(psf_oversize=0.5), "image.psf_oversize"),
    (lambda c: c["image"].update(size=512, scale="8amin"), "image.psf_oversize"),
    (lambda c: c["data"].update(ms=[c["data"]["ms"], "/nonexistent/b.ms"]), "data.ms"),
    (lambda c: c["data"].update(ms=[c["data"]["ms"], c["data"]["ms"] + ".tar"]), "data.ms"),
    (lambda c: c["data"].update(ms=[]), "data.ms"),
    (lambda c: (c["data"].update(ms=[c["data"]["ms"], "osdf:///ospool/ap40/d/u/b.ms.tar"]),
                c["data"].update(size="1GB"), c.update(execution={"site": "condor"})),
     "data.ms"),
    (lambda c: c.update(deconvolution={"nterms": 4}), "deconvolution.nterms"),
    (lambda c: c.update(deconvolution={"nterms": 2, "algorithm": "clark"}),
     "deconvolution.nterms"),
    (lambda c: c["image"].update(pb_limit=0), "image.pb_limit"),
    (lambda c: (c["data"].update(ms="osdf:///ospool/ap40/d/u/a.ms.tar", size="1GB"),
                c.update(execution={"site": "condor"}, deconvolution={"nterms": 2})),
     "image.reference_frequency"),
    (lambda c: c["image"].update(primary_beam="yes"), "image.primary_beam"),
    (lambda c: c["image"].update(reference_frequency="1.5 parsec"),
     "image.reference_frequency"),
    (lambda c: (c["image"].update(name="field"), c.update(output={"run_id": "field"})),
     "output.run_id"),
]


@pytest.mark.parametrize("mutate,key", BAD, ids=[k for _, k in BAD])
def test_bad_configuration_gives_one_line_naming_the_key(tmp_path, fake_ms, capsys, mutate, key):
    raw = good(fake_ms)
    mutate(raw)
    path = write(tmp_path, raw)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f": {key}:" in err[0], err[0]
    assert "Traceback" not in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_bad_configuration_from_the_shell_exits_2_without_traceback(tmp_path, fake_ms):
    raw = good(fake_ms)
    raw["image"]["size"] = 17
    path = write(tmp_path, raw)
    proc = subprocess.run([sys.executable, "-m", "htclean.workflows.cli", "validate", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "image.size: must be even" in proc.stderr


@pytest.mark.parametrize("text,needle", [
    ("data: [1, 2\n", "not valid YAML at line"),
    ("- just\n- a list\n", "must be a YAML mapping"),
])
def test_unreadable_files_are_one_line(tmp_path, capsys, text, needle):
    path = write(tmp_path, text)
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_missing_file(tmp_path, capsys):
    assert cli.main(["validate", str(tmp_path / "nope.yml")]) == 2
    assert "no such configuration file" in capsys.readouterr().err


def test_several_problems_are_all_listed(tmp_path, fake_ms, capsys):
    raw = good(fake_ms)
    raw["image"]["size"] = 17
    raw["deconvolution"] = {"gain": 2}
    assert cli.main(["validate", str(write(tmp_path, raw))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert any("image.size" in e for e in err) and any("deconvolution.gain" in e for e in err)


def test_unknown_key_suggests_the_right_one(tmp_path, fake_ms, capsys):
    raw = good(fake_ms)
    raw["deconvolution"] = {"nitre": 100}
    cli.main(["validate", str(write(tmp_path, raw))])
    assert "did you mean 'deconvolution.niter'" in capsys.readouterr().err


@pytest.mark.parametrize("section,hint", [("deconvolutoin", "deconvolution"),
                                          ("weigthing", "weighting")])
def test_misspelt_section_suggests_the_section(tmp_path, fake_ms, capsys, section, hint):
    raw = good(fake_ms)
    raw[section] = {}
    cli.main(["validate", str(write(tmp_path, raw))])
    assert f"unknown section (did you mean '{hint}'?)" in capsys.readouterr().err


def test_explicit_null_is_kept(tmp_path, fake_ms):
    raw = good(fake_ms)
    raw["execution"] = {"container": None}
    _, parsed = config.load(write(tmp_path, raw))
    assert parsed["execution"]["container"] is None


def test_template_has_every_key_commented_and_validates_once_filled(tmp_path, fake_ms, capsys):
    path = tmp_path / "htclean.yml"
    assert cli.main(["init-config", str(path), "--ms", str(fake_ms)]) == 0
    text = path.read_text()
    for param in config.PARAMETERS:
        assert f"{param.path.rsplit('.', 1)[-1]}:" in text, param.path
        assert f"# {param.info}" in text
    assert cli.main(["validate", str(path)]) == 0
    # and it refuses to overwrite
    assert cli.main(["init-config", str(path)]) == 2
    assert "exists" in capsys.readouterr().err


def test_resolve_and_parse(tmp_path, fake_ms):
    raw = good(fake_ms)
    raw["weighting"] = {"type": "briggs"}
    raw["deconvolution"] = {"threshold": "0.1mJy", "algorithm": "multiscale"}
    raw["image"]["size"] = [512, 256]
    path = write(tmp_path, raw)
    resolved, parsed = config.load(path)
    assert resolved["weighting"]["robust"] == 0.0
    assert resolved["deconvolution"]["scales"] == [0, 4, 16]
    assert resolved["image"]["scale"] == "2asec"  # the user's spelling travels
    assert parsed["image"]["nx"] == 512 and parsed["image"]["ny"] == 256
    assert math.isclose(parsed["image"]["cell"], 2 / 3600 * math.pi / 180)
    assert math.isclose(parsed["deconvolution"]["threshold"], 1e-4)
    assert parsed["execution"]["request_memory"] == 8 * 2**30  # HTCondor units
    # the resolved file round-trips to the same settings
    config.dump(resolved, tmp_path / "resolved.yml")
    again_resolved, again = config.load(tmp_path / "resolved.yml")
    assert again == parsed and again_resolved == resolved


@pytest.mark.parametrize("text,radians", [
    ("3asec", 3 / 206264.80624709636), ("2amin", 2 / 3437.7467707849396),
    ("0.5deg", math.pi / 360), ("1e-5rad", 1e-5), ("250mas", 0.25 / 206264.80624709636),
])
def test_angles(text, radians):
    from htclean.imaging import units

    assert math.isclose(units.angle(text), radians, rel_tol=1e-12)


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("htclean ")
    for name in cli.COMMANDS:
        with pytest.raises(SystemExit) as exc:
            cli.main([name, "--help"])
        assert exc.value.code == 0
        assert "usage: htclean" in capsys.readouterr().out


def test_init_config_fills_the_suggested_geometry(tmp_path, small_ms):
    from htclean.imaging.ms import msinfo

    info = msinfo.describe(small_ms.path)
    path = tmp_path / "run.yml"
    assert cli.main(["init-config", str(path), "--ms", str(small_ms.path)]) == 0
    resolved, parsed = config.load(path)
    assert parsed["image"]["nx"] == info.suggested_size
    assert math.isclose(parsed["image"]["cell"], info.suggested_cell, rel_tol=2e-3)


def test_several_ms_resolve_to_absolute_paths_in_order(tmp_path, fake_ms):
    other = tmp_path / "b.ms"
    other.mkdir()
    (other / "table.dat").write_bytes(b"")
    raw = good(fake_ms)
    raw["data"]["ms"] = ["b.ms", str(fake_ms)]
    raw["deconvolution"] = {"nterms": 2}
    raw["image"].update(primary_beam=True, reference_frequency="1.5GHz")
    resolved, settings = config.load(write(tmp_path, raw))
    assert resolved["data"]["ms"] == [str(other.resolve()), str(fake_ms)]
    assert settings["data"]["ms"] == resolved["data"]["ms"]
    assert settings["deconvolution"]["nterms"] == 2
    assert settings["image"]["reference_frequency"] == 1.5e9
    assert settings["image"]["primary_beam"] is True and settings["image"]["pb_limit"] == 0.2
    single = config.load(write(tmp_path, good(fake_ms)))
    assert single[0]["data"]["ms"] == str(fake_ms)       # the user's form is kept
    assert single[1]["data"]["ms"] == [str(fake_ms)]
    assert single[1]["deconvolution"]["nterms"] == 1
    assert single[1]["image"]["reference_frequency"] is None


def test_exponents_without_a_dot_are_numbers(tmp_path, fake_ms):
    """``epsilon: 1e-6`` (YAML 1.2, as users write it) is a number, not the string PyYAML's
    YAML 1.1 makes of it; strings that only start with digits stay strings."""
    path = write(tmp_path, f"data: {{ms: {fake_ms}}}\nimage: {{size: 256, scale: 2asec}}\n"
                           "gridder: {epsilon: 1e-6, precision: double}\n"
                           "deconvolution: {threshold: 1e-5Jy, gain: 5E-2}\n")
    _, parsed = config.load(path)
    assert parsed["gridder"]["epsilon"] == 1e-6
    assert parsed["deconvolution"]["gain"] == 0.05
    assert parsed["deconvolution"]["threshold"] == pytest.approx(1e-5)

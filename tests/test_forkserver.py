"""The fork server: htclean executables forked from a preloaded process are still separate
job processes (own pid and session, working directory, environment, streams, exit status and
record); anything else runs as a plain subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from htclean.engine import forkserver

BIN = Path(sys.executable).parent


def start(argv, cwd: Path, env=None):
    out, err = open(cwd / "out.txt", "wb"), open(cwd / "err.txt", "wb")  # noqa: SIM115
    with open(os.devnull, "rb") as inp, out, err:
        return forkserver.popen(argv, cwd, env or dict(os.environ), inp, out, err)


def test_only_this_installations_htclean_scripts_are_served(tmp_path):
    assert forkserver.served_name(str(BIN / "htclean-grid")) == "htclean-grid"
    assert forkserver.served_name("/bin/sh") is None
    other = tmp_path / "htclean-grid"  # the right name, another interpreter
    other.write_text("#!/usr/bin/env python3\n")
    assert forkserver.served_name(str(other)) is None
    proc = start(["/bin/sh", "-c", "echo plain"], tmp_path)
    assert isinstance(proc, subprocess.Popen) and proc.wait() == 0


def test_a_forked_job_is_its_own_process(tmp_path):
    (tmp_path / "R-config.yml").write_text(json.dumps({"data": {"ms": "none.ms"},
                                                       "image": {"scale": "1asec"}}))
    env = dict(os.environ)
    argv = [str(BIN / "htclean-grid"), "--config", "R-config.yml", "--mode", "weights",
            "--part", "missing.vis.npz", "--output", "w.npz", "--record", "R-g.record.json"]
    proc = start(argv, tmp_path, env)
    assert isinstance(proc, forkserver.ForkedProcess)
    assert os.getsid(proc.pid) == proc.pid  # its own session and process group
    assert proc.wait() == 2 and proc.wait() == 2
    err = (tmp_path / "err.txt").read_text().strip().splitlines()
    assert len(err) == 1 and "missing.vis.npz" in err[0]  # one line, in its own stderr
    rec = json.loads((tmp_path / "R-g.record.json").read_text())  # in its own cwd
    assert rec["exit_status"] == 2 and "missing.vis.npz" in rec["error"]
    assert rec["cpu_s"] < 5  # the child's own CPU time, not the server's
    # the job's own environment (the server's has no HTCLEAN_INJECT_FAILURE)
    assert start(argv, tmp_path, {**env, "HTCLEAN_INJECT_FAILURE": "1"}).wait() == 1
    assert "injected failure" in (tmp_path / "err.txt").read_text()
    # help goes to the job's stdout; exit 0
    assert start([str(BIN / "htclean-gather"), "--help"], tmp_path).wait() == 0
    assert (tmp_path / "out.txt").read_text().startswith("usage: htclean-gather")


def test_forked_job_can_be_signalled(tmp_path):
    """The engine stops a job by signalling its process group: a job blocked writing to a
    full pipe ends with SIGTERM's status."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        while True:
            os.write(w, b"x" * 4096)
    except BlockingIOError:
        os.set_blocking(w, True)
    with open(os.devnull, "rb") as inp, os.fdopen(w, "wb") as out:
        proc = forkserver.popen([str(BIN / "htclean-gather"), "--help"], tmp_path,
                                dict(os.environ), inp, out, out)
    time.sleep(0.5)
    assert proc.returncode is None
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait() == -signal.SIGTERM
    os.close(r)


def test_switched_off_runs_a_subprocess(tmp_path, monkeypatch):
    monkeypatch.setenv("HTCLEAN_FORKSERVER", "0")
    proc = start([str(BIN / "htclean-gather"), "--help"], tmp_path)
    assert isinstance(proc, subprocess.Popen) and proc.wait() == 0


def test_prestarted_server_serves_the_first_job(tmp_path, monkeypatch):
    """htclean run starts the server before planning; the first job waits for it to be ready
    and is forked by it (one server process, not a second one)."""
    forkserver._client.close()
    forkserver.prestart()
    server = forkserver._client._proc
    assert server is not None and server.poll() is None and not forkserver._client._ready
    proc = start([str(BIN / "htclean-gather"), "--help"], tmp_path)
    assert isinstance(proc, forkserver.ForkedProcess) and proc.wait() == 0
    assert forkserver._client._proc is server and forkserver._client._ready
    forkserver.prestart()  # already running: nothing new
    assert forkserver._client._proc is server
    forkserver._client.close()
    forkserver.prestart()  # a run that stops before its first job: the loading server is
    loading = forkserver._client._proc  # stopped at once, not waited for
    started = time.monotonic()
    forkserver._client.close()
    assert loading.poll() is not None and time.monotonic() - started < 0.5
    monkeypatch.setenv("HTCLEAN_FORKSERVER", "0")
    forkserver.prestart()
    assert forkserver._client._proc is None


@pytest.fixture(autouse=True, scope="module")
def _close_server():
    yield
    forkserver._client.close()

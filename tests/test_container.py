"""The image every pool job runs in (containers/), built and run.

The smoke test (containers/smoke.sh: every console script's --help as the image's non-root
user, the GPU extras and NVRTC, the demo inside equal to the demo outside bit for bit), and
a workflow on the test pool whose compute jobs run in HTCondor's container universe with
docker: the .sub files say ``universe = container`` and name the image, every job's record
says it ran inside it, and the image equals the embedded engine's.

Marked ``container`` and run only when asked for (``pytest -m container``; the plain suite
skips them); skipped with the reason where docker or the image is missing (build it with
``containers/build.sh``). The pool test is also marked ``pool`` and needs the pool set up
for docker (``containers/condor/apply.sh``). CI runs them in a step of their own (.ci/run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import poolkit
import pytest
from poolkit import NAME, RUN_TIMEOUT_S, Run, close_to, write_config

from htclean.imaging.fits import read_fits

pytestmark = pytest.mark.container

REPO = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("HTCLEAN_IMAGE", "htclean/htclean:0.1.0")
DOCKER = os.environ.get("DOCKER", "docker")


def docker_why_not() -> str | None:
    """Why the image cannot be run here, or None."""
    if shutil.which(DOCKER) is None:
        return f"no docker client ({DOCKER}); containers/build.sh needs docker"
    try:
        proc = subprocess.run([DOCKER, "image", "inspect", IMAGE], capture_output=True,
                              text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "the docker daemon does not answer"
    if proc.returncode != 0:
        if "daemon" in proc.stderr:
            return f"no docker daemon: {proc.stderr.strip()[:200]}"
        return f"no image {IMAGE}: build it with containers/build.sh"
    return None


@pytest.fixture(scope="module")
def image(request) -> str:
    expr = request.config.getoption("markexpr") or ""
    if "container" not in expr or "not container" in expr:
        pytest.skip("a step of its own: pytest -m container tests/test_container.py "
                    "(containers/ci.sh, from .ci/run)")
    why = docker_why_not()
    if why:
        pytest.skip(why)
    return IMAGE


def test_the_image_passes_its_smoke_test(image):
    proc = subprocess.run([str(REPO / "containers" / "smoke.sh"), image], capture_output=True,
                          text=True, timeout=600, cwd=REPO,
                          env={**os.environ, "HTCLEAN_PY": os.environ.get(
                              "HTCLEAN_PY", sys.executable)})
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "smoke: passed" in proc.stdout


@pytest.fixture(scope="module")
def docker_pool(image) -> Path:
    why = poolkit.why_not()
    if why:
        pytest.skip(why)
    has = poolkit.as_root("condor_status -af HasDocker").stdout.split()
    if "true" not in has:
        pytest.skip("the test pool does not run docker jobs (containers/condor/apply.sh)")
    # The image as already pulled for the pool's user (apply.sh says why), for this build.
    subprocess.run([str(REPO / "containers" / "condor" / "apply.sh"), image], check=True,
                   capture_output=True, timeout=120)
    return poolkit.TESTPOOL


@pytest.mark.pool
def test_a_pool_run_in_the_container_equals_the_engine(docker_pool, image, tmp_path):
    venv = poolkit.user_venv()
    ws = poolkit.workspace("htclean-container-tests")
    url = f"docker://{image}"
    cfg = write_config(ws, ws / "obs.ms", container=url)
    poolkit.give_to_user(cfg)
    run = Run(ws, venv, "container")
    engine = tmp_path / "engine"
    subprocess.run([str(venv / "htclean"), "run", str(cfg), "-o", str(engine)], check=True,
                   capture_output=True, timeout=RUN_TIMEOUT_S)
    assert run.wait() == 0, poolkit.as_user(f"pegasus-analyzer -T {run.submit}").stdout[-4000:]
    print(f"container pool run: {run.wall:.0f} s")
    expected = read_fits(engine / "outputs" / f"{NAME}-image.fits")[0]
    assert close_to(run.image(), expected) <= 1e-6

    subs = {p.name: p.read_text() for p in run.submit.rglob("htclean-*.sub")}
    submit_host = ("htclean-next", "htclean-deconvolve")  # execution.deconvolve_on: auto
    compute = {n: s for n, s in subs.items() if not n.startswith(submit_host)}
    assert compute and all("universe = container\n" in s and f"container_image = {url}\n" in s
                           for s in compute.values()), sorted(compute)
    records = [json.loads(p.read_text())
               for p in (run.out / "outputs").glob("*.record.json")]
    inside = [r for r in records if r["executable"] not in submit_host]
    kinds = {r["executable"] for r in inside}
    assert {"htclean-partition", "htclean-grid", "htclean-restore"} <= kinds, kinds
    for r in inside:
        assert r["container"] == {"runtime": "docker", "image": image, "htclean": "0.1.0"}, r
    # next and deconvolve run on the submit host (local universe), outside the image
    assert all(r["container"] is None or r["container"]["image"] is None
               for r in records if r["executable"] in submit_host)
    assert np.isfinite(run.image()).all()

"""executables/forked.py: a job's independent pieces in forked children, failures raised in
the job as they were raised in the piece."""

from __future__ import annotations

import errno
import os
import time

import pytest

from htclean.executables.forked import run_forked


def test_every_piece_runs_once(tmp_path):
    def piece(k: int):
        return lambda: (tmp_path / f"p{k}").write_text(str(os.getpid()))

    run_forked([piece(k) for k in range(4)])
    pids = [(tmp_path / f"p{k}").read_text() for k in range(4)]
    assert pids[0] == str(os.getpid())  # the first in the job itself
    assert len(set(pids)) == 4


def test_a_childs_failure_is_raised_with_its_class_and_errno(tmp_path):
    def full():
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.png"))

    with pytest.raises(OSError) as info:
        run_forked([lambda: None, full])
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "x.png")


def test_an_exception_that_does_not_pickle_becomes_its_text():
    class Local(Exception):  # a local class cannot be pickled
        pass

    def bad():
        raise Local("drawn wrong")

    with pytest.raises(RuntimeError, match="Local: drawn wrong"):
        run_forked([lambda: None, bad])


def test_the_jobs_own_failure_stops_the_children(tmp_path):
    def slow():
        time.sleep(30)
        (tmp_path / "late").write_text("x")

    def fail():
        raise ValueError("first piece")

    t0 = time.monotonic()
    with pytest.raises(ValueError, match="first piece"):
        run_forked([fail, slow])
    assert time.monotonic() - t0 < 10 and not (tmp_path / "late").exists()

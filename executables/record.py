"""The shared wrapper of every job: arguments, the job record, atomic outputs, exit codes
(the record's contents: jobrecord.py; atomic writes: atomic.py; exit classes: outcome.py).

Each executable builds its parser with ``job_parser`` and hands its work to ``run_job``::

    def main(argv=None) -> int:
        return run_job("htclean-gather", build_parser(), work, argv)

``run_job`` parses the command line, loads ``--config``, honours fault injection (below), runs
``work(args, job)``, and writes the JSON job record (``--record``) whatever the outcome; on a
GPU, imaging.gpu.gpu_monitor samples its utilisation every second into the record. The record
holds the sha256 and size of every output the job committed (``outputs``) and the sha256 of
every input it checked (``inputs_verified``), and the container it ran in (``container``:
runtime and image, null outside one; ``container_info``). A failed job removes the outputs
it had already committed, so nothing it leaves behind can be taken for done. Every failure is
one line on stderr (the traceback too with ``HTCLEAN_DEBUG=1``) and an exit status of one class:

    0  success
    1  internal: a bug or an unexpected failure (retried)
    2  input: the configuration or the input data are wrong (never retried: a retry cannot
       fix them; the workflow's jobs carry ``dagman.retry = N UNLESS-EXIT 2``)
    3  resources: no space left, an output not writable, no memory (retried: another slot
       or a later try may have them)
    4  integrity: an input differs from the sha256 recorded when it was written, a damaged
       copy (retried: the retry gets a fresh copy)

Integrity: ``HTCLEAN_INPUT_CHECKSUMS`` names a file of ``<sha256>  <name>`` lines (sha256sum's
format) that the embedded engine writes from the records of the jobs that produced the
inputs; every input read through ``Job.read`` that is listed there is checked.

Fault injection (tests and the engine's fault runs): ``HTCLEAN_INJECT_FAILURE=1`` exits 1
before any output; ``HTCLEAN_INJECT_HANG=1`` sleeps instead of working (for the engine's
timeout); ``HTCLEAN_INJECT_PARTIAL=1`` leaves the first output it committed half written and
kills itself with SIGKILL, as a writer that is not atomic would when it dies.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

from htclean.executables import heap
from htclean.executables.atomic import write_json_atomic
from htclean.executables.jobrecord import build_record, job_name
from htclean.executables.outcome import (
    EXIT_INPUT,
    EXIT_INTERNAL,
    IntegrityError,
    classify,
    read_checksums,
    sha256_of,
)
from htclean.imaging.errors import InputError

INJECT_ENV = "HTCLEAN_INJECT_FAILURE"
HANG_ENV = "HTCLEAN_INJECT_HANG"
PARTIAL_ENV = "HTCLEAN_INJECT_PARTIAL"
CHECKSUMS_ENV = "HTCLEAN_INPUT_CHECKSUMS"
DEBUG_ENV = "HTCLEAN_DEBUG"


# --- arguments -----------------------------------------------------------------------------


class JobParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def job_parser(prog: str, description: str) -> JobParser:
    """A parser with the arguments every job takes: ``--config`` and ``--record``."""
    parser = JobParser(prog=prog, description=description,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, metavar="R-config.yml",
                        help="the run's resolved configuration (YAML)")
    parser.add_argument("--record", metavar="R-JOB.record.json",
                        help="where to write this job's JSON record (wall/CPU time, memory, "
                        "bytes, visibilities, device, GPU samples)")
    return parser


def load_settings(path: str) -> dict:
    """The parsed settings of a resolved configuration (files are not checked: a job runs
    where the submit host's paths need not exist)."""
    from htclean.workflows import config

    _, parsed = config.load(path, check_files=False)
    return parsed


def existing_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path if it is a regular file, else InputError naming ``what``."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what}: no such file: {p}")
    return p


# --- the job and its record ----------------------------------------------------------------


class Job:
    """What a running job tells its record: inputs read, outputs committed, visibilities,
    device. ``settings`` is the parsed configuration (None until loaded)."""

    def __init__(self, name: str, executable: str, argv: list[str]):
        self.name = name
        self.executable = executable
        self.argv = argv
        self.settings: dict | None = None
        self.visibilities = 0
        self.device = "cpu"
        self.inputs: list[Path] = []
        self.outputs: list[Path] = []
        self.partly_read: dict[Path, int] = {}  # input -> the bytes of it actually read
        self._checksums: dict[str, str] | None = None
        self.verified: dict[str, str] = {}

    def read(self, path: str | os.PathLike, what: str = "input", allow_dir: bool = False) -> Path:
        """Check that an input file (or, with ``allow_dir``, directory) exists (InputError
        naming ``what`` if not); count its size in bytes_read. Returns it as a Path."""
        p = Path(path)
        if not (allow_dir and p.is_dir()):
            existing_file(p, what)
            expected = self.known_checksums().get(os.path.normpath(str(path)))
            if expected is not None:
                got = sha256_of(p)
                if got != expected:
                    raise IntegrityError(f"{what}: {p}: sha256 {got[:16]}... differs from "
                                         f"{expected[:16]}... recorded when it was written "
                                         "(a damaged copy)")
                self.verified[str(path)] = got
        self.inputs.append(p)
        return p

    def known_checksums(self) -> dict[str, str]:
        """{name: sha256} of the inputs whose checksum is known (``HTCLEAN_INPUT_CHECKSUMS``)."""
        if self._checksums is None:
            self._checksums = read_checksums(os.environ.get(CHECKSUMS_ENV))
        return self._checksums

    def output(self, path: str | os.PathLike) -> Path:
        """Declare an output this job has committed (counted in bytes_written, removed if the
        job fails later)."""
        p = Path(path)
        if not p.exists():
            raise RuntimeError(f"output {p} was declared but does not exist")
        self.outputs.append(p)
        return p

    def write_json(self, path: str | os.PathLike, obj: Any) -> Path:
        return self.output(write_json_atomic(path, obj))

    def discard_outputs(self) -> None:
        for p in self.outputs:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        self.outputs = []


def run_job(executable: str, parser: argparse.ArgumentParser,
            work: Callable[[argparse.Namespace, Job], None],
            argv: list[str] | None = None, uses_device: bool = False) -> int:
    """Run one job: parse, load settings, ``work(args, job)``, write the record; exit status.

    uses_device: the job grids or deconvolves on ``gridder.device``; it is resolved here
    (recorded as ``cpu`` or ``gpu:<name>``) and, on a GPU, NVML samples it every second.

    Exit status: one of the classes in the module docstring (0 every output committed, 1
    internal or injected failure, 2 input, 3 resources, 4 integrity), or 130/143 when
    interrupted by SIGINT/SIGTERM. Any status but 0 removes the outputs already committed.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    heap.return_freed_memory()  # the job's peak memory is what it holds, not what it freed
    start = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    job = Job(job_name(args.record, executable), executable, argv)
    monitor = None
    status, error = 0, None
    previous = _catch_sigterm()
    try:
        if os.environ.get(INJECT_ENV) == "1":
            raise _InjectedFailure(f"injected failure ({INJECT_ENV}=1)")
        job.settings = load_settings(str(job.read(args.config, "--config")))
        job.name = job_name(args.record, executable, job.settings["output"]["run_id"])
        if os.environ.get(HANG_ENV) == "1":
            time.sleep(24 * 3600)  # an injected hang: only a timeout ends it
        if uses_device:
            from htclean.imaging.gpu import device

            chosen = device.select(job.settings["gridder"]["device"])
            job.device = chosen.label
            if chosen.is_gpu:
                from htclean.imaging.gpu import gpu_monitor

                monitor = gpu_monitor.start()  # None when NVML cannot watch this GPU
        work(args, job)
        if os.environ.get(PARTIAL_ENV) == "1":
            _die_half_written(job)
    except (KeyboardInterrupt, _Terminated) as exc:
        status = 143 if isinstance(exc, _Terminated) else 130
        error = f"interrupted ({'SIGTERM' if status == 143 else 'SIGINT'})"
        print(f"{executable}: {error}", file=sys.stderr)
    except _InjectedFailure as exc:
        status, error = EXIT_INTERNAL, str(exc)
        print(f"{executable}: failed: {error}", file=sys.stderr)
    except Exception as exc:  # every failure becomes one line and a class
        status, error = classify(_placed(exc))
        word = "error" if status == EXIT_INPUT else "failed"
        print(f"{executable}: {word}: {error}", file=sys.stderr)
        if status == EXIT_INTERNAL and os.environ.get(DEBUG_ENV) == "1":
            traceback.print_exc()
    finally:
        samples = monitor.stop() if monitor is not None else []
        if previous[0]:
            signal.signal(signal.SIGTERM, previous[1] if previous[1] is not None
                          else signal.SIG_DFL)
    if status != 0:
        job.discard_outputs()
    if args.record:
        rec = build_record(job, start, time.perf_counter() - t0, status, error, list(samples))
        try:
            write_json_atomic(args.record, rec)
        except OSError as exc:
            code, line = classify(exc)
            if status == 0:  # a failed job has said why in its one line already
                print(f"{executable}: failed: cannot write the record {args.record}: {line}",
                      file=sys.stderr)
            return status or code
    return status


def _placed(exc: BaseException) -> BaseException:
    """A failed write or flush (no space, quota) raises OSError without a file name: name the
    working directory, where every job writes its outputs."""
    if isinstance(exc, OSError) and exc.filename is None and exc.errno in (
            errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return OSError(exc.errno, exc.strerror, os.getcwd())
    return exc


def _die_half_written(job: Job) -> NoReturn:
    """Fault injection: cut the first committed output to half its size, then SIGKILL."""
    if job.outputs:
        target = job.outputs[0]
        size = target.stat().st_size
        with open(target, "r+b") as f:
            f.truncate(size // 2)
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


class _Terminated(BaseException):
    """SIGTERM (HTCondor removing the job, the engine stopping): unwinds like Ctrl-C, so
    temporary files are removed and the record says so."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated()


def _catch_sigterm() -> tuple[bool, Any]:
    """Turn SIGTERM into ``_Terminated`` (main thread only): (installed, previous handler)."""
    if threading.current_thread() is not threading.main_thread():
        return False, None
    return True, signal.signal(signal.SIGTERM, _raise_terminated)


class _InjectedFailure(Exception):
    """The engine's fault injection (HTCLEAN_INJECT_FAILURE=1)."""

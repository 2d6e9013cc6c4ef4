"""Independent pieces of one job's work side by side, in forked children of the job.

What a job does one piece after another on one core while the others idle (the restore job's
PNG previews: a quarter of a second of matplotlib each) is done here in children of the job
process, which share its memory as it is at the fork (nothing is copied or pickled on the way
in). A child that fails sends its exception back (pickled, else its text as a RuntimeError),
and ``run_forked`` raises the first one, so a job's exit class is what it would have been
had the pieces run in the job itself (an OSError keeps its errno). The children's CPU time
and peak memory are in the job's record (it counts the children it waited for).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
from collections.abc import Callable, Sequence


def _child(piece: Callable[[], None], write_fd: int) -> None:
    """In the child: run ``piece``; exit 0, or send the exception and exit 1. Never returns."""
    code = 1
    try:
        try:
            piece()
            code = 0
        except BaseException as exc:  # noqa: BLE001 (sent to the job process to raise)
            try:
                data = pickle.dumps(exc)
            except Exception:  # noqa: BLE001 (an exception that does not pickle)
                data = pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
            with os.fdopen(write_fd, "wb") as out:
                write_fd = -1
                out.write(data)
    finally:
        if write_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(write_fd)
        os._exit(code)


def run_forked(pieces: Sequence[Callable[[], None]]) -> None:
    """Run every piece, the first in this process and each other one in a forked child, all
    at once; return when all have ended, raising the first failure (in order). On an
    exception here (a failure, an interrupt) the children still running are killed."""
    children: list[tuple[int, int]] = []  # (pid, read end of its error pipe)
    try:
        for piece in pieces[1:]:
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                _child(piece, write_fd)
            os.close(write_fd)
            children.append((pid, read_fd))
        if pieces:
            pieces[0]()
        failures = []
        while children:
            pid, read_fd = children[0]
            with os.fdopen(read_fd, "rb") as err:
                data = err.read()
            children.pop(0)
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                failures.append(pickle.loads(data) if data else RuntimeError(
                    f"a forked piece of the job ended with status "
                    f"{os.waitstatus_to_exitcode(status)}"))
        if failures:
            raise failures[0]
    finally:
        for pid, read_fd in children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)
            with contextlib.suppress(OSError):
                os.close(read_fd)

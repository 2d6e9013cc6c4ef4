"""A fork server: htclean's executables started without the interpreter's and the numerical
stack's start-up cost.

The embedded engine would otherwise pay, for every job, a new Python interpreter and the
imports of numpy, ducc0, python-casacore, astropy and matplotlib (about half a second, more
than many bookkeeping jobs take to run). The server is one process started once per engine
run (``python -m htclean.engine.forkserver``) with those modules, every ``htclean-*``
console script's module and the htclean modules the jobs import as they run (the
configuration's, the workflow writer's for ``next``) imported. It is ready once it has what
the first job, the partition, needs (``FIRST``, a tenth of the whole) and imports the rest
one module at a time while no request waits, so the first job does not wait for modules
only later jobs use (a job that needs one not loaded yet imports it itself). For each job it
forks a child that is, from then on, a
job process like any other: its own session and process group (so the engine's interrupt
signals it as before), its own working directory, environment, stdin/stdout/stderr (the
engine's open files, passed over the socket), its own exit status, and its own job record
(the executables write it; the child's peak-memory mark is reset at the fork, so
``max_rss_mb`` is the job's own).

Used only for a console script of this installation (``htclean-*`` whose ``#!`` interpreter
is this Python); anything else, or ``HTCLEAN_FORKSERVER=0``, runs as a plain subprocess.
Protocol: one Unix-socket connection per job; the client sends the request (JSON: argv, cwd,
env) with its three file descriptors (SCM_RIGHTS); the child answers ``pid N`` once it has
its own session and ``exit S`` just before it exits; the server sends ``exit S`` again when it
reaps the child (the Popen convention: -signal when killed), which is the only one a child
killed by a signal sends, and the client reads the first. The server
is single-threaded (it forks, so no lock may be held by another thread) and exits when the
engine closes its stdin.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import pkgutil
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

# before "ready": what the partition, the first job of a run, imports (with the executables)
FIRST = ("numpy", "yaml", "casacore.tables", "htclean.workflows.config",
         "htclean.imaging.ms.parts")
PRELOAD = ("numpy", "scipy.ndimage", "scipy.optimize", "ducc0", "casacore.tables",
           "astropy.io.fits", "astropy.time", "astropy.wcs", "yaml", "mpl_toolkits.axes_grid1")
IMAGING = "htclean.imaging"  # its modules are preloaded too (those of imaging.gpu are not)
# what jobs import as they run besides: the device choice (CuPy only when asked for) and the
# workflow writer of ``next``
LATER = ("htclean.imaging.gpu.device", "htclean.workflows.names",
         "htclean.workflows.serialize", "htclean.workflows.graph")
MAX_REQUEST = 1 << 20


def _scripts() -> dict[str, str]:
    """console script name -> 'module:function' of htclean's executables."""
    return {ep.name: ep.value for ep in entry_points(group="console_scripts")
            if ep.name.startswith("htclean-")}


@cache
def served_name(executable: str) -> str | None:
    """The console script name when ``executable`` is one of this installation's htclean
    executables (a ``htclean-*`` script run by this very interpreter), else None."""
    path = Path(executable)
    if path.name not in _scripts():
        return None
    try:
        with path.open("rb") as f:
            first = f.readline(4096)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    interpreter = first[2:].decode(errors="replace").split()
    if not interpreter:
        return None
    try:
        same = os.path.samefile(interpreter[0], sys.executable)
    except OSError:
        return None
    return path.name if same else None


def enabled() -> bool:
    return os.environ.get("HTCLEAN_FORKSERVER", "1") not in ("0", "no", "false", "")


# --- the client side (the engine) ------------------------------------------------------------


class ForkedProcess:
    """A job forked by the server: the part of subprocess.Popen the engine uses."""

    def __init__(self, conn: socket.socket, reader, pid: int):
        self._conn, self._file, self.pid = conn, reader, pid
        self.returncode: int | None = None

    def wait(self) -> int:
        """Block until the job ends; its exit status (-N when killed by signal N)."""
        if self.returncode is None:
            line = self._file.readline()
            try:
                self.returncode = int(line.split()[1]) if line.startswith("exit ") else -9
            finally:
                self._file.close()
                self._conn.close()
        return self.returncode


class Client:
    """The engine's handle on one server process, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._ready = False
        self._dir: str | None = None
        self.address: str | None = None

    def _spawn(self) -> None:
        """Start the server process; it loads its modules while the caller goes on."""
        self._dir = tempfile.mkdtemp(prefix="htclean-forkserver-")
        self.address = os.path.join(self._dir, "socket")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "htclean.engine.forkserver", self.address],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
        self._ready = False
        atexit.register(self.close)

    def _await_ready(self) -> None:
        if self._ready:
            return
        if self._proc.stdout.readline().strip() != b"ready":
            self.close()
            raise OSError("the fork server did not start")
        self._ready = True

    def prestart(self) -> None:
        """Start the server now (its imports overlap the caller's work, e.g. planning)."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._spawn()

    def launch(self, argv: list[str], cwd: str | os.PathLike, env: dict[str, str],
               stdin, stdout, stderr) -> ForkedProcess:
        """Fork ``argv`` (a served console script) in the server; OSError if it cannot."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._spawn()
            self._await_ready()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.address)
            request = json.dumps({"argv": argv, "name": served_name(argv[0]),
                                  "cwd": os.fspath(cwd), "env": env}).encode() + b"\n"
            socket.send_fds(conn, [request], [stdin.fileno(), stdout.fileno(),
                                              stderr.fileno()])
            reader = conn.makefile("r")
            line = reader.readline()
            if not line.startswith("pid "):
                reader.close()
                raise OSError(f"the fork server refused {argv[0]}: {line.strip() or 'closed'}")
            return ForkedProcess(conn, reader, int(line.split()[1]))
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        """Stop the server (its running children go on and are reaped by init)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if not self._ready:  # still loading (a run that stopped before its first job)
                proc.kill()
            with contextlib.suppress(OSError):
                proc.stdin.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            self._ready = False
        if self._dir:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self._dir, "socket"))
                os.rmdir(self._dir)
            self._dir = None


_client = Client()


def prestart() -> None:
    """Start the fork server ahead of the first job (nothing when it is switched off)."""
    if enabled():
        _client.prestart()


def popen(argv: list[str], cwd: str | os.PathLike, env: dict[str, str], stdin, stdout,
          stderr):
    """Start a job: forked by the server when ``argv[0]`` is a served htclean executable,
    else subprocess.Popen (both in a new session, as the engine wants)."""
    if enabled() and served_name(argv[0]) is not None:
        return _client.launch(argv, cwd, env, stdin, stdout, stderr)
    return subprocess.Popen(argv, cwd=cwd, env=env, stdin=stdin, stdout=stdout, stderr=stderr,
                            start_new_session=True)


# --- the server --------------------------------------------------------------------------------


def _child(request: dict, fds: list[int], entry: str, keep: list, ready: int,
           conn: socket.socket) -> None:
    """In the forked child: become the job, run it, exit with its status. Never returns.
    The child answers the engine on ``conn`` itself: ``pid N`` once it has its own session,
    and its status just before it exits, so the engine moves on while the kernel tears the
    process down (a few ms for a child of this server); one killed by a signal has its
    status sent by the server when it is reaped."""
    code = 1
    try:
        for obj in keep:
            obj.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.setsid()
        conn.sendall(f"pid {os.getpid()}\n".encode())  # the engine may signal it now
        os.write(ready, b"1")
        os.close(ready)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 (the job's own streams)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        with contextlib.suppress(OSError):  # the peak memory mark: this job's own from here
            Path("/proc/self/clear_refs").write_text("5")
        with contextlib.suppress(OSError):  # top and ps -o comm name the job, not the server
            Path("/proc/self/comm").write_text(Path(request["argv"][0]).name[:15])
        sys.argv = [request["argv"][0], *request["argv"][1:]]
        module, _, func = entry.partition(":")
        main = getattr(importlib.import_module(module), func)
        try:
            result = main(request["argv"][1:])
            code = result if isinstance(result, int) else (0 if result is None else 1)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 (a job's crash is its exit status, as a process's)
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(BaseException):
            conn.sendall(f"exit {code & 0xFF}\n".encode())
        os._exit(code & 0xFF)


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, MAX_REQUEST, 3)
    while not data.endswith(b"\n"):
        more = conn.recv(MAX_REQUEST)
        if not more:
            break
        data += more
    return json.loads(data), fds


def _import(name: str) -> None:
    """Import ``name`` if it can be (a module missing here is the job's to report)."""
    with contextlib.suppress(Exception):
        importlib.import_module(name)


def _later() -> Iterator[None]:
    """Import the rest of the preload, one module per step."""
    for name in PRELOAD:
        yield _import(name)
    try:
        import matplotlib

        matplotlib.use("Agg")
    except Exception:  # noqa: BLE001 (no previews here: the restore job reports it)
        pass
    else:
        yield _import("matplotlib.pyplot")
    walk = pkgutil.walk_packages(importlib.import_module(IMAGING).__path__, f"{IMAGING}.")
    while True:
        try:
            module = next(walk)
        except StopIteration:
            break
        except Exception:  # noqa: BLE001 (a package that fails to import: the job reports it)
            continue
        if not module.name.startswith(f"{IMAGING}.gpu"):
            yield _import(module.name)
    for name in LATER:
        yield _import(name)


def serve(address: str) -> None:
    """Preload FIRST, listen on ``address``, fork a child per request until stdin closes;
    the rest of the preload is imported while no request waits."""
    scripts = _scripts()
    for name in FIRST:
        _import(name)
    for value in scripts.values():
        importlib.import_module(value.partition(":")[0])
    steps: Iterator[None] | None = _later()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(64)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(sys.stdin, selectors.EVENT_READ, "stdin")
    children: dict[int, tuple[socket.socket, int]] = {}  # pidfd -> (connection, pid)
    print("ready", flush=True)
    while True:
        events = sel.select(timeout=0 if steps is not None else None)
        if not events and steps is not None:
            if next(steps, StopIteration) is StopIteration:
                steps = None
            continue
        for key, _ in events:
            if key.data == "stdin":
                if not os.read(sys.stdin.fileno(), 4096):
                    listener.close()
                    return
            elif key.data == "accept":
                conn, _ = listener.accept()
                _start_child(conn, scripts, sel, children, listener)
            else:  # a child's pidfd: it has ended
                conn, pid = children.pop(key.fd)
                sel.unregister(key.fd)
                os.close(key.fd)
                _, status = os.waitpid(pid, 0)
                with contextlib.suppress(OSError):
                    conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
                conn.close()


def _start_child(conn: socket.socket, scripts: dict[str, str], sel, children: dict,
                 listener: socket.socket) -> None:
    fds: list[int] = []
    try:
        request, fds = _receive(conn)
        entry = scripts.get(request.get("name") or "")
        if entry is None or len(fds) != 3:
            raise ValueError(f"not a served executable: {request.get('argv')}")
        keep = [sel, listener, *(c for c, _ in children.values())]
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            _child(request, fds, entry, keep, ready_w, conn)
        os.close(ready_w)
        os.read(ready_r, 1)  # the child has its own session and has sent its pid
        os.close(ready_r)
        pidfd = os.pidfd_open(pid)
        children[pidfd] = (conn, pid)
        sel.register(pidfd, selectors.EVENT_READ, "child")
    except (OSError, ValueError) as exc:
        with contextlib.suppress(OSError):
            conn.sendall(f"error {exc}\n".encode())
        conn.close()
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


if __name__ == "__main__":
    serve(sys.argv[1])
    # no interpreter teardown of the preloaded modules (0.1-0.3 s), which the engine's close
    # waits for at the end of every run
    sys.stdout.flush()
    os._exit(0)

"""Faults injected into htclean workflows running on the real test pool (test_pool_faults.py,
benchmarks/pool_soak.py), each as a pool operator or a failing machine would cause it:

    evict     a running compute job vacated (``condor_vacate_job``)
    transfer  a compute job's staged input hidden before it starts, put back once the job is
              held for the failed transfer (the site's periodic_remove, then DAGMan's retry)
    missing   the same input hidden for good: the run fails; then put back and ``pegasus-run``
    dagman    a level's condor_dagman killed with SIGKILL mid-cycle
    staging   the staging directory (a small tmpfs) filled up mid-run; then freed and
              ``pegasus-run``
    next      the submit host's ``next`` job killed with SIGKILL while it runs
    restart   the whole pool stopped and started again mid-run (stop.sh, start.sh)

``Fault(kind, run, target)`` runs in a thread of its own (``start``): it waits for its moment,
injects, records what it saw in ``notes`` and, for the faults that fail the run, repairs and
resumes it; ``done`` is set at the end. ``injected`` is set once the fault is in (or gave up).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from poolkit import RUN_TIMEOUT_S, TESTPOOL, USER, Run, as_root, as_user

KINDS = ("evict", "transfer", "missing", "dagman", "staging", "next", "restart")
# Faults that fail the run: repaired, then pegasus-run resumes it from the rescue DAGs.
RESUMED = ("missing", "staging")
STAGING_MB = 8
POLL_S = 0.2
# The pool is restarted (and pegasus-run submits) by one thread at a time.
POOL_LOCK = threading.Lock()
# When the pool was last restarted (time.monotonic()); runs started before it may need
# pegasus-run (see Fault._finish).
RESTARTS: list[float] = []


def wait_for(what: Callable[[], object], timeout: float, step: float = POLL_S) -> object:
    """``what()`` once it is true, or None after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = what()
        if value:
            return value
        time.sleep(step)
    return None


def condor_jobs(constraint: str = "true") -> list[dict]:
    """The queue's jobs (every user) matching ``constraint``, as ClassAd dicts; raises when
    the schedd does not answer (an empty list must mean an empty queue: the restart relies on
    it to leave other users' jobs alone)."""
    why = "timed out"
    for _ in range(5):
        try:
            proc = as_root("condor_q -allusers -json -attributes ClusterId,JobStatus,"
                           "HoldReasonCode,HoldReason,Iwd,pegasus_wf_dag_job_id "
                           f"-constraint '{constraint}'", timeout=60)
        except subprocess.TimeoutExpired:
            continue
        if proc.returncode == 0:
            text = proc.stdout.strip()
            return json.loads(text) if text else []
        why = proc.stderr.strip()[-300:]
        time.sleep(2)
    raise RuntimeError(f"condor_q does not answer: {why}")


def run_jobs(run: Run, constraint: str = "true") -> list[dict]:
    """The run's jobs in the queue (their Iwd is under its plan directory)."""
    prefix = str(run.out)
    return [j for j in condor_jobs(constraint) if str(j.get("Iwd", "")).startswith(prefix)]


def foreign_jobs(mine: list[Path]) -> list[dict]:
    """Jobs in the queue that belong to none of the directories ``mine``."""
    prefixes = tuple(str(p) for p in mine)
    return [j for j in condor_jobs() if not str(j.get("Iwd", "")).startswith(prefixes)]


def processes() -> list[tuple[int, list[str], str]]:
    """(pid, argv, cwd) of every process we can read."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        out.append((int(entry.name), [a.decode(errors="replace") for a in argv if a], cwd))
    return out


def environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return {}
    return dict(v.decode(errors="replace").split("=", 1) for v in raw if b"=" in v)


EVENT = re.compile(r"Event: ULOG_(\w+) for HTCondor Node (\S+) \((\d+)\.\d+\.\d+\) "
                   r"\{([^}]*)\}")


def node_events(run: Run) -> dict[str, list[tuple[str, int]]]:
    """What HTCondor logged for every DAG node of every level, '<level>/<node>': [(event,
    cluster), ...] in order (SUBMIT, EXECUTE, JOB_EVICTED, JOB_HELD, JOB_ABORTED,
    JOB_TERMINATED, POST_SCRIPT_TERMINATED...). Read from the levels' dagman.out files, each
    event once however often a DAGMan restarted and replayed it in recovery mode (the
    jobstate logs count an event again each time pegasus-monitord replays them)."""
    out: dict[str, list[tuple[str, int]]] = {}
    for log in sorted(run.submit.rglob("*.dag.dagman.out")):
        level = log.name.split(".dag.")[0]
        level = run.run_id if level.endswith("-top-0") else level
        seen = set()
        for event, node, cluster, when in EVENT.findall(log.read_text(errors="replace")):
            if (event, node, cluster, when) not in seen:
                seen.add((event, node, cluster, when))
                out.setdefault(f"{level}/{node}", []).append((event, int(cluster)))
    return out


def level_events(run: Run, level: str) -> dict[str, list[str]]:
    """The events of one level's nodes (the top: the run id; else 'cycle-KK'), by node."""
    return {job.split("/", 1)[1]: [e for e, _ in ev] for job, ev in node_events(run).items()
            if job.split("/", 1)[0] == level}


def reruns(run: Run) -> dict[str, int]:
    """Nodes that were submitted (as new jobs) or started more than once, '<level>/<node>':
    how often."""
    out = {}
    for job, events in node_events(run).items():
        n = max(len({c for e, c in events if e == "SUBMIT"}),
                sum(e == "EXECUTE" for e, _ in events))
        if n > 1:
            out[job] = n
    return out


def hold_in_log(run: Run, level: str, node: str | None = None) -> dict | None:
    """The first hold of ``node`` (None: of any node) that the level's DAGMan saw: its node,
    cluster, HoldReasonCode and reason (from the level's HTCondor user log), or None."""
    name = r"\S+" if node is None else re.escape(node)
    for log in run.submit.rglob(f"{level}.dag.dagman.out"):
        found = re.search(rf"Event: ULOG_JOB_HELD for HTCondor Node ({name}) \((\d+)\.",
                          log.read_text(errors="replace"))
        if not found:
            continue
        node, cluster = found.group(1), int(found.group(2))
        for user_log in log.parent.glob("*.log*"):
            held = re.search(rf"^012 \({cluster}\.000\.000\).*\n\t(.*)\n\tCode (\d+)",
                             user_log.read_text(errors="replace"), re.M)
            if held:
                return {"node": node, "ClusterId": cluster, "HoldReason": held.group(1).strip(),
                        "HoldReasonCode": int(held.group(2))}
        return {"node": node, "ClusterId": cluster, "HoldReason": "", "HoldReasonCode": None}
    return None


def executing(run: Run, cluster: int) -> bool:
    """Whether HTCondor logged job ``cluster`` executing (event 001) in a user log of the run."""
    pattern = re.compile(rf"^001 \({cluster}\.000\.000\)", re.M)
    return any(pattern.search(log.read_text(errors="replace"))
               for log in run.submit.rglob("*.log")
               if not log.name.endswith((".dagman.log", "jobstate.log", "monitord.log")))


def level_over(run: Run, level: str) -> bool:
    """Whether the level's DAGMan has exited (successfully or not)."""
    return any("EXITING WITH STATUS" in log.read_text(errors="replace")
               for log in run.submit.rglob(f"{level}.dag.dagman.out"))


def scratch(run: Run, level: str = "") -> Path:
    """The run's staging directory of a level (condorio: the submit host's scratch)."""
    top = run.out / "scratch" / run.run_id
    return top if not level else next(iter(top.rglob(level)), top / "00" / "00" / level)


def dagman_pids(run: Run, level: str) -> list[int]:
    """condor_dagman processes of the run's ``level`` (their cwd is the level's submit dir)."""
    return [pid for pid, argv, cwd in processes()
            if argv and argv[0].endswith("condor_dagman") and cwd.startswith(str(run.out))
            and (Path(cwd).name.split(".")[0] == level)]


def job_level(job: str) -> str:
    """The level (cycle-KK) that runs a job of a pool run whose minor cycle runs in next:
    next-cKK heads cycle-KK and cycle K+1's residual jobs follow it there (graph.py), so a
    residual job of cycle K runs in cycle-(K-1). Cycle 1's run in the top level, where the
    grid jobs read the same parts: no fault that hides a part aims at them."""
    k = int(job.split("-c")[1][:2]) - (1 if job.startswith("residual-") else 0)
    if k < 1:
        raise ValueError(f"{job} runs in the top level: aim at a job of a later cycle")
    return f"cycle-{k:02d}"


class Fault:
    """One fault, injected into ``run`` by a thread of its own; ``target`` is the job (dax
    id) it aims at, or the level for ``dagman``."""

    # a pool run's level cycle-KK holds next-cKK and cycle K+1's residual jobs (graph.py):
    # the jobs aimed at here run in cycle-01, whose stage-in links the parts into its
    # staging directory (cycle 1's run in the top level, beside the grid jobs reading the
    # same parts); the run needs 2 major cycles at least
    TARGETS = {"evict": "residual-c02-p000", "transfer": "residual-c02-p001",
               "missing": "residual-c02-p001", "dagman": "cycle-01", "staging": "cycle-01",
               "next": "next-c00", "restart": "cycle-02"}

    def __init__(self, kind: str, run: Run, target: str | None = None,
                 others: list[Fault] | None = None, mine: list[Path] | None = None):
        self.kind, self.run = kind, run
        self.target = target or self.TARGETS[kind]
        self.others, self.mine = others or [], mine or [run.out]
        self.notes: dict[str, object] = {"kind": kind, "target": self.target}
        self.injected, self.done = threading.Event(), threading.Event()
        self.error: str | None = None
        self.state: int | None = None
        self.thread = threading.Thread(target=self._main, name=f"fault-{kind}", daemon=True)

    def start(self) -> Fault:
        self.thread.start()
        return self

    def join(self, timeout: float = RUN_TIMEOUT_S * 2) -> Fault:
        self.thread.join(timeout)
        return self

    def _main(self) -> None:
        try:
            getattr(self, f"_{self.kind}")()
            self.state = self._finish()
        except Exception:  # recorded for the test to show
            self.error = traceback.format_exc()
        finally:
            self.injected.set()
            self.done.set()

    def _finish(self) -> int:
        """The run's end. A run that a pool restart failed (Pegasus 6.0-dev: the top level's
        pegasus-dagman dies relaunching pegasus-monitord, see the README) is resumed with
        pegasus-run, twice at most, and the notes say so."""
        with self.run.lock:
            state = self.run.wait()
            while state != 0 and any(t > self.run.started for t in RESTARTS) and \
                    getattr(self.run, "resumes", 0) < 2:
                self.run.resumes = getattr(self.run, "resumes", 0) + 1
                self._resume()
                state = self.run.wait()
            if getattr(self.run, "resumes", 0):
                self.note(resumed_after_restart=self.run.resumes)
            return state

    def note(self, **kw) -> None:
        self.notes.update(kw)

    # --- the faults -----------------------------------------------------------------------

    def dagman_node(self) -> str:
        """The job of level ``target`` (cycle-KK) after whose POST script ``dagman`` kills the
        level's DAGMan: its first residual job, of cycle K+1 (after the level's next job,
        which ran the minor cycle; that job succeeded and must not run again after the
        recovery)."""
        return f"htclean-grid_residual-c{int(self.target[-2:]) + 1:02d}-p000"

    @property
    def level(self) -> str:
        """The level the target job runs in (``job_level``)."""
        return job_level(self.target)

    def _dag_job(self) -> str:
        kind = "next" if self.target.startswith("next") else "grid"
        return f"htclean-{kind}_{self.target}"

    def _evict(self) -> None:
        dag_job = self._dag_job()
        found = wait_for(lambda: run_jobs(self.run, f'JobStatus == 2 && '
                                          f'pegasus_wf_dag_job_id == "{dag_job}"'), 600)
        if not found:
            return self.note(injected=False, why=f"{dag_job} never seen running")
        cluster = found[0]["ClusterId"]
        # running in the queue includes the input transfer: wait for the execute event, so
        # that the eviction interrupts the job itself (then a second execute event follows)
        if not wait_for(lambda: executing(self.run, cluster), 300, step=0.1):
            return self.note(injected=False, why=f"{dag_job} ({cluster}) never executed")
        time.sleep(0.5)  # well inside its run: PegasusLite is setting up or htclean working
        proc = as_root(f"condor_vacate_job {cluster}")
        self.note(injected=proc.returncode == 0, cluster=cluster, vacate=proc.stdout.strip())
        self.injected.set()

    def _part_link(self) -> Path:
        part = f"{self.run.run_id}-part-{self.target.rsplit('-p', 1)[1]}.vis.npz"
        return scratch(self.run, self.level) / part

    def _hide_input(self) -> tuple[Path, Path] | None:
        """Hide the target's part in its level's staging directory once the level's
        stage-in put it there; (where it was, where it is now)."""
        link = wait_for(lambda: os.path.lexists(self._part_link()) and self._part_link(), 600,
                        step=0.05)
        if not link:
            self.note(injected=False, why=f"{self._part_link()} never appeared")
            return None
        hidden = link.with_name(f".hidden-{link.name}")
        os.rename(link, hidden)
        self.note(injected=True, hidden=str(link))
        self.injected.set()
        return link, hidden

    def _held(self, timeout: float = 600) -> dict | None:
        """The target's first hold, as soon as its DAGMan logs it (the site's periodic_remove
        may remove the job a second later, before condor_q shows it held)."""
        return wait_for(lambda: hold_in_log(self.run, self.level, self._dag_job()), timeout,
                        step=0.1)

    def _transfer(self) -> None:
        paths = self._hide_input()
        if not paths:
            return
        held = self._held()
        os.rename(paths[1], paths[0])  # the file is back
        if held:
            self.note(held=held["HoldReasonCode"], hold_reason=held["HoldReason"],
                      cluster=held["ClusterId"])

    def _missing(self) -> None:
        paths = self._hide_input()
        if not paths:
            return
        held = self._held()
        if held:
            self.note(held=held["HoldReasonCode"], hold_reason=held["HoldReason"])
        self.note(failed=self.run.wait())
        self.note(analyzer=as_user(f"pegasus-analyzer -r {self.run.submit}", timeout=300).stdout)
        os.rename(paths[1], paths[0])
        self._resume()

    def _resume(self) -> None:
        with POOL_LOCK:
            self.run.proc.communicate(timeout=RUN_TIMEOUT_S)
            proc = as_user(f"pegasus-run {self.run.submit}", timeout=300)
        self.note(pegasus_run=proc.returncode)
        self.run.state = None

    def _dagman(self) -> None:
        node = self.dagman_node()

        def ready() -> bool:  # its first residual job over, POST script included
            log = next(self.run.submit.rglob(f"{self.target}.dag.dagman.out"), None)
            done = log is not None and f"POST Script of node {node} completed successfully" \
                in log.read_text(errors="replace")
            return done and bool(dagman_pids(self.run, self.target))
        if not wait_for(ready, 600):
            return self.note(injected=False, why=f"{node} never succeeded in {self.target}")
        pids = dagman_pids(self.run, self.target)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        self.note(injected=True, killed=pids)
        self.injected.set()
        t0 = time.monotonic()
        again = wait_for(lambda: [p for p in dagman_pids(self.run, self.target)
                                  if p not in pids], 300, step=0.5)
        self.note(restarted_by_condor=bool(again),
                  restarted_after_s=round(time.monotonic() - t0, 1) if again else None)

    def _staging(self) -> None:
        level = scratch(self.run, self.target)
        if not wait_for(lambda: any(level.glob("*part-001.vis.npz")), 600, step=0.05):
            return self.note(injected=False, why=f"{level} was never staged")
        filler = self.run.out / "scratch" / ".filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
        free = os.statvfs(filler.parent)
        self.note(injected=True, free_bytes=free.f_bavail * free.f_frsize)
        self.injected.set()
        # a pool job is held when HTCondor cannot write its outputs back (code 12); a job on
        # the submit host (the minor cycle) fails instead: either ends the wait
        held = wait_for(lambda: hold_in_log(self.run, self.target)
                        or level_over(self.run, self.target), 600, step=0.5)
        if isinstance(held, dict):
            self.note(held=held["HoldReasonCode"], hold_reason=held["HoldReason"],
                      held_job=held["node"])
        self.note(failed=self.run.wait())
        self.note(analyzer=as_user(f"pegasus-analyzer -r {self.run.submit}", timeout=300).stdout)
        filler.unlink()
        self._resume()

    def _next(self) -> None:
        cycle = str(int(self.target.rsplit("-c", 1)[1]))

        def running() -> list[int]:
            return [pid for pid, argv, _ in processes()
                    if len(argv) > 1 and argv[1].endswith("/htclean-next") and "--cycle" in argv
                    and argv[argv.index("--cycle") + 1:][:1] == [cycle]
                    and environ(pid).get("_PEGASUS_WF_SUBMIT_DIR", "").startswith(
                        str(self.run.out))]

        pids = wait_for(running, 600, step=0.05)
        if not pids:
            return self.note(injected=False, why=f"{self.target} never seen running")
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        self.note(injected=True, killed=pids)
        self.injected.set()

    def _restart(self) -> None:
        for other in self.others:
            other.injected.wait(RUN_TIMEOUT_S)
        if not wait_for(lambda: any(self.run.submit.rglob(f"{self.target}.dag.dagman.out")),
                        600, step=1):
            return self.note(injected=False, why=f"{self.target} never started")
        foreign = wait_for(lambda: not foreign_jobs(self.mine), 240, step=2)
        if not foreign:
            jobs = foreign_jobs(self.mine)
            return self.note(injected=False, why=f"{len(jobs)} jobs of other users in the "
                             f"queue (e.g. {jobs[0].get('Iwd') if jobs else '?'})")
        mine = tuple(str(p) for p in self.mine)
        in_flight = sorted({f'{Path(j["Iwd"]).relative_to(self.mine[0]).parts[0]}/'
                            f'{j.get("pegasus_wf_dag_job_id")}' for j in condor_jobs()
                            if str(j.get("Iwd", "")).startswith(mine)})
        if not in_flight:
            return self.note(injected=False, why="every run was over before the restart")
        with POOL_LOCK:
            t0 = time.monotonic()
            try:
                stop = subprocess.run([str(TESTPOOL / "stop.sh")], capture_output=True,
                                      text=True, timeout=150)
                self.note(stop=stop.returncode, stop_s=round(time.monotonic() - t0, 1))
            finally:
                start = subprocess.run([str(TESTPOOL / "start.sh")], capture_output=True,
                                       text=True, timeout=150)
            RESTARTS.append(time.monotonic())
            self.note(injected=True, start=start.returncode, in_flight=in_flight,
                      down_s=round(time.monotonic() - t0, 1))
        self.injected.set()


def mount_staging(run: Run, mb: int = STAGING_MB) -> None:
    """A ``mb`` MB tmpfs as the run's staging directory (its plan's scratch), htcuser's."""
    where = run.out / "scratch"
    where.mkdir(exist_ok=True)
    import pwd

    user = pwd.getpwnam(USER)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mb}m,mode=0755,uid={user.pw_uid},"
                    f"gid={user.pw_gid}", "htclean-staging", str(where)], check=True,
                   capture_output=True)


def unmount_staging(run: Run) -> None:
    subprocess.run(["umount", "-l", str(run.out / "scratch")], capture_output=True)


POOL_CONFIG = Path(__file__).with_name("testpool") / "60-htclean-tests.conf"


def tune_pool() -> str:
    """Install tests/testpool/60-htclean-tests.conf into the test pool's config.d (and
    condor_reconfig) unless it is there already; what was done."""
    target = TESTPOOL / "etc" / "config.d" / POOL_CONFIG.name
    text = POOL_CONFIG.read_text()
    if target.exists() and target.read_text() == text:
        return "already installed"
    target.parent.mkdir(exist_ok=True)
    target.write_text(text)
    proc = as_root("condor_reconfig", timeout=60)
    return f"installed {target} (condor_reconfig: exit {proc.returncode})"


def can_mount() -> bool:
    """Whether this machine lets us mount a tmpfs (root in a sandbox may not)."""
    probe = Path(f"/tmp/htclean-mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "probe", str(probe)],
                        capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", str(probe)], capture_output=True)
    probe.rmdir()
    return ok

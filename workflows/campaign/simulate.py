"""The discrete-event simulation: DAGMan releasing nodes, HTCondor matching and running them.

A node's parents all done, DAGMan notices at its next log scan (``scan_s``), submits it at
its submit rate and, for a job, runs its POST script after it ends. A pool job becomes
matchable after a queue wait drawn from the pool's (seeded) distribution; a negotiation cycle
every ``negotiation_interval_s`` matches matchable idle jobs (serial jobs first, then in
order) to free slots (GPUs, or cores for request_cpus); the slot is not reused for another
job without a new match. A matched job starts (``job_start_s``), transfers its inputs,
computes, transfers its outputs and frees its slot. Transfers take the longer of the job's
own bandwidth and its share of the route's (the access point, or the OSDF staging site),
served first come, first served. Local-universe jobs start after ``local_start_s``.
With ``claim_leftovers`` (HTCondor's CLAIM_PARTITIONABLE_LEFTOVERS on one partitionable
slot) a negotiation hands the schedd every CPU job idle at that moment: they start one after
another as cores free, with no further negotiation; jobs submitted later wait for the next.
Where the pool's slots share fewer real cores (``host_cores``: the test pool's 64 slots on 2
cores), the running pool jobs' compute phases share those cores equally (processor sharing).
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict, deque
from dataclasses import dataclass
from random import Random

from htclean.workflows.campaign.dag import AP, INTERNAL, LOCAL, POOL, Node, check
from htclean.workflows.campaign.pool import Pool


@dataclass
class Times:
    """When each step of one node happened (seconds from the start; nan if never)."""

    ready: float = math.nan
    submit: float = math.nan
    eligible: float = math.nan
    match: float = math.nan
    start: float = math.nan
    compute_start: float = math.nan
    compute_end: float = math.nan
    end: float = math.nan
    done: float = math.nan


class Pipe:
    """A shared route: ``bandwidth`` bytes/s for all transfers together (0: unlimited)."""

    def __init__(self, bandwidth: float):
        self.bandwidth = bandwidth
        self.free_at = 0.0
        self.bytes = 0.0

    def transfer(self, now: float, nbytes: float, job_bandwidth: float) -> float:
        """When a transfer of ``nbytes`` starting ``now`` ends."""
        if nbytes <= 0:
            return now
        self.bytes += nbytes
        own = now + nbytes / job_bandwidth if job_bandwidth > 0 else now
        if self.bandwidth <= 0:
            return own
        self.free_at = max(self.free_at, now) + nbytes / self.bandwidth
        return max(own, self.free_at)


class Simulation:
    """Runs ``nodes`` on ``pool``; ``run()`` returns each node's Times by id."""

    def __init__(self, nodes: list[Node], pool: Pool, seed: int = 1):
        self.pool, self.rng = pool, Random(seed)
        self.nodes = check(nodes)
        self.children: dict[str, list[str]] = defaultdict(list)
        for n in self.nodes.values():
            for p in n.parents:
                self.children[p].append(n.id)
        self.waiting = {i: len(set(n.parents)) for i, n in self.nodes.items()}
        self.times = {i: Times() for i in self.nodes}
        self.events: list = []
        self.seq = 0
        self.free_cpu, self.free_gpu = pool.cpu_cores, pool.gpus
        self.idle: list[tuple[int, float, int, str]] = []
        self.negotiation_at: float | None = None
        self.phase = self.rng.uniform(0, pool.negotiation_interval_s)
        self.dagman_next: dict[str, float] = defaultdict(float)
        self.pipes = {AP: Pipe(pool.ap_bandwidth), "osdf": Pipe(pool.osdf_bandwidth)}
        self.sharing: dict[str, float] = {}    # job -> exclusive seconds of compute left
        self.shared_at = 0.0
        self.shared_version = 0
        self.next_start = 0.0
        self.carving: deque[str] = deque()      # matched, waiting for cores (leftovers)

    # --- the event queue ------------------------------------------------------------------

    def at(self, t: float, fn, *args) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, fn, args))

    def run(self) -> dict[str, Times]:
        for i, n in self.waiting.items():
            if n == 0:
                self.at(0.0, self.release, i)
        while self.events:
            t, _, fn, args = heapq.heappop(self.events)
            fn(t, *args)
        stuck = [i for i, tm in self.times.items() if math.isnan(tm.done)]
        if stuck:
            raise RuntimeError(f"{len(stuck)} nodes never ran (first: {stuck[0]}): "
                               "a job needs more cores or GPUs than the pool has")
        return self.times

    # --- DAGMan -----------------------------------------------------------------------------

    def release(self, t: float, i: str) -> None:
        n, tm = self.nodes[i], self.times[i]
        tm.ready = t + (self.rng.uniform(0, self.pool.scan_s) if n.scanned and n.parents
                        else 0.0)
        if n.where == INTERNAL:
            tm.start = tm.compute_start = tm.ready
            self.at(tm.ready + n.wall_s, self.finish, i)
            return
        rate = self.pool.submit_rate
        tm.submit = max(tm.ready, self.dagman_next[n.level])
        self.dagman_next[n.level] = tm.submit + (1.0 / rate if rate > 0 else 0.0)
        if n.where == LOCAL:
            tm.eligible = tm.match = tm.submit
            self.at(tm.submit + self.pool.local_start_s, self.begin, i)
        else:
            tm.eligible = tm.submit + self.pool.wait(n.gpu).sample(self.rng)
            self.at(tm.eligible, self.enqueue, i)

    def finish(self, t: float, i: str) -> None:
        n, tm = self.nodes[i], self.times[i]
        tm.end = t
        if n.where != INTERNAL:
            if n.where != LOCAL:
                self.free(n)
            t += self.pool.post_s if n.post else 0.0
        tm.done = t
        for c in self.children[i]:
            self.waiting[c] -= 1
            if self.waiting[c] == 0:
                self.at(t, self.release, c)

    # --- HTCondor ---------------------------------------------------------------------------

    def enqueue(self, t: float, i: str) -> None:
        n = self.nodes[i]
        heapq.heappush(self.idle, (-n.priority, self.times[i].eligible, self.seq, i))
        self.seq += 1
        self.negotiate_after(t)

    def negotiate_after(self, t: float) -> None:
        iv = self.pool.negotiation_interval_s
        k = math.ceil((t - self.phase) / iv) if iv > 0 else 0
        when = max(t, self.phase + k * iv) if iv > 0 else t
        if self.negotiation_at is None or when < self.negotiation_at:
            self.negotiation_at = when
            self.at(when, self.negotiate)

    def negotiate(self, t: float) -> None:
        if self.negotiation_at is None or t != self.negotiation_at:
            return                                  # superseded by an earlier cycle
        self.negotiation_at = None
        skipped = []
        while self.idle:
            entry = heapq.heappop(self.idle)
            n = self.nodes[entry[3]]
            leftovers = self.pool.claim_leftovers and not n.gpu
            if n.gpu and self.free_gpu >= 1:
                self.free_gpu -= 1
            elif not n.gpu and not leftovers and self.free_cpu >= n.cpus:
                self.free_cpu -= n.cpus
            elif not leftovers:
                skipped.append(entry)
                continue
            self.times[n.id].match = t
            start = t + self.pool.job_start_s
            if self.pool.start_rate > 0:        # the schedd activates claims one by one
                start = max(start, self.next_start)
                self.next_start = start + 1.0 / self.pool.start_rate
            self.at(start, self.carve if leftovers else self.begin, n.id)
        for entry in skipped:
            heapq.heappush(self.idle, entry)

    def carve(self, t: float, i: str) -> None:
        """A job matched with the claimed partitionable slot's leftovers starts once cores
        are free there (first come, first served), with no further negotiation."""
        n = self.nodes[i]
        if not self.carving and self.free_cpu >= n.cpus:
            self.free_cpu -= n.cpus
            self.begin(t, i)
        else:
            self.carving.append(i)

    def free(self, n: Node) -> None:
        if n.gpu:
            self.free_gpu += 1
        else:
            self.free_cpu += n.cpus
            t = self.times[n.id].end
            while self.carving and self.free_cpu >= self.nodes[self.carving[0]].cpus:
                head = self.carving.popleft()
                self.free_cpu -= self.nodes[head].cpus
                self.at(t, self.begin, head)
        if self.idle:
            self.negotiate_after(self.times[n.id].end + 1e-9)

    # --- a job's life -----------------------------------------------------------------------

    def begin(self, t: float, i: str) -> None:
        n, tm = self.nodes[i], self.times[i]
        tm.start = t
        t = self.pipes[AP].transfer(t, n.package_bytes, self.pool.job_bandwidth)
        done_in = self.pipes[n.in_route].transfer(t, n.in_bytes, self.pool.job_bandwidth)
        self.at(done_in, self.compute, i)

    def compute(self, t: float, i: str) -> None:
        n, tm = self.nodes[i], self.times[i]
        tm.compute_start = t
        if n.gpu:
            cores = self.pool.gpu_equivalent_cores
        elif n.where == LOCAL:
            cores = min(n.cpus, self.pool.local_cores)
        else:
            cores = n.cpus
        alone = n.cpu_s / max(cores, 1e-9) + n.wall_s
        if self.pool.host_cores > 0 and n.where == POOL and not n.gpu:
            self.share(t, i, alone)
            return
        tm.compute_end = t + alone + n.latency_s
        self.at(tm.compute_end, self.upload, i)

    # --- slots sharing fewer real cores (processor sharing) ---------------------------------

    def rate(self) -> float:
        return min(1.0, self.pool.host_cores / max(len(self.sharing), 1))

    def share(self, t: float, i: str | None, alone: float = 0.0) -> None:
        """Advance the shared jobs to ``t``, add job ``i`` (``alone`` seconds by itself), and
        schedule the next one to finish."""
        r = self.rate()
        for j in self.sharing:
            self.sharing[j] -= (t - self.shared_at) * r
        self.shared_at = t
        if i is not None:
            self.sharing[i] = alone
        self.shared_version += 1
        if self.sharing:
            j, left = min(self.sharing.items(), key=lambda kv: kv[1])
            self.at(t + max(left, 0.0) / self.rate(), self.shared_done, j,
                    self.shared_version)

    def shared_done(self, t: float, i: str, version: int) -> None:
        if version != self.shared_version:
            return                                  # superseded: the set changed since
        self.share(t, None)                         # advance the others to t first
        del self.sharing[i]
        t_end = t + self.nodes[i].latency_s
        self.times[i].compute_end = t_end
        self.share(t, None)
        self.at(t_end, self.upload, i)

    def upload(self, t: float, i: str) -> None:
        n = self.nodes[i]
        end = self.pipes[n.out_route].transfer(t, n.out_bytes, self.pool.job_bandwidth)
        self.at(end, self.finish, i)


def simulate(nodes: list[Node], pool: Pool, seed: int = 1) -> dict[str, Times]:
    """Each node's Times when ``nodes`` run on ``pool``."""
    return Simulation(nodes, pool, seed).run()

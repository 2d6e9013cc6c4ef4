"""What a simulated run says: wall time, jobs, bytes, barriers, and where the time went."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from htclean.workflows.campaign.dag import AP, INTERNAL, Node
from htclean.workflows.campaign.simulate import Times

PARALLEL = ("grid", "psf", "dirty", "residual", "weights")
# what each instant of the wall time is charged to, first match wins
CATEGORIES = ("processing", "transfers", "bookkeeping", "human", "waiting")
HOUR = 3600.0
LOOP = ("next", "decide")    # the node that ends a cycle's loop (htclean's next, HTClean's POST)


def union(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one interval."""
    total, end = 0.0, -math.inf
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def peak(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at once."""
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    level = best = 0
    for _, d in edges:
        level += d
        best = max(best, level)
    return best


@dataclass
class CycleFigures:
    cycle: int
    wall_s: float
    jobs: int
    bytes: float
    ap_bytes: float
    loop_s: float = math.nan   # from the previous cycle's loop decision to this one's

    @property
    def jobs_per_min(self) -> float:
        return self.jobs / (self.wall_s / 60) if self.wall_s > 0 else 0.0

    @property
    def tb_per_hour(self) -> float:
        return self.bytes / 1e12 / (self.wall_s / HOUR) if self.wall_s > 0 else 0.0


@dataclass
class Summary:
    """The figures of one simulated run."""

    wall_s: float
    jobs: Counter
    peak_gpu_jobs: int
    peak_pool_jobs: int
    gpu_hours: float
    slot_hours: float
    processing_s: float        # some work job running (its transfers included)
    computing_s: float         # some work job computing
    barrier_s: float
    breakdown: dict[str, float]
    cycles: list[CycleFigures] = field(default_factory=list)
    bytes: float = 0.0
    ap_bytes: float = 0.0

    @property
    def total_jobs(self) -> int:
        return sum(self.jobs.values())

    @property
    def jobs_per_min(self) -> float:
        return self.total_jobs / (self.wall_s / 60)

    @property
    def processing_share(self) -> float:
        return self.processing_s / self.wall_s

    @property
    def fastest(self) -> CycleFigures | None:
        busy = [c for c in self.cycles if c.bytes > 0]
        return max(busy, key=lambda c: c.tb_per_hour) if busy else None


def summarise(nodes: list[Node], times: dict[str, Times]) -> Summary:
    by_id = {n.id: n for n in nodes}
    wall = max(t.done for t in times.values())
    jobs = Counter(n.kind for n in nodes if n.where != INTERNAL or n.kind == "sub-workflow")
    run = [(times[n.id].start, times[n.id].end) for n in nodes if n.where == "pool"]
    gpu = [(times[n.id].match, times[n.id].end) for n in nodes if n.gpu]
    work = [(times[n.id].start, times[n.id].end) for n in nodes if n.work]
    computing = [(times[n.id].compute_start, times[n.id].compute_end) for n in nodes if n.work]
    barrier = 0.0
    for n in nodes:
        ends = [times[p].done for p in n.parents if by_id[p].kind in PARALLEL]
        if len(ends) > 1:
            barrier += max(ends) - min(ends)
    cycles = []
    per: dict[int, list[Node]] = defaultdict(list)
    for n in nodes:
        per[n.cycle].append(n)
    for k in sorted(per):
        members = per[k]
        t0 = min(times[n.id].ready if n.kind != "human" else times[n.id].end
                 for n in members)
        t1 = max(times[n.id].done for n in members if n.kind != "sub-workflow")
        njobs = sum(1 for n in members if n.where != INTERNAL or n.kind == "sub-workflow")
        nbytes = sum(n.in_bytes + n.out_bytes + n.package_bytes for n in members)
        ap = sum(n.package_bytes + (n.in_bytes if n.in_route == AP else 0) +
                 (n.out_bytes if n.out_route == AP else 0) for n in members)
        cycles.append(CycleFigures(k, t1 - t0, njobs, nbytes, ap))
    loops = {k: max((times[n.id].done for n in per[k] if n.kind in LOOP), default=math.nan)
             for k in per}
    for c in cycles:
        c.loop_s = loops[c.cycle] - loops.get(c.cycle - 1, math.nan)
    return Summary(wall, jobs, peak(gpu), peak(run), sum(b - a for a, b in gpu) / HOUR,
                   sum(b - a for a, b in run) / HOUR, union(work), union(computing), barrier,
                   breakdown(nodes, times, wall), cycles,
                   sum(c.bytes for c in cycles), sum(c.ap_bytes for c in cycles))


def breakdown(nodes: list[Node], times: dict[str, Times], wall: float) -> dict[str, float]:
    """The wall time charged to processing, transfers, Pegasus/DAGMan bookkeeping, people
    and waiting (nothing of the above running: scans, queues, negotiation), in that order."""
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for n in nodes:
        t = times[n.id]
        if n.kind == "human":
            spans["human"].append((t.start, t.end))
        elif n.work:
            spans["processing"].append((t.compute_start, t.compute_end))
            spans["transfers"] += [(t.start, t.compute_start), (t.compute_end, t.end)]
        elif n.kind != "sub-workflow":
            spans["bookkeeping"].append((t.start, t.end))
    events = sorted((x, d, c) for c, s in spans.items() for a, b in s if b > a
                    for x, d in ((a, 1), (b, -1)))
    out = dict.fromkeys(CATEGORIES, 0.0)
    count = dict.fromkeys(CATEGORIES, 0)
    last = 0.0
    for x, d, c in [*events, (wall, 0, "waiting")]:
        if x > last:
            active = next((k for k in CATEGORIES[:-1] if count[k] > 0), "waiting")
            out[active] += x - last
            last = x
        count[c] += d
    return out

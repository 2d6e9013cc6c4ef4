"""The simulated job graph: one node per DAGMan job (or per step DAGMan takes itself).

``where`` says who runs a node: ``pool`` (matched to a slot at a negotiation cycle, then
transfers and runs), ``local`` (a local-universe job on the access point: next, Pegasus's
transfer and bookkeeping jobs) or ``internal`` (a step of DAGMan itself: a sub-workflow's
pegasus-plan PRE script, a sub-DAGMan starting or finishing, a person resubmitting a DAG).
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable
from dataclasses import dataclass, field

POOL, LOCAL, INTERNAL = "pool", "local", "internal"
OSDF, AP = "osdf", "ap"     # where a job's bytes come from / go: the staging site or the AP
# htclean's own job types (their compute phase is "processing"); the rest is bookkeeping
WORK_KINDS = ("partition", "weights", "grid", "psf", "dirty", "residual", "gather",
              "deconvolve", "next", "restore")


@dataclass
class Node:
    """One node. ``cpu_s``: CPU seconds of work (divided by the cores or GPU it gets);
    ``wall_s``: seconds that no core count shortens (a transfer tool's start, planning).
    Bytes in and out go through ``in_route`` / ``out_route`` (OSDF or the access point);
    ``package_bytes`` come from the access point first (Pegasus's worker package)."""

    id: str
    kind: str
    level: str
    parents: list[str] = field(default_factory=list)
    where: str = POOL
    gpu: bool = False
    cpus: int = 1
    cpu_s: float = 0.0
    wall_s: float = 0.0
    in_bytes: float = 0.0
    in_route: str = OSDF
    out_bytes: float = 0.0
    out_route: str = OSDF
    package_bytes: float = 0.0     # from the access point besides its inputs (worker package)
    latency_s: float = 0.0         # waiting in its wrapper: takes no core, shared with nothing
    cycle: int = -1
    priority: int = 10
    scanned: bool = True       # DAGMan notices its parents' end at a log scan
    post: bool = True          # Pegasus gives it a POST script

    @property
    def work(self) -> bool:
        return self.kind in WORK_KINDS


def check(nodes: Iterable[Node]) -> dict[str, Node]:
    """The nodes by id; ValueError for a duplicate id, an unknown parent or a cycle."""
    by_id: dict[str, Node] = {}
    for n in nodes:
        if n.id in by_id:
            raise ValueError(f"duplicate node {n.id}")
        by_id[n.id] = n
    for n in by_id.values():
        for p in n.parents:
            if p not in by_id:
                raise ValueError(f"{n.id}: unknown parent {p}")
    try:  # the standard library's topological sort finds the cycle
        graphlib.TopologicalSorter({i: n.parents for i, n in by_id.items()}).prepare()
    except graphlib.CycleError as exc:
        raise ValueError(f"cycle through {exc.args[1][0]}") from None
    return by_id


def depths(nodes: Iterable[Node]) -> dict[str, int]:
    """Each node's depth among ``nodes`` (0: no parent among them), as Pegasus counts the
    levels of a workflow for its transfer jobs."""
    nodes = list(nodes)
    ids = {n.id for n in nodes}
    by_id = {n.id: n for n in nodes}
    out: dict[str, int] = {}

    def depth(i: str) -> int:
        if i not in out:
            stack = [i]
            while stack:
                top = stack[-1]
                pending = [p for p in by_id[top].parents if p in ids and p not in out]
                if pending:
                    stack.extend(pending)
                    continue
                stack.pop()
                out[top] = 1 + max((out[p] for p in by_id[top].parents if p in ids),
                                   default=-1)
        return out[i]

    for n in nodes:
        depth(n.id)
    return out

"""htclean's job graph as DAGMan runs it: the planner's own levels plus Pegasus's jobs.

The levels come from ``workflows.graph`` on the campaign's ``RunContext`` (the top level,
cycles 1..K, the final level): the same jobs, files and requests ``htclean plan`` and
``next`` write. ``pegasus_jobs`` adds what pegasus-plan adds to each level, as observed on
the real planner (DESIGN.md, the test pool's submit directories): a create-dir job; a
stage-in job per workflow depth where files from outside the level are first read; a
stage-out job per depth whose jobs keep outputs; optionally a registration job after each
stage-out; the top level's one leaf cleanup; and per sub-workflow, its pegasus-plan (the PRE
script), its DAGMan starting and, at the end, finishing.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from Pegasus.api import SubWorkflow, Workflow

from htclean.imaging.errors import InputError
from htclean.workflows import graph
from htclean.workflows.campaign.campaign import Campaign
from htclean.workflows.campaign.costs import STARTUP_S, Costs
from htclean.workflows.campaign.dag import AP, INTERNAL, LOCAL, OSDF, POOL, Node, depths
from htclean.workflows.campaign.pool import Pool
from htclean.workflows.context import RunContext


def _category(job_id: str) -> str:
    return job_id.split("-")[0]


class GraphBuilder:
    """Turns the planner's Pegasus workflows into simulation nodes."""

    def __init__(self, campaign: Campaign, pool: Pool):
        self.campaign, self.pool = campaign, pool
        self.ctx: RunContext = campaign.context()
        nx, ny = self.ctx.image_shape
        self.costs = Costs(campaign.visibilities, nx * ny, self.ctx.nterms)
        self.sizer = graph.Builder(self.ctx, "model")
        self.nodes: list[Node] = []
        # files already where the jobs read them: made by earlier levels (on staging), or
        # input MSs given as URLs (the jobs fetch them themselves: no stage-in moves them)
        self.produced: set[str] = {lfn for lfn, ms in zip(
            self.ctx.ms_lfns, self.ctx.settings["data"]["ms"], strict=True) if "://" in str(ms)}
        self.route = OSDF if self.ctx.data_configuration == "nonsharedfs" else AP

    def size(self, lfn: str) -> float:
        return float(self.sizer.input_bytes(lfn))

    def cpu_seconds(self, category: str, inputs: list[str]) -> float:
        c, nvis = self.costs, self.campaign.visibilities / self.campaign.parts
        partials = sum(1 for f in inputs if f.endswith(".npz") and "-part-" not in f)
        return {"partition": c.partition(), "grid": c.grid(nvis), "weights": c.grid(nvis) / 4,
                "residual": c.residual(nvis), "gather": c.gather(partials),
                "deconvolve": c.deconvolve(), "next": c.next(partials),
                "restore": c.restore()}.get(category, 0.0)

    def level(self, wf: Workflow, name: str, cycle: int, start: str | None) -> list[str]:
        """Add one level's nodes; ``start``: the node after which it may begin. Returns the
        ids of its nodes (the level's end waits for them)."""
        jobs = dict(wf.jobs)
        outputs = {j: {u.file.lfn for u in job.uses if u._type == "output"}
                   for j, job in jobs.items()}
        inputs = {j: [u.file.lfn for u in job.uses if u._type == "input"]
                  for j, job in jobs.items()}
        self.bypassed = {j: {u.file.lfn for u in job.uses
                             if u._type == "input" and getattr(u, "bypass", False)}
                         for j, job in jobs.items()}
        maker = {lfn: j for j, outs in outputs.items() for lfn in outs}
        compute: dict[str, Node] = {}
        for jid, job in jobs.items():
            parents = sorted({maker[f] for f in inputs[jid] if f in maker} - {jid})
            if isinstance(job, SubWorkflow):
                compute[jid] = Node(f"{name}/{jid}", "sub-workflow", name, parents,
                                    INTERNAL, cycle=cycle, post=False)
                continue
            cat = _category(jid)
            package = self.pool.worker_package_s if self.pool.worker_package_bytes > 0 else 0.0
            condor = job.profiles.get("condor", {})
            local = job.profiles.get("selector", {}).get("execution.site") == "local"
            kept = [u.file.lfn for u in job.uses if u._type == "output" and u.stage_out]
            compute[jid] = Node(
                f"{name}/{jid}", cat, name, parents, LOCAL if local else POOL,
                gpu=bool(int(condor.get("request_gpus", 0) or 0)),
                cpus=int(condor.get("request_cpus", 1)),
                cpu_s=self.cpu_seconds(cat, inputs[jid]) + (  # the minor cycle inside
                    self.costs.deconvolve() if cat == "next" and "--output-model"
                    in map(str, job.args) else 0.0),
                wall_s=STARTUP_S.get(cat, 0.0) + package, latency_s=self.pool.wrapper_s,
                in_bytes=sum(self.size(f) for f in inputs[jid]),
                in_route=AP if local else self.route,
                out_bytes=sum(self.size(f) for f in outputs[jid]),
                out_route=AP if local else self.route, cycle=cycle,
                package_bytes=0.0 if local else self.pool.worker_package_bytes,
                priority=int(condor.get("priority", 10)))
            compute[jid].kept = kept  # type: ignore[attr-defined]
        for n in compute.values():
            n.parents = [f"{name}/{q}" for q in n.parents]
        return self.pegasus_jobs(name, cycle, start, compute, inputs, maker)

    def clusters(self, jobs: int, items: int) -> int:
        """Transfer jobs at a depth of ``jobs`` jobs moving ``items`` (files or makers):
        the pool's ``stage_clusters``, or where that is 0 Pegasus's own rule (its
        BalancedCluster refiner: one transfer job per 10 jobs of the depth)."""
        n = self.pool.stage_clusters or -(-jobs // 10)
        return max(1, min(n, items))

    def pegasus_jobs(self, name: str, cycle: int, start: str | None,
                     compute: dict[str, Node], inputs: dict[str, list[str]],
                     maker: dict[str, str]) -> list[str]:
        p = self.pool
        depth = depths(compute.values())
        aux = dict(where=LOCAL, wall_s=p.aux_s, cycle=cycle, priority=100)
        mkdir = Node(f"{name}/create-dir", "create-dir", name, [start] if start else [], **aux)
        added = [mkdir]
        first: dict[str, int] = {}
        for jid, files in inputs.items():
            # a bypassed input needs no stage-in where the job fetches it itself: on the
            # access point, or from OSDF on a worker (graph.Builder.bypass_staging)
            itself = compute[jid].where == LOCAL or self.route == OSDF
            for f in files:
                if f not in maker and not (itself and f in self.bypassed.get(jid, ())):
                    first[f] = min(first.get(f, 99), depth[f"{name}/{jid}"])
        by_depth: dict[int, list[str]] = defaultdict(list)
        for f, d in first.items():
            by_depth[d].append(f)
        at_depth = Counter(depth.values())
        for d, files in sorted(by_depth.items()):
            n = self.clusters(at_depth[d], len(files))
            for c in range(n):
                # files of earlier levels are on the staging site already: no bytes move
                mine = set(sorted(files)[c::n])
                sid = f"{name}/stage-in-{d}-{c}"
                added.append(Node(sid, "stage-in", name, [mkdir.id], in_bytes=sum(
                    self.size(f) for f in mine if f not in self.produced), in_route=AP, **aux))
                for jid, files_in in inputs.items():
                    if (set(files_in) - self.bypassed.get(jid, set())) & mine:
                        compute[jid].parents.append(sid)
        for n in compute.values():
            if not n.parents:
                n.parents.append(mkdir.id)
        outs: dict[int, list[Node]] = defaultdict(list)
        for n in compute.values():
            if getattr(n, "kept", None):
                outs[depth[n.id]].append(n)
        for d, makers in sorted(outs.items()):
            n = self.clusters(at_depth[d], len(makers))
            for c in range(n):
                mine = makers[c::n]
                moved = sum(self.size(f) for m in mine for f in m.kept)  # type: ignore[attr-defined]
                sid = f"{name}/stage-out-{d}-{c}"
                added.append(Node(sid, "stage-out", name, [m.id for m in mine],
                                  out_bytes=moved if self.route == OSDF else 0.0, out_route=AP,
                                  **aux))
                if p.registration:
                    added.append(Node(f"{name}/register-{d}-{c}", "register", name, [sid],
                                      **aux))
                if p.cleanup == "inplace":
                    added.append(Node(f"{name}/cleanup-{d}-{c}", "cleanup", name, [sid],
                                      **aux))
        self.produced |= set(maker)
        self.nodes.extend(compute.values())
        self.nodes.extend(added)
        return [n.id for n in (*compute.values(), *added)]

    def subworkflow(self, parent: str, k: int, child_jobs: int) -> tuple[str, str]:
        """The plan and DAGMan-start nodes of sub-workflow ``cycle-k`` in level ``parent``;
        returns (the node the child level starts after, the sub-workflow node's id)."""
        p = self.pool
        sub = f"{parent}/cycle-{k:02d}"
        node = next(n for n in self.nodes if n.id == sub)
        plan = Node(f"{sub}/plan", "plan", parent, list(node.parents), INTERNAL,
                    wall_s=p.plan_s + p.plan_per_job_s * child_jobs, cycle=k, post=False)
        start = Node(f"{sub}/dagman", "dagman", parent, [plan.id], INTERNAL,
                     wall_s=p.local_start_s + p.dagman_start_s, cycle=k, scanned=False,
                     post=False)
        self.nodes.extend([plan, start])
        return start.id, sub

    def close(self, sub: str, child_ids: list[str]) -> None:
        """The sub-workflow node ends when its level's DAGMan does."""
        node = next(n for n in self.nodes if n.id == sub)
        node.parents = list(child_ids)
        node.wall_s = self.pool.dagman_exit_s


def build(campaign: Campaign, pool: Pool) -> list[Node]:
    """Every node of the run: top level, ``campaign.cycles`` cycles, the final level."""
    b = GraphBuilder(campaign, pool)
    ctx, k_last = b.ctx, campaign.cycles
    if ctx.cube:
        raise InputError("image.mode: the campaign model does not model cubes yet (one chain "
                         "of levels per output channel); model one channel as an mfs run")
    top = b.level(graph.top_workflow(ctx), "top", 0, None)
    levels: list[tuple[str, list[str]]] = [("top", top)]
    for k in range(1, k_last + 2):
        parent = levels[-1][0]
        wf = graph.cycle_workflow(ctx, k)[0] if k <= k_last else \
            graph.final_workflow(ctx, k_last)[0]
        start, sub = b.subworkflow(parent, k, len(wf.jobs) * 3)
        name = f"cycle-{k:02d}" if k <= k_last else "final"
        ids = b.level(wf, name, k, start)
        levels.append((name, ids))
        b.close(sub, ids)
    if pool.cleanup == "leaf":
        b.nodes.append(Node("top/cleanup", "cleanup", "top", list(top), LOCAL,
                            wall_s=pool.aux_s, cycle=k_last + 1, priority=100))
    return b.nodes

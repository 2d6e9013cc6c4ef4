"""The job graphs: top level, one major cycle, final (docs/job-contract.md for every name).

    top:    partition -> [weights-pPPP -> gather-weights tree] -> grid-c00-pPPP
            -> [gather-c00 inner levels] -> next-c00 (the root: R-psf.fits, R-dirty.fits)
            -> cycle-01
    cycle K: deconvolve-cKK -> residual-cKK-pPPP -> [gather-cKK inner levels]
            -> next-cKK (the root: R-residual-cKK.fits) -> cycle-(K+1)
    final:  restore

Where the minor cycle runs in next (``RunContext.minor_cycle_in_next``: on a pool's submit
host; on site local a cube's channels) there is no deconvolve job: ``next-cKK`` runs minor
cycle K+1 once it has decided to go on (at the top, next-c00 runs minor cycle 1). On a pool
(``split_cycles``) a level's boundary then lies between a cycle's minor cycle and its
residual jobs:

    top:    partition -> ... -> grid-c00-pPPP -> [gather-c00] -> next-c00
            -> residual-c01-pPPP -> [gather-c01 inner levels] -> cycle-01
    cycle K: next-cKK (the root of cycle K's tree: R-residual-cKK.fits; minor cycle K+1)
            -> residual-c(K+1)-pPPP -> [gather-c(K+1) inner levels] -> cycle-(K+1)
    final:  restore

``next-cKK`` heads its level: on the submit host it reads the partials its parent level made
where they are (the SubWorkflow job declares them, ``carried``; a submit-host job gets no
stage-in), and the residual jobs after it read the model it writes in the same level. The
level's stage-in (configuration, parts) runs beside next, so a cycle's serial path is
create-dir, next, residual. The residual jobs are planned before next decides: they read its
decision (R-next-cKK.json) too and write an empty partial at once when it says stop (the
final level never reads them). Where next-cKK can only stop (``goes_on``: K is
``deconvolution.max_cycles``, or niter is 0) its level holds no residual jobs. When the loop
stops, next writes minor cycle K+1's model and state as cycle K's, which restore reads.

The root of the image and residual trees is the next job itself (``next --gather``): it sums
at most ``partition.fan_in`` partials on the submit host, where it runs anyway, so a cycle's
serial path has one pool job fewer (no gather job at all up to fan_in parts).

``htclean plan`` writes the top level; ``next-cKK`` writes ``cycle-(K+1).yml`` (a cycle, or
the final workflow once the loop stops) with ``cycle_workflow`` / ``final_workflow``, and the
local engine runs the same YAML. Dependencies follow from the files each job reads and writes.
A cycle's files from earlier levels are named in its inline replica catalog (``externals``).
The jobs themselves are builder.Builder's.
"""

from __future__ import annotations

from Pegasus.api import SubWorkflow, Workflow

from htclean.catalogs import replicas
from htclean.workflows import gather_tree, names
from htclean.workflows.builder import (  # noqa: F401 (re-exported)
    Builder,
    image_partial_bytes,
    planner_args,
    psf_fits_bytes,
)
from htclean.workflows.context import LOCAL, RunContext


def goes_on(ctx: RunContext, k: int) -> bool:
    """Whether next-cKK may decide to go on, as far as the plan knows (loop.decide stops at
    ``deconvolution.max_cycles`` and when niter is 0, whatever the data)."""
    d = ctx.settings["deconvolution"]
    return k < int(d["max_cycles"]) and int(d["niter"]) != 0


def split_cycles(ctx: RunContext) -> bool:
    """Whether a level's boundary lies between a cycle's minor cycle and its residual jobs:
    on a pool whose minor cycle runs in next (on site local, where the embedded engine has
    no scheduling rounds to save, a level stays one cycle even then)."""
    return ctx.minor_cycle_in_next and ctx.site != LOCAL


def residuals_ahead(ctx: RunContext, k: int) -> bool:
    """Whether level ``k`` (0: the top) holds cycle k+1's residual jobs, after next-cKK."""
    return split_cycles(ctx) and goes_on(ctx, k)


def residual_roots(ctx: RunContext, k: int) -> list[str]:
    """The partials that cycle k's tree root (next-cKK) sums: the residual jobs' outputs, or
    the inner gather level's below it."""
    r, p = ctx.stem, ctx.parts
    return gather_tree.root_inputs([names.residual_part(r, k, i, p) for i in range(p)],
                                   ctx.settings["partition"]["fan_in"],
                                   lambda lv, j: names.residual_node(r, k, lv, j))


def carried(ctx: RunContext, k: int) -> list[str]:
    """The files made at level ``k`` (0: the top) that later levels read. The SubWorkflow job
    of cycle k+1 declares them as inputs: Pegasus then starts it only once they exist, hands
    their staging copies to its planner (the input cache, which outranks any catalog) and
    keeps them until it has finished. That is the whole hand-off: nothing waits for a
    stage-out. With ``residuals_ahead`` they include cycle k+1's partials (next-c(k+1) sums
    them)."""
    r, p = ctx.stem, ctx.parts
    m = k + 1 if ctx.minor_cycle_in_next else k  # the minor cycle whose outputs level k made
    minor = [names.model(r, m), names.state(r, m)] if m > 0 else []
    ahead = residual_roots(ctx, k + 1) if residuals_ahead(ctx, k) else []
    if k > 0:
        return [*minor, names.residual_fits(r, k), *ahead]
    weights = [names.weights_root(r, p)] if ctx.weighted else []
    return [*(names.part(r, i, p) for i in range(p)), names.partitions(ctx.run_id), *weights,
            names.psf_fits(r), names.dirty_fits(r), *minor, *ahead]


def residuals(b: Builder, k: int, weights: str | None) -> list[str]:
    """Cycle k's residual jobs and its tree's inner gather levels; returns what the root
    (next-cKK) sums. With the minor cycle in next they also read next-c(k-1)'s decision."""
    ctx, r = b.ctx, b.r
    decision = names.decision(r, k - 1) if split_cycles(ctx) else None
    partials = [b.residual(k, i, weights, decision) for i in range(ctx.parts)]
    return b.gather(names.cycle(k), partials, lambda lv, j: names.residual_node(r, k, lv, j),
                    [], [], ctx.partial_bytes(ctx.nterms), root_job=False)


def first_level(b: Builder, parts: list[str]) -> SubWorkflow:
    """A loop's top-level jobs after the partition: weights, PSF and dirty image, next-c00,
    (with ``residuals_ahead``) cycle 1's residual jobs, and the SubWorkflow job of cycle 01
    (returned)."""
    weights = b.weights(parts) if b.ctx.weighted else None
    partials = [b.grid(i, part, weights) for i, part in enumerate(parts)]
    gathered = b.gather(names.cycle(0), partials, lambda lv, j: names.image_node(b.r, lv, j),
                        [], [], image_partial_bytes(b.ctx), root_job=False)
    b.next(0, gathered)
    if residuals_ahead(b.ctx, 0):
        residuals(b, 1, weights)
    return b.subworkflow(1, carried(b.ctx, 0))


def top_workflow(ctx: RunContext, axis=None) -> Workflow:
    """The level ``htclean plan`` writes: partition, PSF and dirty image, next-c00, cycle-01
    (a cube's: cube_graph.top_workflow, with its frequency ``axis``, a cube.Axis)."""
    if ctx.cube:
        from htclean.workflows.cube_graph import top_workflow as cube_top

        if axis is None:
            raise ValueError("a cube's top level needs its frequency axis")
        return cube_top(ctx, axis)
    b = Builder(ctx, "top")
    first_level(b, b.partition())
    b.bypass_staging({**dict(zip(ctx.ms_lfns, ctx.settings["data"]["ms"], strict=True)),
                      names.config(b.r): replicas.output_location(ctx, names.config(b.r))[1]})
    return b.wf


def cycle_workflow(ctx: RunContext, k: int) -> tuple[Workflow, list[str]]:
    """Major cycle ``k`` >= 1 and the LFNs its inline catalog names (files of earlier levels)."""
    if k < 1:
        raise ValueError(f"cycles start at 1, got {k}")
    b = Builder(ctx, names.cycle_job(k))
    weights = names.weights_root(b.r, ctx.parts) if ctx.weighted else None
    if split_cycles(ctx):  # next-cKK heads the level, then cycle k+1's residual jobs
        b.next(k, residual_roots(ctx, k))
        if residuals_ahead(ctx, k):
            residuals(b, k + 1, weights)
    else:
        if not ctx.minor_cycle_in_next:
            b.deconvolve(k)
        b.next(k, residuals(b, k, weights))
    b.subworkflow(k + 1, carried(ctx, k))
    return b.wf, b.attach_inline_catalog()


def final_workflow(ctx: RunContext, k: int) -> tuple[Workflow, list[str]]:
    """The restore job after ``k`` major cycles, and the LFNs its inline catalog names."""
    b = Builder(ctx, "final")
    b.restore(k)
    return b.wf, b.attach_inline_catalog()

"""Builder: adds htclean's jobs to one Pegasus workflow level, with their files, sizes,
profiles and the inline catalog of files from earlier levels (graph.py assembles the levels
from these steps; docs/job-contract.md names every file and job)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from Pegasus.api import File, Job, SubWorkflow, Workflow

from htclean.catalogs import replicas
from htclean.workflows import gather_tree, names, profiles
from htclean.workflows.config import psf_shape
from htclean.workflows.context import LOCAL, SMALL_FILE, RunContext
from htclean.workflows.cube import groups as cube_groups

# Cleanup (pegasus.file.cleanup.scope = deferred: each level takes its own option). Every
# level's staging directory lies inside the top level's (pegasus-plan nests them), so the top
# level's leaf cleanup, one job once everything has finished, removes them all; the levels
# below clean nothing (no cleanup jobs per cycle, no cleanup tail as the levels unwind).
INJECT_SWITCH = "PEGASUS_HTCLEAN_INJECT_FAILURE"  # DAGMan passes PEGASUS_* to its jobs
TOP_CLEANUP = "leaf"
LEVEL_CLEANUP = "none"


def psf_pixels(ctx: RunContext) -> int:
    """Pixels of the PSF: ``image.psf_oversize`` x the image in each axis."""
    pnx, pny = psf_shape(*ctx.image_shape, ctx.settings["image"]["psf_oversize"])
    return pnx * pny


def image_partial_bytes(ctx: RunContext) -> int:
    """An image-tree partial (R-image-*.npz): the dirty image and the larger PSF, float32."""
    n = ctx.nterms
    return ctx.partial_bytes(n) + 4 * psf_pixels(ctx) * (2 * n - 1)


def psf_fits_bytes(ctx: RunContext) -> int:
    """R-psf.fits: the PSF at its own size (as ``RunContext.fits_bytes`` for the image)."""
    nx, ny = ctx.image_shape
    return (ctx.fits_bytes() + 8 * (psf_pixels(ctx) - nx * ny)) * (2 * ctx.nterms - 1)


def planner_args(ctx: RunContext, top: bool = False) -> dict:
    """pegasus-plan options every level needs (the sub-workflows do not inherit the output
    and staging sites; DESIGN.md). Never ``conf``: a child given --conf stops inheriting.
    The top level's staging directory is ``<staging>/<run id>`` (``names.top_staging``)."""
    args = {"sites": [ctx.exec_site], "output_sites": [LOCAL],
            "staging_sites": {ctx.exec_site: ctx.staging_site},
            "cleanup": TOP_CLEANUP if top else LEVEL_CLEANUP}
    if top:
        args["relative_dir"] = ctx.run_id
    return args



class Builder:
    """Adds htclean jobs to one Pegasus workflow, with their files and profiles. ``wf``: add
    to this workflow (a cube's channels share the top level) instead of a new one. File
    names start with ``ctx.stem``, job ids with ``ctx.job_prefix`` (a cube channel's)."""

    def __init__(self, ctx: RunContext, level: str, wf: Workflow | None = None):
        self.ctx = ctx
        self.r = ctx.stem
        self.wf = wf if wf is not None else Workflow(names.workflow_name(self.r, level))
        self.estimates: dict[str, int] = {}   # bytes of every file produced here
        self.config = File(names.config(self.r))
        self.submit_host_transformations = {f"htclean-{c}" for c in ctx.submit_host_jobs}

    # --- one job -----------------------------------------------------------------------

    def input_bytes(self, lfn: str) -> int:
        """A file's size for request_disk: produced here, measured, or estimated."""
        if lfn in self.estimates:
            return self.estimates[lfn]
        ctx, r = self.ctx, self.r
        if lfn in ctx.ms_lfns:
            return ctx.size(lfn, SMALL_FILE)
        if lfn.startswith(f"{r}-part-"):
            return ctx.size(lfn, ctx.part_bytes(0))
        if lfn == names.psf_fits(r):
            return ctx.size(lfn, psf_fits_bytes(ctx))
        if lfn.startswith(f"{r}-image-"):
            return ctx.size(lfn, image_partial_bytes(ctx))
        if lfn.endswith(".fits"):
            return ctx.size(lfn, ctx.fits_bytes() * ctx.nterms)
        if lfn.endswith(".npz"):
            return ctx.size(lfn, ctx.partial_bytes(2))
        return ctx.size(lfn, SMALL_FILE)

    def add(self, category: str, job_id: str, args: Iterable[str | int],
            inputs: Iterable[str], outputs: Iterable[tuple[str, int]],
            keep: Callable[[str], bool] = lambda lfn: True) -> Job:
        """A job of ``category`` (its transformation is ``htclean-<category>``, grid for the
        weights/grid/residual modes). ``outputs``: (LFN, estimated bytes); ``keep``: whether
        an output is staged out to the output site (the record always is). Nothing is
        registered in an output replica catalog: later levels find files through their
        inline catalogs and Pegasus's input cache, so registration jobs would be pure cost."""
        transformation = "htclean-grid" if category in ("weights", "residual") else \
            f"htclean-{category}"
        job_id = self.ctx.job_prefix + job_id
        record = names.record(self.ctx.run_id, job_id)
        inputs = list(dict.fromkeys(inputs))
        job = Job(transformation, _id=job_id, node_label=job_id)
        job.add_args("--config", self.config.lfn, "--record", record, *map(str, args))
        job.add_inputs(self.config, *map(File, inputs))
        for lfn, size in outputs:
            self.estimates[lfn] = size
            job.add_outputs(File(lfn), stage_out=keep(lfn), register_replica=False)
        job.add_outputs(File(record), stage_out=True, register_replica=False)
        total = self.input_bytes(self.config.lfn) + sum(map(self.input_bytes, inputs))
        profiles.apply(job, self.ctx, category, total)
        if category in self.ctx.submit_host_jobs:
            job.add_selector_profile(execution_site=LOCAL)
        if job_id in self.ctx.inject:  # HTCondor expands $ENV() from the submitting DAGMan's
            job.add_env(HTCLEAN_INJECT_FAILURE=f"$ENV({INJECT_SWITCH})")
        self.wf.add_jobs(job)
        return job

    # --- the steps ----------------------------------------------------------------------

    def partition(self, channels: list[RunContext] | None = None) -> list[str]:
        """The partition job: the parts of this run, or of every context in ``channels``
        (a cube's output channels, each its own channel range), in that order."""
        ctx, p = self.ctx, self.ctx.parts
        each = channels or [ctx]
        parts = [names.part(c.stem, i, p) for c in each for i in range(p)]
        outputs = [(names.part(c.stem, i, p), c.part_bytes(i)) for c in each for i in range(p)]
        selected = ctx.settings["image"]["nchan"] is not None
        ranges = [f"{c0}:{c1}" for c in each for c0, c1 in cube_groups(c.settings)] \
            if selected else []
        manifest = names.partitions(ctx.run_id)
        self.add("partition", names.PARTITION,
                 ["--ms", *ctx.ms_lfns, "--axis", ctx.settings["partition"]["axis"],
                  *(["--channels", *ranges] if ranges else []),
                  "--outputs", *parts, "--manifest", manifest],
                 ctx.ms_lfns, [*outputs, (manifest, SMALL_FILE)])
        return parts

    def weights(self, parts: list[str]) -> str:
        """Per-part weight densities and their gather; returns the root's LFN."""
        r, p = self.r, self.ctx.parts
        leaves = []
        for i, part in enumerate(parts):
            out = names.weights_part(r, i, p)
            self.add("weights", names.weights_job(i, p),
                     ["--mode", "weights", "--part", part, "--output", out],
                     [part], [(out, self.ctx.partial_bytes(2))], keep=lambda _: p == 1)
            leaves.append(out)
        if p == 1:
            return leaves[0]
        root = names.weights_root(r, p)
        self.gather("weights", leaves, lambda lv, j: names.weights_node(r, lv, j),
                    ["--output", root], [(root, self.ctx.partial_bytes(2))],
                    self.ctx.partial_bytes(2))
        return root

    def grid(self, i: int, part: str, weights: str | None) -> str:
        out = names.image_part(self.r, i, self.ctx.parts)
        w = ["--weights", weights] if weights else []
        self.add("grid", names.grid_job(i, self.ctx.parts),
                 ["--mode", "psf-dirty", "--part", part, *w, "--output", out],
                 [part, *([weights] if weights else [])],
                 [(out, image_partial_bytes(self.ctx))], keep=lambda _: False)
        return out

    def residual(self, k: int, i: int, weights: str | None, decision: str | None = None) -> str:
        """residual-cKK-pPPP; ``decision``: next-c(K-1)'s R-next-c(K-1).json, planned in the
        same level: the job writes an empty partial at once when it says stop."""
        r, p = self.r, self.ctx.parts
        part, model, out = names.part(r, i, p), names.model(r, k), names.residual_part(r, k, i, p)
        w = ["--weights", weights] if weights else []
        d = ["--decision", decision] if decision else []
        self.add("residual", names.residual_job(k, i, p),
                 ["--mode", "residual", "--part", part, *w, "--model", model, *d,
                  "--output", out],
                 [part, *([weights] if weights else []), model, *([decision] if decision else [])],
                 [(out, self.ctx.partial_bytes(self.ctx.nterms))], keep=lambda _: False)
        return out

    def gather(self, tree: str, leaves: list[str], node_lfn: Callable[[int, int], str],
               root_args: list[str], root_outputs: list[tuple[str, int]],
               node_bytes: int, root_job: bool = True) -> list[str]:
        """A gather tree of fan-in ``partition.fan_in`` over ``leaves``; the root gets
        ``root_args`` and writes ``root_outputs`` (staged out), inner nodes (``node_bytes``
        each) stay on staging. Without ``root_job`` the root is left to the caller (the next
        job). Returns the root's inputs."""
        below = leaves
        tree_levels = gather_tree.levels(len(leaves), self.ctx.settings["partition"]["fan_in"])
        for depth, level in enumerate(tree_levels, start=1):
            root = depth == len(tree_levels)
            if root and not root_job:
                return [below[i] for i in level[0].inputs]
            current = []
            for node in level:
                inputs = [below[i] for i in node.inputs]
                if root:
                    args, outputs = root_args, root_outputs
                else:
                    out = node_lfn(node.level, node.index)
                    args, outputs = ["--output", out], [(out, node_bytes)]
                    current.append(out)
                self.add("gather", names.gather_job(tree, node.level, node.index),
                         ["--inputs", *inputs, *args], inputs, outputs,
                         keep=lambda lfn, root=root: root)
                if root:
                    return inputs
            below = current
        raise AssertionError("a gather tree ends with its root")

    def deconvolve(self, k: int) -> None:
        r = self.r
        previous = [names.model(r, k - 1), names.state(r, k - 1)] if k > 1 else []
        extra = ["--model", previous[0], "--state", previous[1]] if previous else []
        psf, residual = names.psf_fits(r), names.residual_fits(r, k - 1)
        self.add("deconvolve", names.deconvolve_job(k),
                 ["--cycle", k, "--psf", psf, "--residual", residual, *extra,
                  "--output-model", names.model(r, k), "--output-state", names.state(r, k)],
                 [psf, residual, *previous],
                 [(names.model(r, k), SMALL_FILE), (names.state(r, k), SMALL_FILE)])

    def next(self, k: int, gathered: list[str]) -> None:
        """next-cKK: the root of the cycle's gather tree (``gathered``: its inputs; with
        ``minor_cycle_in_next`` after cycle 0 they come from the parent level), then the
        loop's decision and the next level. It reads only its declared inputs: the partials,
        the minor-cycle state and the partition manifest (the parts' sizes, for the next
        level's disk requests); with ``minor_cycle_in_next`` also the PSF and cycle k's
        model, and it writes minor cycle k+1's model and state."""
        r, ctx = self.r, self.ctx
        state = [names.state(r, k)] if k > 0 else []
        residual, manifest = names.residual_fits(r, k), names.partitions(ctx.run_id)
        psf = [names.psf_fits(r)] if k == 0 else []
        minor_args, minor_in, minor_out = [], [], []
        if ctx.minor_cycle_in_next:
            out_model, out_state = names.model(r, k + 1), names.state(r, k + 1)
            minor_args = ["--output-model", out_model, "--output-state", out_state]
            minor_out = [(out_model, SMALL_FILE), (out_state, SMALL_FILE)]
            if k > 0:
                minor_in = [names.psf_fits(r), names.model(r, k)]
                minor_args += ["--psf", minor_in[0], "--model", minor_in[1]]
        self.add("next", names.next_job(k),
                 ["--cycle", k, "--gather", *gathered, *(["--psf-fits", psf[0]] if psf else []),
                  "--residual", residual, *(["--state", state[0]] if state else []),
                  "--partitions", manifest,
                  "--workflow", ctx.job_prefix + names.cycle_file(k + 1),
                  "--decision", names.decision(r, k), *minor_args],
                 [*gathered, *state, manifest, *minor_in],
                 [(residual, ctx.fits_bytes() * ctx.nterms),
                  *((lfn, psf_fits_bytes(ctx)) for lfn in psf),
                  (self.ctx.job_prefix + names.cycle_file(k + 1), SMALL_FILE),
                  (names.decision(r, k), SMALL_FILE), *minor_out])

    def subworkflow(self, k: int, carried: list[str]) -> SubWorkflow:
        """The SubWorkflow job of cycle ``k``: its YAML is written by next-c(k-1) at run time;
        it declares the files ``carried`` down (graph.carried)."""
        job_id = self.ctx.job_prefix + names.cycle_job(k)
        sub = SubWorkflow(self.ctx.job_prefix + names.cycle_file(k), is_planned=False,
                          _id=job_id, node_label=job_id)
        sub.add_inputs(*map(File, carried))
        sub.add_planner_args(basename=job_id, **planner_args(self.ctx))
        profiles.apply_subworkflow(sub)
        self.wf.add_jobs(sub)
        return sub

    def restore(self, k: int) -> None:
        r = self.r
        name = self.ctx.settings["image"]["name"]
        psf, dirty, residual = names.psf_fits(r), names.dirty_fits(r), names.residual_fits(r, k)
        # the last cycle's model and state; as next-cKK handed them down (its copies, named
        # for cycle k+1) where it runs the minor cycles
        m = k + 1 if self.ctx.minor_cycle_in_next else k
        last = [names.model(r, m), names.state(r, m)] if k > 0 else []
        self.add("restore", names.RESTORE,
                 ["--psf", psf, "--dirty", dirty, "--residual", residual,
                  *(["--model", last[0], "--state", last[1]] if last else []),
                  "--name", name],
                 [psf, dirty, residual, *last],
                 [(lfn, self.ctx.fits_bytes()) for lfn in names.products(
                     name, self.ctx.nterms, self.ctx.settings["image"]["primary_beam"],
                     self.ctx.settings["output"]["previews"])])

    # --- files from earlier levels -----------------------------------------------------

    def externals(self) -> list[str]:
        """Input LFNs that no job here produces, sorted."""
        uses = [use for job in self.wf.jobs.values() for use in job.uses]
        produced = {use.file.lfn for use in uses if use._type == "output"}
        return sorted({use.file.lfn for use in uses if use._type == "input"} - produced)

    def bypass_staging(self, urls: dict[str, str]) -> None:
        """Let every job read the files of earlier levels (and the run's inputs) where they
        are, where it can: each such input is marked for bypass, and the planner then takes
        it straight from there when the job can fetch it itself (a remote URL, OSDF or HTTP,
        on a worker node; a submit-host file for a job on the submit host), with no stage-in
        job. A submit-host file that a worker node cannot see (condorio, or nonsharedfs
        without a shared file system) is still staged. The jobs on the submit host never
        fetch a remote URL themselves."""
        for job in self.wf.jobs.values():
            if not isinstance(job, Job):
                continue
            for use in job.uses:
                if use._type != "input" or use.file.lfn not in urls:
                    continue
                remote = replicas.is_remote(urls[use.file.lfn])
                on_submit_host = job.transformation in self.submit_host_transformations
                use.bypass = not (remote and on_submit_host)

    def attach_inline_catalog(self) -> list[str]:
        """Name every file from earlier levels in an inline replica catalog; returns them."""
        lfns = self.externals()
        rc = replicas.inline_catalog(self.ctx, lfns)
        self.wf.add_replica_catalog(rc)
        self.bypass_staging({lfn: replicas.locations(self.ctx, lfn)[0][1] for lfn in lfns})
        return lfns


"""The top level of a cube (``image.mode: cube``; workflows/cube.py).

    partition (every output channel's parts, one read of the MSs' channels per channel)
    -> for each output channel N (job ids chNNNN-..., files R-chNNNN-...):
       [weights -> gather-weights] -> grid-c00 -> [gather] -> next-c00 -> chNNNN-cycle-01
       (its own loop of major cycles, then its own restore, as sub-workflows)
    -> cube (after every channel's chain: stacks NAME-NNNN-*.fits into the cube files)

An output channel with no unflagged data (``output.blank_channels``, found by the plan) has
no chain: the cube job writes its planes as NaN, with no beam (``-`` in --channels).

Nothing but the cube job waits on more than one channel. The cube job runs on the submit
host and reads the channels' products where they arrive (the outputs directory, named in
replicas.yml), declared as inputs and bypassing staging, so no stage-in job is planned for
files that only exist once the channels have finished.
"""

from __future__ import annotations

from Pegasus.api import Workflow

from htclean.catalogs import replicas
from htclean.workflows import cube, names
from htclean.workflows.builder import Builder
from htclean.workflows.context import SMALL_FILE, RunContext, file_url
from htclean.workflows.graph import first_level


def cube_inputs(ctx: RunContext) -> list[str]:
    """Every output channel's products that the cube job reads."""
    name = ctx.settings["image"]["name"]
    blank = cube.blank_channels(ctx.settings)
    return [lfn for g in range(len(cube.groups(ctx.settings))) if g not in blank
            for lfn in cube.channel_products(name, g)]


def cube_outputs(ctx: RunContext) -> list[str]:
    """What the cube job writes (names.cube_products; whether this htclean has the
    products module is asked without importing it)."""
    from importlib.util import find_spec

    image = ctx.settings["image"]
    return names.cube_products(image["name"], image["rest_frequency"],
                               find_spec(names.PRODUCTS_MODULE) is not None)


def top_workflow(ctx: RunContext, axis: cube.Axis) -> Workflow:
    """The top level of a cube: the partition, each output channel's first level and the
    SubWorkflow job of its cycle 01, and the cube job after all of them; ``axis``: the
    output channels' frequencies and frame (read from the MS at plan time)."""
    channels = cube.group_contexts(ctx)
    b = Builder(ctx, "top")
    parts = b.partition(channels)
    p = ctx.parts
    subs = [first_level(Builder(c, "top", wf=b.wf), parts[g * p:(g + 1) * p])
            for g, c in enumerate(channels)]
    name, blank = ctx.settings["image"]["name"], cube.blank_channels(ctx.settings)
    prefixes = ["-" if g in blank else f"{name}-{g:04d}" for g in range(len(axis.frequencies))]
    job = b.add("cube", names.CUBE,
                ["--name", name, "--channels", *prefixes,
                 "--frequencies", *map(repr, axis.frequencies), "--width", repr(axis.width),
                 "--specsys", axis.specsys],
                cube_inputs(ctx), [(lfn, ctx.fits_bytes() * len(channels))
                                   if lfn.endswith(".fits") else (lfn, SMALL_FILE)
                                   for lfn in cube_outputs(ctx)])
    for sub in subs:
        b.wf.add_dependency(sub, children=[job])
    urls = dict(zip(ctx.ms_lfns, ctx.settings["data"]["ms"], strict=True))
    for c in (ctx, *channels):
        urls[names.config(c.stem)] = replicas.output_location(c, names.config(c.stem))[1]
    urls.update({lfn: file_url(ctx.outputs_dir / lfn) for lfn in cube_inputs(ctx)})
    b.bypass_staging(urls)
    return b.wf

"""An HTClean-style job graph (the December 2023 HUDF run's shape), for the same simulation.

HTClean ran plain DAGMan: a PSF pass and a dirty-image pass over every part, then per major
cycle one DAG, resubmitted (RETRY + a POST script deciding whether to go on): the model
image shipped from the access point to every part's job, a residual job per part reading its
data from OSDF and returning a partial image to the access point, one flat gather of all
partials, the minor cycle on a GPU, the POST script. Between passes a person looked at the
result and submitted the next DAG (``human_gap_s``, a fitted figure).

A PSF or dirty job grids its part once; a major-cycle job predicts and grids (twice the
work: htclean's own residual job does both too).

``Htclean2023`` holds the campaign's shape and HTClean's own job cost (a fitted GPU seconds
per GB of part data: HTClean's gridder is not htclean's).
"""

from __future__ import annotations

from dataclasses import dataclass

from htclean.workflows.campaign.costs import Costs
from htclean.workflows.campaign.dag import AP, INTERNAL, OSDF, POOL, Node


@dataclass(frozen=True)
class Htclean2023:
    """``data_bytes`` of MS in ``parts`` parts, ``cycles`` major cycles, an ``image_size``^2
    float32 image; ``gpu_s_per_gb``: GPU seconds per GB of a part's data for one gridding pass;
    ``human_gap_s``: between one pass's end and the next DAG's submission."""

    data_bytes: float
    parts: int
    cycles: int
    image_size: int
    gpu_s_per_gb: float
    human_gap_s: float
    deconvolve_s: float = 0.0   # 0: htclean's measured minor-cycle cost at this image size


def build(c: Htclean2023, dagman_start_s: float = 5.0) -> list[Node]:
    """Every node: passes ``psf`` (cycle -1), ``dirty`` (0) and major cycles 1..cycles."""
    image = 4.0 * c.image_size ** 2
    part_bytes = c.data_bytes / c.parts
    part_s = c.gpu_s_per_gb * part_bytes / 1e9
    deconvolve_s = c.deconvolve_s or Costs(0, c.image_size ** 2).deconvolve() / 2
    nodes: list[Node] = []
    last: list[str] = []
    passes = ["psf", "dirty", *(f"c{k:02d}" for k in range(1, c.cycles + 1))]
    for index, name in enumerate(passes):
        cycle = index - 1          # psf -1, dirty 0, major cycles 1..
        gap = Node(f"{name}/submit", "human" if last else "dagman", name, list(last),
                   INTERNAL, wall_s=(c.human_gap_s if last else 0.0) + dagman_start_s,
                   cycle=cycle, scanned=False, post=False)
        nodes.append(gap)
        first = gap.id
        if name.startswith("c"):
            # the minor cycle on the previous residual, then the model shipped to every part
            minor = Node(f"{name}/deconvolve", "deconvolve", name, [gap.id], POOL, gpu=True,
                         wall_s=deconvolve_s, in_bytes=2 * image, in_route=AP,
                         out_bytes=image, out_route=AP, cycle=cycle, priority=100)
            nodes.append(minor)
            first = minor.id
        kind = {"psf": "psf", "dirty": "dirty"}.get(name, "residual")
        model = image if kind == "residual" else 0.0
        part_ids = []
        for i in range(c.parts):
            n = Node(f"{name}/{kind}-{i:03d}", kind, name, [first], POOL, gpu=True,
                     wall_s=part_s * (2 if kind == "residual" else 1),
                     in_bytes=part_bytes + model, in_route=OSDF,
                     out_bytes=image, out_route=AP, cycle=cycle)
            nodes.append(n)
            part_ids.append(n.id)
        gather = Node(f"{name}/gather", "gather", name, part_ids, POOL,
                      wall_s=Costs(0, c.image_size ** 2).gather(c.parts),
                      in_bytes=c.parts * image, in_route=AP, out_bytes=image, out_route=AP,
                      cycle=cycle, priority=100)
        decide = Node(f"{name}/decide", "decide", name, [gather.id], INTERNAL, wall_s=2.0,
                      cycle=cycle, post=False)
        nodes += [gather, decide]
        last = [decide.id]
    return nodes

"""A PNG of the simulated run: jobs running at each moment, one line per job type."""

from __future__ import annotations

import os
from collections import defaultdict

from htclean.workflows.campaign.dag import INTERNAL, Node
from htclean.workflows.campaign.simulate import Times


def plot(nodes: list[Node], times: dict[str, Times], path: str | os.PathLike,
         title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for n in nodes:
        if n.where == INTERNAL:
            continue
        t = times[n.id]
        edges[n.kind] += [(t.start, 1), (t.end, -1)]
    wall = max(t.done for t in times.values())
    scale, unit = (3600.0, "h") if wall > 7200 else (60.0, "min") if wall > 600 else (1.0, "s")
    fig, ax = plt.subplots(figsize=(10, 4))
    for kind, ev in sorted(edges.items()):
        ev.sort()
        xs, ys, level = [0.0], [0], 0
        for x, d in ev:
            xs.append(x / scale)
            ys.append(level)
            level += d
            xs.append(x / scale)
            ys.append(level)
        ax.plot(xs, ys, label=kind, lw=1)
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("jobs running")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

"""The concurrency plot of ``htclean report``: running jobs against time, stacked by job type
(matplotlib, Agg backend, PNG), with the peak concurrency and the total wall beside it."""

from __future__ import annotations

import os
from pathlib import Path


def plot_concurrency(times: list[float], counts: dict[str, list[int]], summary: dict,
                     path: Path, title: str = "") -> None:
    """Draw ``report.concurrency``'s step functions (times in Unix seconds, counts per type)
    stacked, time in seconds (minutes past an hour) from the first start; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    t0 = summary["start"]
    scale, unit = (60.0, "min") if summary["wall_s"] > 3600 else (1.0, "s")
    x = (np.asarray(times, dtype=float) - t0) / scale
    fig, ax = plt.subplots(figsize=(10, 4.5), layout="constrained")
    base = np.zeros(len(times))
    colors = plt.get_cmap("tab10" if len(counts) <= 10 else "tab20").colors
    for i, (kind, series) in enumerate(counts.items()):
        top = base + np.asarray(series, dtype=float)
        ax.fill_between(x, base, top, step="post", color=colors[i % len(colors)], label=kind,
                        linewidth=0)
        base = top
    ax.set_xlabel(f"time since the first job started ({unit})")
    ax.set_ylabel("running jobs")
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlim(0, max(x[-1], 1e-9) if len(x) else 1)
    ax.set_ylim(0, max(1, summary["peak_concurrency"]) * 1.1)
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="job type", fontsize="small")
    ax.text(1.01, 0.0, f"peak concurrency: {summary['peak_concurrency']}\n"
            f"total wall: {summary['wall_s']:.1f} s\n"
            f"jobs: {summary['jobs']}, attempts: {summary['attempts']}\n"
            f"failed attempts: {summary['failures']}",
            transform=ax.transAxes, va="bottom", ha="left", fontsize="small")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)

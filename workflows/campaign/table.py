"""The model's answer as text: the run's figures, then one line per cycle."""

from __future__ import annotations

import math

from htclean.workflows.campaign.metrics import CATEGORIES, Summary


def duration(s: float) -> str:
    if s >= 86400:
        return f"{s / 86400:.2f} d"
    if s >= 3600:
        return f"{s / 3600:.2f} h"
    if s >= 60:
        return f"{s / 60:.1f} min"
    return f"{s:.0f} s"


def size(b: float) -> str:
    for unit, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= f:
            return f"{b / f:.2f} {unit}"
    return f"{b:.0f} B"


def render(s: Summary, title: str) -> str:
    kinds = ", ".join(f"{n} {k}" for k, n in s.jobs.most_common())
    lines = [title,
             f"  wall time              {duration(s.wall_s)}",
             f"  jobs                   {s.total_jobs} ({kinds})",
             f"  jobs per minute        {s.jobs_per_min:.2f}",
             f"  peak jobs on the pool  {s.peak_pool_jobs} (GPU: {s.peak_gpu_jobs})",
             f"  GPU hours / slot hours {s.gpu_hours:.1f} / {s.slot_hours:.1f}",
             f"  bytes moved            {size(s.bytes)} ({size(s.ap_bytes)} through the "
             "access point)",
             f"  processing             {duration(s.processing_s)}: "
             f"{100 * s.processing_share:.1f} % of the wall time (computing "
             f"{duration(s.computing_s)})",
             f"  lost at barriers       {duration(s.barrier_s)} (first to last part "
             "finishing, summed over the gathers)",
             "  wall time by what ran  " + ", ".join(
                 f"{c} {duration(s.breakdown[c])} ({100 * s.breakdown[c] / s.wall_s:.0f} %)"
                 for c in CATEGORIES)]
    fast = s.fastest
    if fast:
        lines.append(f"  fastest cycle          {fast.cycle}: {fast.jobs_per_min:.2f} jobs/min,"
                     f" {fast.tb_per_hour:.3f} TB/h")
    lines.append("  cycle    span  loop-to-loop  jobs  jobs/min     bytes  access point")
    for c in s.cycles:
        loop = duration(c.loop_s) if not math.isnan(c.loop_s) else "-"
        lines.append(f"  {c.cycle:>5} {duration(c.wall_s):>7} {loop:>13} {c.jobs:>5} "
                     f"{c.jobs_per_min:>9.2f} {size(c.bytes):>9} {size(c.ap_bytes):>13}")
    return "\n".join(lines)

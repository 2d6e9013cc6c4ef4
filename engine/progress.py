"""The local engine's progress display on stderr: one updating line on a terminal, a line
every ``interval`` seconds (and at the end) otherwise.

It shows jobs done/running/failed/total, the workflow being run (the cycle) and the peak
residual that the latest ``R-deconvolve-cKK.json`` / ``R-next-cKK.json`` reports.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

# Outputs whose JSON may carry the peak residual, and the keys looked up in them, in order.
PEAK_FILE = re.compile(r"-(deconvolve|next)-c(\d+)\.json$")
PEAK_KEYS = ("peak_residual", "residual_peak", "peak_end", "peak")


@dataclass
class Snapshot:
    """Counts over every workflow loaded so far (sub-workflows add to ``total`` when reached).
    ``failed``: failed attempts in this run; ``peak``: peak residual in Jy/beam, or None."""

    done: int
    running: int
    failed: int
    total: int
    workflow: str
    peak: float | None
    elapsed: float


def peak_from_file(path: str | Path) -> float | None:
    """The peak residual (Jy/beam) a deconvolve/next JSON gives, looked up under PEAK_KEYS at
    its top level or under ``state``/``decision``; None if it gives none."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    for scope in (data, data.get("state"), data.get("decision")):
        if isinstance(scope, dict):
            for key in PEAK_KEYS:
                value = scope.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    return float(value)
    return None


class PeakTracker:
    """Keeps the peak of the highest cycle seen among staged-out deconvolve/next JSON files."""

    def __init__(self) -> None:
        self.cycle = -1
        self.rank = -1
        self.peak: float | None = None

    def offer(self, lfn: str, path: str) -> None:
        m = PEAK_FILE.search(lfn)
        if not m:
            return
        cycle, rank = int(m.group(2)), 1 if m.group(1) == "next" else 0
        if (cycle, rank) < (self.cycle, self.rank):
            return
        value = peak_from_file(path)
        if value is not None:
            self.cycle, self.rank, self.peak = cycle, rank, value


def _format_flux(jy: float) -> str:
    for unit, scale in (("Jy", 1.0), ("mJy", 1e-3), ("uJy", 1e-6)):
        if abs(jy) >= scale:
            return f"{jy / scale:.3g} {unit}"
    return f"{jy / 1e-9:.3g} nJy"


def format_line(s: Snapshot) -> str:
    """``[  12s] 40/120 done, 4 running, 1 failed | cycle-02 | peak 1.2 mJy``"""
    line = (f"[{s.elapsed:5.0f}s] {s.done}/{s.total} done, {s.running} running, "
            f"{s.failed} failed | {s.workflow}")
    if s.peak is not None:
        line += f" | peak {_format_flux(s.peak)}"
    return line


class ProgressDisplay:
    """Call ``update`` as often as you like; it draws at most every ``min_gap`` seconds on a
    terminal and every ``interval`` seconds otherwise; ``finish`` draws the last state."""

    def __init__(self, stream: TextIO | None = None, interval: float = 10.0,
                 min_gap: float = 0.2) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if not self.tty else min_gap
        self._last = 0.0
        self._width = 0

    def _draw(self, snapshot: Snapshot, final: bool) -> None:
        line = format_line(snapshot)
        if self.tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad + ("\n" if final else ""))
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._last = time.monotonic()

    def update(self, snapshot: Snapshot) -> None:
        if time.monotonic() - self._last >= self.interval:
            self._draw(snapshot, final=False)

    def finish(self, snapshot: Snapshot) -> None:
        self._draw(snapshot, final=True)

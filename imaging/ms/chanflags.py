"""Which channels of a Measurement Set hold any unflagged sample (a cube's blank channels).

Read at plan time from FLAG and FLAG_ROW of the rows the imaging reads, a block of rows at a
time: a channel counts as flagged when every correlation of every such row is flagged there.
(WEIGHT and the Stokes I rule are not read: a channel whose samples all have weight 0, or
whose only unflagged hand the ``wsclean`` rule drops, still counts as holding data.)
"""

from __future__ import annotations

import os

import numpy as np


def unflagged_channels(ms: str | os.PathLike, window: int, rows: np.ndarray | None,
                       block: int = 200000) -> np.ndarray:
    """(nchan,) bool of spectral window ``window``: True where some row of ``rows`` (None:
    every row) with that window has an unflagged sample."""
    from casacore.tables import table, taql

    path = os.fspath(ms)
    with table(path, ack=False) as t:
        with table(f"{path}/DATA_DESCRIPTION", ack=False) as dd:
            ddids = [d for d, s in enumerate(dd.getcol("SPECTRAL_WINDOW_ID")) if s == window]
        with table(f"{path}/SPECTRAL_WINDOW", ack=False) as sw:
            nchan = int(sw.getcell("NUM_CHAN", window))
        out = np.zeros(nchan, dtype=bool)
        picked = np.arange(t.nrows()) if rows is None else np.asarray(rows, np.int64)
        sel = t.selectrows(picked)
        try:
            chosen = taql(f"select FLAG, FLAG_ROW from $sel where DATA_DESC_ID in "
                          f"{list(ddids)}") if ddids else None
            for start in range(0, chosen.nrows() if chosen is not None else 0, block):
                n = min(block, chosen.nrows() - start)
                flag = chosen.getcol("FLAG", start, n)
                row = chosen.getcol("FLAG_ROW", start, n)
                good = ~flag & ~row[:, None, None]
                out |= good.any(axis=(0, 2))
                if out.all():
                    break
        finally:
            sel.close()
    return out

"""A campaign: the configuration as the planner sees it, plus what the model needs besides.

``Campaign.context()`` builds the same ``RunContext`` that ``htclean plan`` would (parts,
run id, site filled in) without reading or writing anything, so the model's graph is the
planner's own. Data size and visibilities come from the MS (``msinfo``) or from overrides.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

from htclean.imaging.errors import InputError
from htclean.workflows import config, names
from htclean.workflows.context import RunContext

MS_BYTES_PER_VIS = 18.7   # 50m: a 931 MB MS tar for 49.8 M Stokes I samples (2 correlations)


@dataclass(frozen=True)
class Campaign:
    """``resolved``: the configuration (resolved); ``data_bytes``: the input MSs together;
    ``visibilities``: Stokes I samples in all; ``parts``; ``cycles``: major cycles expected."""

    resolved: dict
    data_bytes: float
    visibilities: float
    parts: int
    cycles: int

    @property
    def settings(self) -> dict:
        return config.parse(self.resolved)

    def context(self, run_id: str = "model") -> RunContext:
        resolved = copy.deepcopy(self.resolved)
        resolved["output"].update(run_id=run_id, dir=str(Path("/model").absolute()))
        resolved["partition"].update(parts=self.parts, max_size=None)
        settings = config.parse(resolved)
        lfns = tuple(names.ms_lfn(m) for m in settings["data"]["ms"])
        share = self.data_bytes / len(lfns)
        sizes = {lfn: int(share) for lfn in lfns}
        part = int(8.1 * self.visibilities / self.parts) + 4096
        sizes.update({names.part(run_id, i, self.parts): part for i in range(self.parts)})
        return RunContext(resolved, settings, Path(resolved["output"]["dir"]), lfns, sizes)


def _measure(settings: dict) -> tuple[float | None, float | None]:
    """(bytes, visibilities) of the configuration's MSs where they can be read here."""
    total_b, total_v = 0.0, 0.0
    for ms in settings["data"]["ms"]:
        path = str(ms)
        if "://" in path or not os.path.exists(path):
            return (settings["data"]["size"], None)
        from htclean.imaging.ms import msinfo

        info = msinfo.describe(path)
        npol = max(1, len(info.correlations))
        total_b += info.size_bytes
        total_v += info.visibilities / npol
    return total_b, total_v


def from_config(raw: dict, base: str | os.PathLike = ".", *, data_bytes: float | None = None,
                visibilities: float | None = None, parts: int | None = None,
                cycles: int | None = None, site: str | None = None) -> Campaign:
    """A campaign from a configuration mapping; overrides win over the MS and the config."""
    raw = copy.deepcopy(raw)
    if site:
        raw.setdefault("execution", {})["site"] = site
    errors = config.validate(raw, base, check_files=False)
    if errors:
        raise errors[0]
    resolved = config.resolve(raw, base)
    settings = config.parse(resolved)
    measured_b, measured_v = (None, None)
    if data_bytes is None or visibilities is None:
        measured_b, measured_v = _measure(settings)
    data_bytes = data_bytes if data_bytes is not None else measured_b
    if data_bytes is None and visibilities is not None:
        data_bytes = visibilities * MS_BYTES_PER_VIS
    if data_bytes is None:
        raise InputError("the data size is unknown: give --data-bytes (or --visibilities), "
                         "or data.size, or an MS that can be read here")
    visibilities = visibilities or measured_v or data_bytes / MS_BYTES_PER_VIS
    p = parts or settings["partition"]["parts"]
    if p is None and settings["partition"]["max_size"]:
        p = max(1, -(-int(data_bytes) // int(settings["partition"]["max_size"])))
    k = cycles if cycles is not None else settings["deconvolution"]["max_cycles"]
    return Campaign(resolved, float(data_bytes), float(visibilities), int(p or 1), int(k))


def load(path: str | os.PathLike, **overrides) -> Campaign:
    """A campaign from a configuration file (see ``from_config``)."""
    return from_config(config.read_yaml(path), Path(path).resolve().parent, **overrides)

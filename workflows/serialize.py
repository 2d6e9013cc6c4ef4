"""Deterministic YAML of Pegasus.api objects: the same objects give the same bytes.

``Workflow.write()`` stamps the user and the time into ``x-pegasus`` and keeps file uses and
dependencies in Python sets, whose order changes from one process to the next. A retried
``next`` job must write the same bytes (a retried sub-workflow is not re-planned), so htclean
serialises through ``to_yaml``: the same JSON form the API writes, with uses sorted by LFN,
dependencies in job order, replica PFNs sorted, and no timestamp.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from Pegasus.api import ReplicaCatalog, SiteCatalog, TransformationCatalog, Workflow
from Pegasus.api.writable import _CustomEncoder

from htclean.executables.atomic import write_bytes_atomic

Catalog = Workflow | SiteCatalog | TransformationCatalog | ReplicaCatalog

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _sort_replicas(replicas: list[dict]) -> None:
    for entry in replicas:
        entry["pfns"] = sorted(entry.get("pfns", []), key=lambda p: (p["site"], p["pfn"]))


def as_dict(obj: Catalog) -> dict[str, Any]:
    """The Pegasus 5 document of a workflow or catalog as plain dicts, in canonical order."""
    if isinstance(obj, Workflow):
        obj._infer_dependencies()
    doc = json.loads(json.dumps(obj, cls=_CustomEncoder))
    if isinstance(obj, Workflow):
        order = {job["id"]: n for n, job in enumerate(doc["jobs"])}
        for job in doc["jobs"]:
            job["uses"] = sorted(job["uses"], key=lambda u: (u["lfn"], u["type"]))
        deps = sorted(doc.get("jobDependencies", []), key=lambda d: order[d["id"]])
        for dep in deps:
            dep["children"] = sorted(dep["children"], key=order.__getitem__)
        doc["jobDependencies"] = [d for d in deps if d["children"]]
        if "replicaCatalog" in doc:
            _sort_replicas(doc["replicaCatalog"]["replicas"])
    elif isinstance(obj, ReplicaCatalog):
        _sort_replicas(doc["replicas"])
    return doc


def to_yaml(obj: Catalog | dict) -> str:
    """YAML text of a workflow, a catalog, or a document from ``as_dict``."""
    doc = obj if isinstance(obj, dict) else as_dict(obj)
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=1000)


def write(obj: Catalog, path: str | os.PathLike) -> Path:
    """Write a workflow or catalog as deterministic YAML, atomically."""
    return write_bytes_atomic(path, to_yaml(obj).encode())

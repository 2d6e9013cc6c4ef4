"""Read the catalogs ``htclean plan`` writes, for the local engine: the site, transformation
and replica catalogs and ``pegasus.properties`` (the workflow itself: ``workflow_spec``).

Only what the engine needs is kept, in plain dataclasses; the formats are those of the Pegasus
5 schemas (``sc-5.0.yml``, ``tc-5.0.yml``, ``rc-5.0.yml``) as the Pegasus.api writes them.
Every problem is one ``InputError`` that names the file and the entry.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import yaml

from htclean.imaging.errors import InputError

# Directories of a site where the engine stages outputs, in order of preference.
STORAGE_TYPES = ("localStorage", "sharedStorage", "sharedScratch", "localScratch")

Profiles = dict[str, dict[str, str]]


def read_yaml(path: Path, what: str) -> dict:
    """A YAML mapping from ``path``; ``what`` names it in the InputError otherwise."""
    if not path.is_file():
        raise InputError(f"{what}: no such file {path}")
    try:
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise InputError(f"{what} {path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise InputError(f"{what} {path}: must be a YAML mapping")
    return data


def parse_profiles(raw: object, where: str) -> Profiles:
    """Profiles as {namespace: {key: value}}, namespaces lower-case, values strings."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError(f"{where}: profiles must be a mapping of namespaces")
    out: Profiles = {}
    for ns, entries in raw.items():
        if not isinstance(entries, dict):
            raise InputError(f"{where}: profiles.{ns} must be a mapping")
        out[str(ns).lower()] = {str(k): str(v) for k, v in entries.items()
                                if not str(k).startswith("x-")}
    return out


def merge_profiles(*layers: Profiles) -> Profiles:
    """Later layers win, key by key (Pegasus: job > transformation site > transformation > site)."""
    out: Profiles = {}
    for layer in layers:
        for ns, entries in layer.items():
            out.setdefault(ns, {}).update(entries)
    return out


def profile(profiles: Profiles, namespace: str, key: str) -> str | None:
    """One profile value, the key matched case-insensitively (DAGMan writes ``RETRY``)."""
    for k, v in profiles.get(namespace, {}).items():
        if k.lower() == key.lower():
            return v
    return None


def url_to_path(url: str) -> Path | None:
    """The local path of a ``file://`` URL or an absolute path; None for any other scheme."""
    if url.startswith("/"):
        return Path(url)
    parsed = urlparse(url)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(unquote(parsed.path))
    return None


# --- properties -----------------------------------------------------------------------------


def read_properties(path: Path) -> dict[str, str]:
    """A Java-style properties file (``key = value``, ``#`` comments) as a dict; {} if absent."""
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        m = re.match(r"([^=:\s]+)\s*(?:[=:]\s*|\s+)?(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


# --- replica catalog ------------------------------------------------------------------------


@dataclass
class ReplicaCatalog:
    """LFN -> [(site, pfn)], plus regex entries (``regex: true``; ``[n]`` in a PFN is group n)."""

    exact: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    regex: list[tuple[re.Pattern, list[tuple[str, str]]]] = field(default_factory=list)

    @classmethod
    def parse(cls, raw: object, where: str) -> ReplicaCatalog:
        rc = cls()
        if raw is None:
            return rc
        if not isinstance(raw, list):
            raise InputError(f"{where}: replicas must be a list")
        for entry in raw:
            if not isinstance(entry, dict) or "lfn" not in entry:
                raise InputError(f"{where}: every replica needs an lfn, got {entry!r}")
            pfns = []
            for p in entry.get("pfns") or []:
                if not isinstance(p, dict) or "pfn" not in p:
                    raise InputError(f"{where}: replica {entry['lfn']!r} has a bad pfn {p!r}")
                pfns.append((str(p.get("site", "local")), str(p["pfn"])))
            if entry.get("regex"):
                try:
                    rc.regex.append((re.compile(str(entry["lfn"])), pfns))
                except re.error as exc:
                    raise InputError(f"{where}: replica regex {entry['lfn']!r}: {exc}") from None
            else:
                rc.exact.setdefault(str(entry["lfn"]), []).extend(pfns)
        return rc

    def lookup(self, lfn: str) -> list[tuple[str, str]]:
        """Every (site, pfn) of an LFN: exact entries first, then matching regex entries."""
        found = list(self.exact.get(lfn, []))
        for pattern, pfns in self.regex:
            m = pattern.fullmatch(lfn)
            if m:
                groups = [m.group(0), *m.groups()]

                def group(g: re.Match, groups: list = groups) -> str:
                    i = int(g.group(1))
                    return (groups[i] or "") if i < len(groups) else g.group(0)

                found.extend((site, re.sub(r"\[(\d+)\]", group, pfn)) for site, pfn in pfns)
        return found


def local_replica(lfn: str, catalogs: Iterable[ReplicaCatalog]) -> tuple[Path | None, list[str]]:
    """The first existing local file of an LFN over catalogs in order of precedence.

    Within a catalog, PFNs on site ``local`` come first. Returns (path, every PFN seen); path is
    None when no ``file://`` PFN exists on disk.
    """
    seen: list[str] = []
    for rc in catalogs:
        pfns = sorted(rc.lookup(lfn), key=lambda sp: sp[0] != "local")
        for _, pfn in pfns:
            seen.append(pfn)
            path = url_to_path(pfn)
            if path is not None and path.exists():
                return path, seen
    return None, seen


# --- transformation catalog -----------------------------------------------------------------


@dataclass
class TransformationSite:
    """One site of a transformation: ``pfn`` as written (path or URL), profiles, container."""

    pfn: str
    kind: str
    profiles: Profiles
    container: str | None


@dataclass
class Transformation:
    namespace: str | None
    name: str
    version: str | None
    profiles: Profiles
    sites: dict[str, TransformationSite]


@dataclass
class TransformationCatalog:
    entries: list[Transformation] = field(default_factory=list)

    @classmethod
    def parse(cls, raw: object, where: str) -> TransformationCatalog:
        tc = cls()
        if raw is None:
            return tc
        if not isinstance(raw, list):
            raise InputError(f"{where}: transformations must be a list")
        for entry in raw:
            if not isinstance(entry, dict) or "name" not in entry:
                raise InputError(f"{where}: every transformation needs a name, got {entry!r}")
            name = str(entry["name"])
            here = f"{where}: transformation {name}"
            sites = {}
            for s in entry.get("sites") or []:
                if not isinstance(s, dict) or "name" not in s or "pfn" not in s:
                    raise InputError(f"{where}: transformation {name!r} has a site without "
                                     "name or pfn")
                sites[str(s["name"])] = TransformationSite(
                    pfn=str(s["pfn"]), kind=str(s.get("type", "installed")),
                    profiles=parse_profiles(s.get("profiles"), here),
                    container=s.get("container"))
            tc.entries.append(Transformation(
                namespace=entry.get("namespace"), name=name,
                version=None if entry.get("version") is None else str(entry["version"]),
                profiles=parse_profiles(entry.get("profiles"), here),
                sites=sites))
        return tc

    def find(self, name: str, namespace: str | None, version: str | None,
             site: str) -> Transformation | None:
        """The first entry with this name (namespace and version matched when the job gives
        them) that has the site."""
        for t in self.entries:
            if t.name != name or site not in t.sites:
                continue
            if namespace is not None and t.namespace not in (None, namespace):
                continue
            if version is not None and t.version not in (None, version):
                continue
            return t
        return None


# --- site catalog ---------------------------------------------------------------------------


@dataclass
class SiteEntry:
    name: str
    directories: dict[str, Path]
    profiles: Profiles


def parse_sites(raw: object, where: str) -> dict[str, SiteEntry]:
    """Sites by name; each directory type maps to its local path (file server URL or path)."""
    if not isinstance(raw, list):
        raise InputError(f"{where}: sites must be a list")
    sites: dict[str, SiteEntry] = {}
    for s in raw:
        if not isinstance(s, dict) or "name" not in s:
            raise InputError(f"{where}: every site needs a name, got {s!r}")
        dirs: dict[str, Path] = {}
        for d in s.get("directories") or []:
            if not isinstance(d, dict) or "type" not in d:
                continue
            path = None
            for server in d.get("fileServers") or []:
                path = url_to_path(str(server.get("url", "")))
                if path is not None:
                    break
            if path is None and d.get("path"):
                path = Path(str(d["path"]))
            if path is not None:
                dirs.setdefault(str(d["type"]), path)
        name = str(s["name"])
        sites[name] = SiteEntry(name, dirs,
                                parse_profiles(s.get("profiles"), f"{where}: site {name}"))
    return sites


# --- the plan directory ---------------------------------------------------------------------


@dataclass
class Catalogs:
    """The standalone catalogs of a plan directory, and where site ``local`` keeps outputs."""

    plan_dir: Path
    properties: dict[str, str]
    sites: dict[str, SiteEntry]
    transformations: TransformationCatalog
    replicas: ReplicaCatalog
    storage_dir: Path


def _catalog_path(plan_dir: Path, props: dict[str, str], key: str, default: str) -> Path:
    value = props.get(key)
    path = Path(os.path.expanduser(value)) if value else Path(default)
    return path if path.is_absolute() else plan_dir / path


def load_catalogs(plan_dir: Path, site: str = "local") -> Catalogs:
    """Read ``pegasus.properties`` and the catalogs it names (default: ``sites.yml``,
    ``transformations.yml``, ``replicas.yml`` beside it) from a plan directory."""
    plan_dir = Path(plan_dir).resolve()
    props = read_properties(plan_dir / "pegasus.properties")
    sc_path = _catalog_path(plan_dir, props, "pegasus.catalog.site.file", "sites.yml")
    tc_path = _catalog_path(plan_dir, props, "pegasus.catalog.transformation.file",
                            "transformations.yml")
    rc_path = _catalog_path(plan_dir, props, "pegasus.catalog.replica.file", "replicas.yml")
    sites = parse_sites(read_yaml(sc_path, "site catalog").get("sites"),
                        f"site catalog {sc_path}")
    if site not in sites:
        raise InputError(f"site catalog {sc_path}: has no site {site!r}")
    storage = next((sites[site].directories[t] for t in STORAGE_TYPES
                    if t in sites[site].directories), None)
    if storage is None:
        raise InputError(f"site catalog {sc_path}: site {site!r} has no localStorage directory "
                         "with a file:// file server")
    tc = TransformationCatalog.parse(
        read_yaml(tc_path, "transformation catalog").get("transformations"),
        f"transformation catalog {tc_path}") if tc_path.exists() else TransformationCatalog()
    rc = ReplicaCatalog.parse(read_yaml(rc_path, "replica catalog").get("replicas"),
                              f"replica catalog {rc_path}") if rc_path.exists() \
        else ReplicaCatalog()
    return Catalogs(plan_dir, props, sites, tc, rc, storage)

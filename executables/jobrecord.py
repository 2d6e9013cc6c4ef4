"""The contents of a job record: what the job read and wrote, its CPU time and peak memory,
and the container it ran in (executables/record.py writes it)."""

from __future__ import annotations

import json
import os
import resource
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from htclean.executables.outcome import EXIT_CLASSES, file_digests

if TYPE_CHECKING:
    from htclean.executables.record import Job

IMAGE_FILE = "/opt/htclean/image.json"  # the image's own description (containers/Dockerfile)


def _size(p: Path) -> int:
    """Bytes in a file, or in all files under a directory."""
    try:
        if p.is_dir():
            return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        return p.stat().st_size
    except OSError:
        return 0


def _own_peak_kib(own: resource.struct_rusage) -> float:
    """This process's peak resident set in KiB: VmHWM of /proc/self/status, the high-water
    mark of its own address space. ru_maxrss is the fallback where /proc is absent: on Linux
    it carries the parent's high-water mark across fork+exec (a job started by a 200 MB
    engine would report 200 MB)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1])  # "VmHWM:   12345 kB"
    except (OSError, IndexError, ValueError):
        pass
    return float(own.ru_maxrss)  # KiB on Linux


def _usage() -> tuple[float, float]:
    """(CPU seconds, peak RSS in MB) of this process and its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    return cpu, max(_own_peak_kib(own), float(kids.ru_maxrss)) / 1024.0


def job_name(record_path: str | None, executable: str, run_id: str | None = None) -> str:
    """The job id from ``R-<job id>.record.json`` (``run_id`` = R), else the record's stem;
    the executable's name without a record."""
    if not record_path:
        return executable
    stem = Path(record_path).name.removesuffix(".json").removesuffix(".record")
    if run_id and stem.startswith(f"{run_id}-"):
        return stem[len(run_id) + 1:]
    return stem


def container_info(image_file: str = IMAGE_FILE) -> dict[str, Any] | None:
    """The container the job runs in, or None: the runtime seen from inside (Apptainer's
    APPTAINER_CONTAINER, podman's /run/.containerenv, docker's /.dockerenv) and the htclean
    image's own description ({"image": tag, "htclean": version}, written when it was built)."""
    runtime, where = None, None
    for var in ("APPTAINER_CONTAINER", "SINGULARITY_CONTAINER"):
        if os.environ.get(var):
            runtime, where = "apptainer", os.environ[var]
            break
    else:
        if os.path.exists("/run/.containerenv"):
            runtime = "podman"
        elif os.path.exists("/.dockerenv"):
            runtime = "docker"
    try:
        with open(image_file, encoding="utf-8") as f:
            image = json.load(f)
    except (OSError, ValueError):
        image = None
    if runtime is None and image is None:
        return None
    info: dict[str, Any] = {"runtime": runtime, "image": None}
    if isinstance(image, dict):
        info.update(image)
    if where:
        info["path"] = where
    return info


def build_record(job: Job, start: datetime, wall: float, status: int, error: str | None,
                 gpu_samples: list[dict[str, float]]) -> dict[str, Any]:
    cpu, rss = _usage()
    return {
        "job": job.name, "executable": job.executable, "argv": job.argv,
        "start": start.isoformat(timespec="seconds"), "wall_s": round(wall, 6),
        "cpu_s": round(cpu, 6), "max_rss_mb": round(rss, 3),
        "bytes_read": sum(job.partly_read.get(p, _size(p)) for p in dict.fromkeys(job.inputs)),
        "bytes_written": sum(_size(p) for p in dict.fromkeys(job.outputs)),
        "visibilities": int(job.visibilities), "device": job.device,
        "gpu_samples": gpu_samples, "exit_status": status,
        "exit_class": EXIT_CLASSES.get(status, "interrupted"), "error": error,
        "outputs": file_digests(job.outputs) if status == 0 else {},
        "inputs_verified": job.verified, "container": container_info(),
    }



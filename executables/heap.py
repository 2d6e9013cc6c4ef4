"""Freed arrays go back to the system: glibc's mmap threshold fixed at 1 MiB for a job.

glibc serves a request above its mmap threshold with its own mapping, returned to the system
when freed; but after such a block is freed it raises the threshold (up to 32 MiB), so the
next blocks of that size come from the heap and, freed below a live object, stay resident.
A grid job allocates and frees many 1-30 MB temporaries (weighting slices, zip reads) before
its largest gridder call: at 4096², 50M visibilities, fixing the threshold lowered the
PSF + dirty job's peak from 1.32 to 1.22 GB. A no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
THRESHOLD = 1 << 20


def return_freed_memory() -> bool:
    """Fix glibc's mmap threshold at 1 MiB in this process; True where it was set."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
    except OSError:
        return False
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD))

"""Which device runs the gridding and the minor cycle: CuPy on a CUDA GPU, or numpy on the CPU.

``select(setting)`` resolves the configuration's ``gridder.device`` (``auto``, ``cpu``, ``gpu``):
``auto`` takes the GPU when CuPy imports and finds a CUDA device and the CPU otherwise; ``gpu``
without CuPy or without a device is one InputError saying which. The returned ``Device`` carries
the array module (``xp``: numpy or cupy) and the label the job record stores (``cpu`` or
``gpu:<name>``). CuPy is imported only here, and only when a GPU is asked for or probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType

import numpy as np

from htclean.imaging.errors import InputError

SETTINGS = ("auto", "cpu", "gpu")


@dataclass(frozen=True)
class Device:
    """A resolved device: ``kind`` ``"cpu"`` or ``"gpu"``, ``name`` of the GPU (None on the
    CPU), ``xp`` the array module (numpy or cupy), ``reason`` why auto chose the CPU (or None)."""

    kind: str
    name: str | None
    xp: ModuleType
    reason: str | None = None

    @property
    def label(self) -> str:
        """What the job record's ``device`` field says: ``cpu`` or ``gpu:<name>``."""
        return "cpu" if self.kind == "cpu" else f"gpu:{self.name}"

    @property
    def is_gpu(self) -> bool:
        return self.kind == "gpu"


CPU = Device("cpu", None, np)


@lru_cache(maxsize=1)
def probe() -> tuple[ModuleType | None, str | None, str]:
    """Look for CuPy and a CUDA device once: ``(cupy, device name, reason)``.

    ``cupy`` is None when it cannot be used; ``reason`` then says why (``"CuPy is not
    installed"``, ``"no CUDA device (...)"``); it is ``""`` when a GPU was found.
    """
    try:
        import cupy
    except ImportError:
        return None, None, "CuPy is not installed (pip install htclean[gpu])"
    except Exception as exc:  # a broken CUDA install fails at import in several ways
        return None, None, f"CuPy does not import ({type(exc).__name__}: {exc})"
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # CUDARuntimeError when no driver or no device
        return None, None, f"CuPy finds no CUDA device ({_one_line(exc)})"
    if count < 1:
        return None, None, "CuPy finds no CUDA device (device count 0)"
    try:
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"]
        name = name.decode() if isinstance(name, bytes) else str(name)
    except Exception as exc:
        return None, None, f"CuPy cannot query the CUDA device ({_one_line(exc)})"
    return cupy, name, ""


def select(setting: str = "auto") -> Device:
    """The device for ``gridder.device = setting``.

    ``cpu``: numpy. ``auto``: the GPU when one is usable, else numpy (``reason`` says why).
    ``gpu``: the GPU, or InputError "gridder.device is gpu but ..." naming what is missing.
    """
    if setting not in SETTINGS:
        raise InputError(f"gridder.device must be one of {', '.join(SETTINGS)}; got {setting!r}")
    if setting == "cpu":
        return CPU
    cupy, name, reason = probe()
    if cupy is None:
        if setting == "gpu":
            raise InputError(f"gridder.device is gpu but {reason}")
        return Device("cpu", None, np, reason)
    return Device("gpu", name, cupy)


def array_module(array: object) -> ModuleType:
    """numpy or cupy, whichever owns ``array`` (numpy for anything that is not a CuPy array)."""
    module = type(array).__module__.split(".", 1)[0]
    if module == "cupy":
        import cupy

        return cupy
    return np


def to_numpy(array: object) -> np.ndarray:
    """A numpy copy of a CuPy array, or the numpy array itself."""
    if hasattr(array, "get") and type(array).__module__.split(".", 1)[0] == "cupy":
        return array.get()
    return np.asarray(array)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__

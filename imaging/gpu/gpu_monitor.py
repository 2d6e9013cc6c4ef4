"""GPU utilisation and memory sampled with NVML in a background thread, for the job record.

``with sampling(interval_s=1.0) as mon: ...`` samples the job's GPU every ``interval_s``
seconds while the block runs; ``mon.samples`` is then a list of ``{"t": s since start,
"util": % (None where NVML cannot say, e.g. a MIG slice), "mem_mb": MiB used}``. Where NVML,
its library or a driver is absent the monitor takes no samples and ``mon.reason`` says why;
it never raises. ``start()`` is what executables/record.py calls: a started monitor when the
job will run on a GPU (NVML sees it and CuPy finds a CUDA device), else None.

The GPU is the job's: the first entry of CUDA_VISIBLE_DEVICES (an index, or a UUID prefix as
HTCondor assigns, ``GPU-1a2b3c4d``), device 0 when it is unset. NVML numbers devices in PCI bus
order; an index in CUDA_VISIBLE_DEVICES means the same device only with
CUDA_DEVICE_ORDER=PCI_BUS_ID (HTCondor gives UUIDs, which are unambiguous).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from typing import Any


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pick_device(nvml: Any) -> Any:
    """The NVML handle of the job's GPU (see the module docstring); ValueError if not found."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    token = visible.split(",")[0].strip() if visible is not None else "0"
    if token == "" or token.startswith("-"):
        raise ValueError(f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU")
    if token.isdigit():
        return nvml.nvmlDeviceGetHandleByIndex(int(token))
    for i in range(int(nvml.nvmlDeviceGetCount())):
        handle = nvml.nvmlDeviceGetHandleByIndex(i)
        if _text(nvml.nvmlDeviceGetUUID(handle)).startswith(token):
            return handle
    raise ValueError(f"no GPU with UUID {token!r} (CUDA_VISIBLE_DEVICES)")


class GpuMonitor:
    """Samples one GPU every ``interval_s`` seconds in a daemon thread between ``start()`` and
    ``stop()``. ``name``: the GPU's name (None without NVML); ``reason``: why there are no
    samples (None when sampling works); ``samples``: the list of sample dicts."""

    def __init__(self, interval_s: float = 1.0):
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        self.interval_s = float(interval_s)
        self.name: str | None = None
        self.reason: str | None = None
        self.samples: list[dict[str, float | None]] = []
        self._nvml: Any = None
        self._handle: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def _open(self) -> None:
        try:
            import pynvml
        except ImportError:
            self.reason = "NVML is not available: the nvidia-ml-py package is not installed"
            return
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...
            self.reason = f"NVML cannot start (no NVIDIA driver?): {_one_line(exc)}"
            return
        try:
            self._handle = _pick_device(pynvml)
            self.name = _text(pynvml.nvmlDeviceGetName(self._handle))
        except Exception as exc:
            self.reason = f"NVML finds no GPU for this job: {_one_line(exc)}"
            with contextlib.suppress(Exception):
                pynvml.nvmlShutdown()
            return
        self._nvml = pynvml

    def sample(self) -> dict[str, float | None]:
        """One sample now (util None when the device cannot report it)."""
        nvml, handle = self._nvml, self._handle
        try:
            util: float | None = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except Exception:  # NOT_SUPPORTED on MIG slices
            util = None
        mem = nvml.nvmlDeviceGetMemoryInfo(handle)
        return {"t": round(time.monotonic() - self._t0, 3), "util": util,
                "mem_mb": round(mem.used / 2**20, 1)}

    def _loop(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # one failed query must not end the job
                self.samples.append(self.sample())
            if self._stop.wait(self.interval_s):
                return

    def start(self) -> GpuMonitor:
        """Open NVML and start sampling (no exception: without NVML ``reason`` is set)."""
        if self._thread is not None:
            return self
        self._t0 = time.monotonic()
        self._open()
        if self._nvml is not None:
            self._thread = threading.Thread(target=self._loop, name="gpu-monitor", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> list[dict[str, float | None]]:
        """Stop sampling (one last sample first) and return the samples."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5 * self.interval_s + 5)
            with contextlib.suppress(Exception):
                self.samples.append(self.sample())
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
            self._thread = None
            self._nvml = None
        return self.samples

    def __enter__(self) -> GpuMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def sampling(interval_s: float = 1.0) -> Iterator[GpuMonitor]:
    """Sample the job's GPU while the block runs; the monitor's ``samples`` hold the result
    and ``reason`` says why there are none. Never raises for a missing GPU or driver."""
    monitor = GpuMonitor(interval_s)
    with monitor:
        yield monitor


def start(interval_s: float = 1.0) -> GpuMonitor | None:
    """A started monitor when this job will run on a GPU (CuPy finds a CUDA device and NVML
    sees it), else None: what executables/record.py expects (``name``, ``samples``,
    ``stop()``)."""
    from htclean.imaging.gpu.device import probe

    if probe()[0] is None:
        return None
    monitor = GpuMonitor(interval_s).start()
    if monitor.reason is not None:
        return None
    return monitor


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__

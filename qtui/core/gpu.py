"""NVIDIA GPU readings through NVML, safe on machines without a GPU.

Modelled on nvitop's api: NVML is initialised on the first sample, not at import (initialising
wakes a sleeping GPU, so merely importing qtui must not), every query that a card does not
support becomes ``None`` (the UI shows "n/a"), and nothing here raises: a missing driver, a
driver/library mismatch or no GPU at all give a snapshot with ``available=False`` and a reason.

Notes a reader of the numbers needs:
- GPU indices are NVML's, which follow the PCI bus; CUDA numbers GPUs fastest-first unless the
  child runs with CUDA_DEVICE_ORDER=PCI_BUS_ID, so set that when pinning a job to a GPU.
- Per-process VRAM is matched by pid. Inside a container without the host's pid namespace NVML
  reports host pids, so the job's own VRAM is unknown (None) there; whole-card figures still work.
- Processes running on MIG instances are not listed on the parent device.
- nvmlDeviceGetPcieThroughput is deliberately never called: it blocks for ~250 ms.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

# NVML's "value not available" sentinels (c_uint(-1), c_ulonglong(-1)).
_NA_VALUES = {0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF}

UNAVAILABLE_PREFIX = "no NVIDIA GPU / NVML unavailable"


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    used_bytes: int | None


@dataclass(frozen=True)
class GpuSample:
    index: int
    name: str
    uuid: str | None
    mem_used: int | None
    mem_total: int | None
    util_gpu: int | None  # percent
    util_mem: int | None  # percent
    temperature_c: int | None
    power_w: float | None
    power_limit_w: float | None
    processes: tuple[GpuProcess, ...] = ()

    def process_memory(self, pids: Iterable[int]) -> int | None:
        """VRAM held on this GPU by the given pids; None when none of them is seen using it."""
        wanted = set(pids)
        known = [p.used_bytes for p in self.processes if p.pid in wanted and p.used_bytes is not None]
        return sum(known) if known else None

    @property
    def mem_fraction(self) -> float | None:
        if self.mem_used is None or not self.mem_total:
            return None
        return self.mem_used / self.mem_total


@dataclass(frozen=True)
class GpuSnapshot:
    available: bool
    reason: str | None
    driver: str | None
    gpus: tuple[GpuSample, ...]
    taken_at: float

    def process_memory(self, pids: Iterable[int]) -> int | None:
        """The job's VRAM summed over every GPU; None when no GPU shows any of the pids."""
        wanted = set(pids)
        per_gpu = [m for g in self.gpus if (m := g.process_memory(wanted)) is not None]
        return sum(per_gpu) if per_gpu else None


def _unavailable(cause: str, taken_at: float, driver: str | None = None) -> GpuSnapshot:
    return GpuSnapshot(False, f"{UNAVAILABLE_PREFIX}: {cause}", driver, (), taken_at)


# Errors that mean "this entry point does not exist here" (older driver or binding), so the
# next, older variant of the same query is worth trying.
_ABSENT = {"NVMLError_FunctionNotFound", "NVMLLibraryMismatchError", "AttributeError", "TypeError"}

_CAUSES = {
    "NVMLError_LibraryNotFound": "libnvidia-ml.so.1 not found (no NVIDIA driver installed)",
    "NVMLError_DriverNotLoaded": "the NVIDIA kernel driver is not loaded",
    "NVMLError_LibRmVersionMismatch": (
        "NVML library and kernel driver versions differ (reboot after a driver update)"
    ),
    "NVMLError_NoPermission": "no permission to query NVML",
    "NVMLError_FunctionNotFound": "the installed NVML library is too old for nvidia-ml-py",
    "NVMLLibraryMismatchError": "the installed NVML library is too old for nvidia-ml-py",
    "NVMLError_GpuIsLost": "the GPU has fallen off the bus",
}


def _cause(exc: BaseException) -> str:
    name = type(exc).__name__
    if name in _CAUSES:
        return _CAUSES[name]
    try:
        text = str(exc)  # NVMLError.__str__ itself calls into NVML for unknown codes
    except Exception:
        text = ""
    return f"{name}: {text}" if text else name


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):  # bindings before 11.x returned bytes
        return value.decode("utf-8", "replace")
    return str(value)


def _num(value: Any) -> int | None:
    if value is None:
        return None
    n = int(value)
    return None if n in _NA_VALUES else n


@dataclass
class _Device:
    index: int
    handle: Any
    name: str
    uuid: str | None


class Nvml:
    """One NVML session. ``sample()`` never raises; it is safe to call from any one thread at
    a time (a lock serialises callers)."""

    def __init__(
        self, nvml_module: ModuleType | Any | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._mod = nvml_module
        self._clock = clock
        self._lock = threading.Lock()
        self._initialised = False
        self._failure: str | None = None  # permanent: retrying a missing driver every second is waste
        self._driver: str | None = None
        self._devices: list[_Device] = []
        self._variant: dict[str, int] = {}  # which API generation answered last time, per query

    # -- lifecycle -----------------------------------------------------------------------
    def sample(self) -> GpuSnapshot:
        with self._lock:
            now = self._clock()
            try:
                if self._failure is None and not self._initialised:
                    self._init()
                if self._failure is not None:
                    return _unavailable(self._failure, now)
                gpus = tuple(self._sample_device(d) for d in self._devices)
                return GpuSnapshot(True, None, self._driver, gpus, now)
            except Exception as exc:  # last line of defence: a GPU panel must not kill the app
                log.debug("NVML sample failed", exc_info=True)
                return _unavailable(_cause(exc), now, self._driver)

    def shutdown(self) -> None:
        """Release NVML; a later sample() initialises it again."""
        with self._lock:
            self._shutdown_unlocked()

    @property
    def permanently_unavailable(self) -> bool:
        """True once initialisation failed: later samples will only repeat the reason."""
        return self._failure is not None

    def _init(self) -> None:
        if self._mod is None:
            try:
                import pynvml  # nvidia-ml-py
            except ImportError as exc:
                self._failure = f"nvidia-ml-py (pynvml) is not installed ({exc})"
                return
            self._mod = pynvml
        nv = self._mod
        try:
            nv.nvmlInit()
        except Exception as exc:
            self._failure = _cause(exc)
            return
        self._initialised = True
        self._driver = _text(self._query(nv.nvmlSystemGetDriverVersion))
        try:
            count = int(nv.nvmlDeviceGetCount())
        except Exception as exc:
            self._failure = _cause(exc)
            self._shutdown_unlocked()
            return
        if count == 0:
            self._failure = "no NVIDIA GPU found"
            self._shutdown_unlocked()
            return
        for i in range(count):
            try:
                handle = nv.nvmlDeviceGetHandleByIndex(i)
            except Exception as exc:
                # One GPU we may not touch (cgroups, lost) should not hide the others.
                self._devices.append(_Device(i, None, f"unavailable ({_cause(exc)})", None))
                continue
            name = _text(self._query(nv.nvmlDeviceGetName, handle)) or f"GPU {i}"
            uuid = _text(self._query(nv.nvmlDeviceGetUUID, handle))
            self._devices.append(_Device(i, handle, name, uuid))

    def _shutdown_unlocked(self) -> None:
        if self._initialised and self._mod is not None:
            try:
                self._mod.nvmlShutdown()
            except Exception:
                log.debug("nvmlShutdown failed", exc_info=True)
        self._initialised = False
        self._devices = []

    # -- queries -------------------------------------------------------------------------
    @staticmethod
    def _query(fn: Callable[..., Any], *args: Any) -> Any:
        """One field: whatever goes wrong (NotSupported under MIG, no fan on a datacenter card,
        a lost GPU) becomes None."""
        try:
            return fn(*args)
        except Exception as exc:
            log.debug("NVML %s: %s", getattr(fn, "__name__", fn), _cause(exc))
            return None

    def _first(self, key: str, attempts: list[Callable[[], Any]]) -> Any:
        """Newest API generation first, falling back when the driver lacks it; remembers
        which one answered so a steady state costs one call."""
        start = self._variant.get(key, 0)
        for i in range(start, len(attempts)):
            try:
                result = attempts[i]()
            except Exception as exc:
                if type(exc).__name__ in _ABSENT:
                    continue
                return None  # supported entry point, unsupported field: older ones won't know better
            self._variant[key] = i
            return result
        return None

    def _sample_device(self, dev: _Device) -> GpuSample:
        if dev.handle is None:
            return GpuSample(dev.index, dev.name, dev.uuid, None, None, None, None, None, None, None)
        nv, h = self._mod, dev.handle
        assert nv is not None
        mem = self._first(
            "memory",
            [
                # v2 separates driver-reserved memory, matching what nvidia-smi >= 535 shows.
                lambda: nv.nvmlDeviceGetMemoryInfo(h, version=nv.nvmlMemory_v2),
                lambda: nv.nvmlDeviceGetMemoryInfo(h),
            ],
        )
        util = self._query(nv.nvmlDeviceGetUtilizationRates, h)
        temp = self._query(nv.nvmlDeviceGetTemperature, h, getattr(nv, "NVML_TEMPERATURE_GPU", 0))
        power_mw = _num(self._query(nv.nvmlDeviceGetPowerUsage, h))
        limit_mw = self._first(
            "power_limit",
            [
                lambda: nv.nvmlDeviceGetEnforcedPowerLimit(h),
                lambda: nv.nvmlDeviceGetPowerManagementLimit(h),
            ],
        )
        limit_mw = _num(limit_mw)
        return GpuSample(
            index=dev.index,
            name=dev.name,
            uuid=dev.uuid,
            mem_used=_num(getattr(mem, "used", None)),
            mem_total=_num(getattr(mem, "total", None)),
            util_gpu=_num(getattr(util, "gpu", None)),
            util_mem=_num(getattr(util, "memory", None)),
            temperature_c=_num(temp),
            power_w=None if power_mw is None else power_mw / 1000.0,
            power_limit_w=None if limit_mw is None else limit_mw / 1000.0,
            processes=self._processes(h),
        )

    def _processes(self, h: Any) -> tuple[GpuProcess, ...]:
        nv = self._mod
        assert nv is not None
        found: dict[int, GpuProcess] = {}
        for kind in ("Compute", "Graphics"):
            base = f"nvmlDeviceGet{kind}RunningProcesses"

            def attempt(name: str) -> Callable[[], Any]:
                # looked up when called: an older nvidia-ml-py lacks the newer names (_ABSENT)
                return lambda: getattr(nv, name)(h)

            attempts = [attempt(name) for name in (f"{base}_v3", f"{base}_v2", base)]
            for obj in self._first(kind, attempts) or ():
                try:
                    pid = int(obj.pid)
                    used = _num(getattr(obj, "usedGpuMemory", None))
                except (TypeError, ValueError, AttributeError):
                    continue
                # A process with both a compute and a graphics context is listed twice.
                if pid not in found or found[pid].used_bytes is None:
                    found[pid] = GpuProcess(pid, used)
        return tuple(found.values())


class PeakTracker:
    """The running job's own VRAM, current and peak, per GPU and in total.

    Fed with snapshots and the job's pids (the llama-perplexity child, not our worker), it also
    keeps the peak of whole-card usage, the only figure left when NVML cannot see the pids.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.current: dict[int, int] = {}
        self.peak: dict[int, int] = {}
        self.current_total: int | None = None
        self.peak_total: int | None = None
        self.peak_card_used: dict[int, int] = {}
        self.owners: dict[int, frozenset[int]] = {}
        """the job pids last seen on each GPU"""

    def update(self, snapshot: GpuSnapshot, pids: Iterable[int]) -> None:
        wanted = set(pids)
        self.current = {}
        for g in snapshot.gpus:
            if g.mem_used is not None:
                self.peak_card_used[g.index] = max(self.peak_card_used.get(g.index, 0), g.mem_used)
            here = frozenset(p.pid for p in g.processes if p.pid in wanted)
            if here and not here & self.owners.get(g.index, frozenset()):
                # With one job per GPU (slots), another job took this card: its peak starts afresh.
                self.peak.pop(g.index, None)
            if here:
                self.owners[g.index] = here
            used = g.process_memory(wanted)
            if used is None:
                continue
            self.current[g.index] = used
            self.peak[g.index] = max(self.peak.get(g.index, 0), used)
        self.current_total = sum(self.current.values()) if self.current else None
        if self.current_total is not None:
            self.peak_total = max(self.peak_total or 0, self.current_total)


"""The NVML layer, driven by a fake pynvml module (no GPU on the test machine) plus one check
against the real binding installed here."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from qtui.core.gpu import (
    UNAVAILABLE_PREFIX,
    GpuProcess,
    GpuSample,
    GpuSnapshot,
    Nvml,
    PeakTracker,
)

GIB = 1 << 30


class NVMLError(Exception):
    pass


def _err(name: str) -> type[NVMLError]:
    return type(name, (NVMLError,), {})


NotSupported = _err("NVMLError_NotSupported")
LibraryNotFound = _err("NVMLError_LibraryNotFound")
DriverNotLoaded = _err("NVMLError_DriverNotLoaded")
LibRmVersionMismatch = _err("NVMLError_LibRmVersionMismatch")
FunctionNotFound = _err("NVMLError_FunctionNotFound")
GpuIsLost = _err("NVMLError_GpuIsLost")


def proc(pid: int, used: int | None) -> SimpleNamespace:
    return SimpleNamespace(pid=pid, usedGpuMemory=used)


def h100(**over: Any) -> dict[str, Any]:
    dev: dict[str, Any] = {
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": "GPU-aaaa",
        "mem_v1": SimpleNamespace(total=80 * GIB, used=10 * GIB, free=70 * GIB),
        "mem_v2": SimpleNamespace(total=80 * GIB, used=9 * GIB, free=70 * GIB, reserved=GIB),
        "util": SimpleNamespace(gpu=97, memory=41),
        "temp": 63,
        "power_mw": 512_345,
        "limit_mw": 700_000,
        "compute_v3": [proc(100, 6 * GIB)],
        "compute_v2": [proc(100, 6 * GIB)],
        "graphics_v3": [],
    }
    dev.update(over)
    return dev


class FakeNvml:
    """Just enough of pynvml's surface. A device field set to an exception class raises it;
    a field missing from the device dict behaves like an absent entry point."""

    NVML_TEMPERATURE_GPU = 0
    nvmlMemory_v2 = 0x02000028
    NVMLError = NVMLError

    def __init__(self, devices: list[dict[str, Any]], init_error: type[Exception] | None = None,
                 driver: Any = "550.54.15") -> None:
        self.devices = devices
        self.init_error = init_error
        self.driver = driver
        self.calls: dict[str, int] = {}
        self.handle_errors: dict[int, type[Exception]] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def _field(self, h: int, key: str) -> Any:
        dev = self.devices[h]
        if key not in dev:
            raise FunctionNotFound()
        value = dev[key]
        if isinstance(value, type) and issubclass(value, Exception):
            raise value()
        return value

    def nvmlInit(self) -> None:
        self._count("init")
        if self.init_error:
            raise self.init_error()

    def nvmlShutdown(self) -> None:
        self._count("shutdown")

    def nvmlSystemGetDriverVersion(self) -> Any:
        return self.driver

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        if i in self.handle_errors:
            raise self.handle_errors[i]()
        return i

    def nvmlDeviceGetName(self, h: int) -> Any:
        return self._field(h, "name")

    def nvmlDeviceGetUUID(self, h: int) -> Any:
        return self._field(h, "uuid")

    def nvmlDeviceGetMemoryInfo(self, h: int, version: int | None = None) -> Any:
        return self._field(h, "mem_v2" if version else "mem_v1")

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        return self._field(h, "util")

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> Any:
        assert sensor == 0
        return self._field(h, "temp")

    def nvmlDeviceGetPowerUsage(self, h: int) -> Any:
        return self._field(h, "power_mw")

    def nvmlDeviceGetEnforcedPowerLimit(self, h: int) -> Any:
        return self._field(h, "limit_mw")

    def nvmlDeviceGetPowerManagementLimit(self, h: int) -> Any:
        return self._field(h, "mgmt_limit_mw")

    def nvmlDeviceGetPcieThroughput(self, h: int, counter: int) -> Any:
        raise AssertionError("PCIe throughput blocks ~250 ms and must never be sampled")

    def _procs(self, h: int, key: str) -> Any:
        self._count(key)
        return self._field(h, key)

    def nvmlDeviceGetComputeRunningProcesses_v3(self, h: int) -> Any:
        return self._procs(h, "compute_v3")

    def nvmlDeviceGetComputeRunningProcesses_v2(self, h: int) -> Any:
        return self._procs(h, "compute_v2")

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> Any:
        return self._procs(h, "compute_v1")

    def nvmlDeviceGetGraphicsRunningProcesses_v3(self, h: int) -> Any:
        return self._procs(h, "graphics_v3")

    def nvmlDeviceGetGraphicsRunningProcesses_v2(self, h: int) -> Any:
        return self._procs(h, "graphics_v2")

    def nvmlDeviceGetGraphicsRunningProcesses(self, h: int) -> Any:
        return self._procs(h, "graphics_v1")


def test_init_is_lazy_and_happens_once() -> None:
    fake = FakeNvml([h100()])
    nvml = Nvml(nvml_module=fake)
    assert fake.calls.get("init", 0) == 0
    nvml.sample()
    nvml.sample()
    assert fake.calls["init"] == 1


def test_importing_gpu_module_does_not_import_pynvml() -> None:
    code = "import sys, qtui.core.gpu; print('pynvml' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_full_sample_of_a_supported_card() -> None:
    snap = Nvml(nvml_module=FakeNvml([h100()]), clock=lambda: 123.0).sample()
    assert snap.available and snap.reason is None
    assert snap.driver == "550.54.15" and snap.taken_at == 123.0
    (g,) = snap.gpus
    assert (g.index, g.name, g.uuid) == (0, "NVIDIA H100 80GB HBM3", "GPU-aaaa")
    assert g.mem_used == 9 * GIB  # the v2 figure, which leaves out driver-reserved memory
    assert g.mem_total == 80 * GIB
    assert (g.util_gpu, g.util_mem, g.temperature_c) == (97, 41, 63)
    assert g.power_w == pytest.approx(512.345)
    assert g.power_limit_w == pytest.approx(700.0)
    assert g.processes == (GpuProcess(100, 6 * GIB),)
    assert g.mem_fraction == pytest.approx(9 / 80)


def test_unsupported_fields_become_none_mig_like() -> None:
    dev = h100(util=NotSupported, power_mw=NotSupported, temp=NotSupported,
               limit_mw=NotSupported, mgmt_limit_mw=NotSupported)
    (g,) = Nvml(nvml_module=FakeNvml([dev])).sample().gpus
    assert g.util_gpu is None and g.util_mem is None
    assert g.power_w is None and g.power_limit_w is None and g.temperature_c is None
    assert g.mem_used == 9 * GIB  # what is supported still comes through


def test_older_driver_falls_back_and_remembers_the_variant() -> None:
    dev = h100(compute_v3=FunctionNotFound, graphics_v3=FunctionNotFound, graphics_v2=[],
               limit_mw=FunctionNotFound, mgmt_limit_mw=250_000)
    del dev["mem_v2"]  # no nvmlDeviceGetMemoryInfo_v2 in this driver
    fake = FakeNvml([dev])
    nvml = Nvml(nvml_module=fake)
    for _ in range(3):
        (g,) = nvml.sample().gpus
    assert g.mem_used == 10 * GIB
    assert g.power_limit_w == pytest.approx(250.0)
    assert g.processes == (GpuProcess(100, 6 * GIB),)
    assert fake.calls["compute_v3"] == 1  # tried once, then the v2 call answers directly
    assert fake.calls["compute_v2"] == 3


def test_processes_merge_compute_and_graphics_and_match_by_pid() -> None:
    dev0 = h100(compute_v3=[proc(100, 6 * GIB), proc(200, None), proc(300, 0xFFFFFFFFFFFFFFFF)],
                graphics_v3=[proc(100, 6 * GIB), proc(400, GIB)])
    dev1 = h100(uuid="GPU-bbbb", compute_v3=[proc(100, 2 * GIB)], graphics_v3=NotSupported)
    snap = Nvml(nvml_module=FakeNvml([dev0, dev1])).sample()
    g0, g1 = snap.gpus
    assert sorted(p.pid for p in g0.processes) == [100, 200, 300, 400]
    assert dict((p.pid, p.used_bytes) for p in g0.processes)[300] is None  # NVML's N/A sentinel
    assert g0.process_memory([100, 400]) == 7 * GIB
    assert g0.process_memory([200]) is None  # seen, but usage unknown (e.g. WDDM)
    assert g0.process_memory([999]) is None
    assert g1.process_memory([100]) == 2 * GIB
    assert snap.process_memory({100}) == 8 * GIB
    assert snap.process_memory({999}) is None


def test_several_gpus_one_inaccessible() -> None:
    fake = FakeNvml([h100(), h100(uuid="GPU-bbbb"), h100(uuid="GPU-cccc")])
    fake.handle_errors[1] = GpuIsLost
    snap = Nvml(nvml_module=fake).sample()
    assert snap.available and [g.index for g in snap.gpus] == [0, 1, 2]
    assert "fallen off the bus" in snap.gpus[1].name and snap.gpus[1].mem_used is None
    assert snap.gpus[2].uuid == "GPU-cccc" and snap.gpus[2].mem_total == 80 * GIB


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (LibraryNotFound, "libnvidia-ml.so.1 not found"),
        (DriverNotLoaded, "driver is not loaded"),
        (LibRmVersionMismatch, "versions differ"),
        (_err("NVMLError_Unknown"), "NVMLError_Unknown"),
    ],
)
def test_init_failures_give_a_reason_and_are_not_retried(error: type[Exception], words: str) -> None:
    fake = FakeNvml([h100()], init_error=error)
    nvml = Nvml(nvml_module=fake)
    for _ in range(3):
        snap = nvml.sample()
    assert not snap.available and snap.gpus == ()
    assert snap.reason is not None and snap.reason.startswith(UNAVAILABLE_PREFIX) and words in snap.reason
    assert fake.calls["init"] == 1
    assert nvml.permanently_unavailable


def test_no_devices() -> None:
    fake = FakeNvml([])
    snap = Nvml(nvml_module=fake).sample()
    assert not snap.available and snap.reason == f"{UNAVAILABLE_PREFIX}: no NVIDIA GPU found"
    assert fake.calls["shutdown"] == 1  # released again, nothing to watch


def test_pynvml_not_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    snap = Nvml().sample()
    assert not snap.available and "nvidia-ml-py (pynvml) is not installed" in (snap.reason or "")


def test_unexpected_exception_never_escapes() -> None:
    class Broken(FakeNvml):
        def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
            return i

        def _field(self, h: int, key: str) -> Any:
            raise RuntimeError("binding bug")

    snap = Nvml(nvml_module=Broken([h100()])).sample()
    assert snap.available  # each field fails alone
    g = snap.gpus[0]
    assert g.name == "GPU 0" and g.mem_used is None and g.processes == ()

    class CountBroken(FakeNvml):
        def nvmlDeviceGetCount(self) -> int:
            raise RuntimeError("boom")

    snap = Nvml(nvml_module=CountBroken([h100()])).sample()
    assert not snap.available and "boom" in (snap.reason or "")


def test_bytes_from_old_bindings_and_na_sentinels() -> None:
    dev = h100(name=b"Tesla V100", uuid=b"GPU-old", temp=0xFFFFFFFF)
    fake = FakeNvml([dev], driver=b"470.1")
    snap = Nvml(nvml_module=fake).sample()
    assert snap.driver == "470.1"
    assert snap.gpus[0].name == "Tesla V100" and snap.gpus[0].uuid == "GPU-old"
    assert snap.gpus[0].temperature_c is None


def test_shutdown_then_sample_initialises_again() -> None:
    fake = FakeNvml([h100()])
    nvml = Nvml(nvml_module=fake)
    nvml.sample()
    nvml.shutdown()
    nvml.shutdown()  # twice is harmless
    assert fake.calls["shutdown"] == 1
    assert nvml.sample().available and fake.calls["init"] == 2


def test_real_pynvml_on_this_machine_never_raises() -> None:
    nvml = Nvml()
    try:
        snap = nvml.sample()
    finally:
        nvml.shutdown()
    if snap.available:  # a machine with a GPU
        assert snap.gpus and snap.reason is None and snap.gpus[0].mem_total
    else:  # the usual dev/CI box
        assert snap.gpus == () and snap.reason and snap.reason.startswith(UNAVAILABLE_PREFIX)


def _snap(*gpus: GpuSample) -> GpuSnapshot:
    return GpuSnapshot(True, None, "x", gpus, 0.0)


def _gpu(index: int, card: int | None, *procs: GpuProcess) -> GpuSample:
    return GpuSample(index, "g", None, card, 80 * GIB, None, None, None, None, None, procs)


def test_peak_tracker_per_gpu_and_total() -> None:
    t = PeakTracker()
    job = {7, 8}
    t.update(_snap(_gpu(0, 5 * GIB, GpuProcess(7, 3 * GIB)), _gpu(1, GIB)), job)
    assert t.current == {0: 3 * GIB} and t.current_total == 3 * GIB
    t.update(_snap(_gpu(0, 9 * GIB, GpuProcess(7, 4 * GIB), GpuProcess(9, GIB)),
                   _gpu(1, 4 * GIB, GpuProcess(8, 3 * GIB))), job)
    assert t.current == {0: 4 * GIB, 1: 3 * GIB} and t.current_total == 7 * GIB
    t.update(_snap(_gpu(0, 2 * GIB, GpuProcess(7, GIB)), _gpu(1, None)), job)
    assert t.current_total == GIB
    assert t.peak == {0: 4 * GIB, 1: 3 * GIB} and t.peak_total == 7 * GIB
    assert t.peak_card_used == {0: 9 * GIB, 1: 4 * GIB}
    t.update(GpuSnapshot(False, "gone", None, (), 1.0), job)
    assert t.current == {} and t.current_total is None and t.peak_total == 7 * GIB
    t.reset()
    assert t.peak == {} and t.peak_total is None


def test_peak_starts_afresh_when_another_job_takes_a_gpu() -> None:
    """Two slots: jobs 7 (GPU 0) and 8 (GPU 1) run; 7 ends and 9 takes GPU 0 while 8 goes on."""
    t = PeakTracker()
    t.update(_snap(_gpu(0, 9 * GIB, GpuProcess(7, 8 * GIB)), _gpu(1, 5 * GIB, GpuProcess(8, 4 * GIB))), {7, 8})
    t.update(_snap(_gpu(0, 3 * GIB, GpuProcess(9, 2 * GIB)), _gpu(1, 6 * GIB, GpuProcess(8, 5 * GIB))), {8, 9})
    assert t.peak == {0: 2 * GIB, 1: 5 * GIB}  # job 9's own peak, not job 7's; job 8's kept
    t.update(_snap(_gpu(0, 2 * GIB, GpuProcess(9, GIB)), _gpu(1, 6 * GIB, GpuProcess(8, 3 * GIB))), {8, 9})
    assert t.peak == {0: 2 * GIB, 1: 5 * GIB} and t.current == {0: GIB, 1: 3 * GIB}


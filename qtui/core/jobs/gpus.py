"""Which GPUs the scheduler may use, how many a job wants, and which group each job gets.

Pure decisions over plain values (the GPU list, what is busy, what each job wants), so the
packing can be tested without a GPU and without threads; the scheduler feeds them.

- The GPUs: those qtui was given in CUDA_VISIBLE_DEVICES, else every GPU NVML sees (in PCI bus
  order), else, with no GPU at all, `slots` places for CPU jobs (the config's count), so a
  CPU box runs `slots` jobs at once as before.
- A job wants k GPUs (gpus_per_run), or "auto": the fewest GPUs whose free memory (NVML)
  holds the run's estimate (llama/memory.py). A job whose own arguments choose its devices
  (CUDA_VISIBLE_DEVICES in its env, -dev/--device, -ts/--tensor-split, -mg/--main-gpu, or
  -ot/--override-tensor to a named GPU such as CUDA1) keeps them: qtui leaves its device
  settings alone and runs it alone, holding every GPU, since it cannot know which of them the
  job will touch.
- Packing, in queue order: a job that does not fit the free GPUs waits, and a later job that
  fits them starts (backfill), so no GPU sits idle while a job that fits it waits. A job passed
  over that way MAX_PASSES times is then reserved for: nothing behind it starts until it has
  its GPUs, so a 2-GPU job is not starved by a stream of 1-GPU jobs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from qtui.core.fsutil import human_bytes
from qtui.core.gpu import GpuSnapshot
from qtui.core.llama.memory import RunMemory

MAX_PASSES = 2
"""how many times later jobs may start ahead of a waiting one before it is reserved for"""

AUTO = "auto"

_DEVICE_FLAGS = ("-dev", "--device", "-ts", "--tensor-split", "-mg", "--main-gpu")
_OVERRIDE_FLAGS = ("-ot", "--override-tensor")


@dataclass(frozen=True)
class Device:
    key: int
    """what a job's state records (JobState.gpus): the NVML index where known (what nvidia-smi
    and the GPU panel call the card), else the position in the list qtui was given"""
    visible: str
    """the CUDA_VISIBLE_DEVICES entry that names this GPU to a child"""
    total: int | None = None
    free: int | None = None
    """bytes free at the last look (NVML); None when unknown"""


@dataclass(frozen=True)
class Inventory:
    devices: tuple[Device, ...]
    real: bool
    """GPUs, not places for CPU jobs"""
    given: bool
    """from the CUDA_VISIBLE_DEVICES qtui was given (an empty one: no GPU for anyone)"""

    @property
    def keys(self) -> list[int]:
        return [d.key for d in self.devices]

    def describe(self) -> str:
        if not self.real:
            return f"no GPU; {len(self.devices)} CPU job(s) at once"
        return ", ".join(f"GPU {d.key}" for d in self.devices)


def inventory(parent: Mapping[str, str], snapshot: GpuSnapshot | None, slots: int) -> Inventory:
    """The GPUs jobs may use (see the module's notes)."""
    seen = snapshot.gpus if snapshot is not None and snapshot.available else ()

    def sized(key: int, visible: str, sample_index: int | None) -> Device:
        s = next((g for g in seen if g.index == sample_index), None) if sample_index is not None else None
        total = s.mem_total if s else None
        free = total - s.mem_used if s and total is not None and s.mem_used is not None else None
        return Device(key, visible, total, free)

    if "CUDA_VISIBLE_DEVICES" in parent:
        entries = [e.strip() for e in parent["CUDA_VISIBLE_DEVICES"].split(",") if e.strip()]
        if not entries:  # hidden on purpose: CPU jobs, `slots` at once, the variable left as given
            return Inventory(tuple(Device(i, "") for i in range(max(1, slots))), real=False, given=True)
        index: list[int | None] = []
        for e in entries:
            if e.isdigit():  # read in PCI bus order, the order qtui itself asks for
                index.append(int(e) if not seen or any(g.index == int(e) for g in seen) else None)
            else:  # GPU-<uuid>, or a prefix of one, as CUDA accepts
                index.append(next((g.index for g in seen if g.uuid and g.uuid.startswith(e)), None))
        known = [i for i in index if i is not None]
        if len(known) == len(entries) and len(set(known)) == len(known):
            return Inventory(tuple(sized(i, e, i) for i, e in zip(known, entries)), real=True, given=True)
        # Some entry NVML cannot place (a MIG instance, an unknown uuid): number them by position.
        return Inventory(tuple(sized(p, e, i) for p, (i, e) in enumerate(zip(index, entries))), real=True, given=True)
    if seen:
        return Inventory(tuple(sized(g.index, str(g.index), g.index) for g in seen), real=True, given=False)
    return Inventory(tuple(Device(i, str(i)) for i in range(max(1, slots))), real=False, given=False)


def group_env(inv: Inventory, group: Sequence[Device]) -> dict[str, str]:
    """What a child holding `group` gets on top of qtui's environment."""
    ids = ",".join(d.visible for d in group)
    if not inv.real:
        # a CPU box: one place only means nothing to restrict (as before groups existed)
        return {} if inv.given or len(inv.devices) == 1 else {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": ids}
    if inv.given:
        # a subset of what qtui was given, in the device order qtui was given it
        return {"CUDA_VISIBLE_DEVICES": ids}
    return {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": ids}


def names_own_devices(argv: Sequence[str], env: Mapping[str, str]) -> bool:
    """The job's own arguments choose its GPUs: qtui must not narrow what it sees. Tensor
    overrides count when they send tensors to a device by name (`-ot exps=CUDA1`); sending
    them to the CPU (`-ot exps=CPU`, the usual MoE offload) does not."""
    if "CUDA_VISIBLE_DEVICES" in env:
        return True
    for i, a in enumerate(argv):
        name, eq, inline = a.partition("=")
        if a in _DEVICE_FLAGS or (eq and name in _DEVICE_FLAGS):
            return True
        if a in _OVERRIDE_FLAGS or (eq and name in _OVERRIDE_FLAGS):
            value = inline if eq and name in _OVERRIDE_FLAGS else (argv[i + 1] if i + 1 < len(argv) else "")
            # pattern=DEVICE pairs, comma-separated
            if any(p.rpartition("=")[2].strip().upper() not in ("", "CPU") for p in value.split(",")):
                return True
    return False


def parse_gpus_per_run(value: object) -> int | str:
    """1, 2, ... or "auto"; raises ValueError with the words to show."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 64:
        return value
    raise ValueError(f"gpus per run must be a number of GPUs from 1 to 64 or \"auto\" (got {value!r})")


@dataclass(frozen=True)
class Want:
    """What one job asks for."""

    count: int = 1
    """GPUs asked for; ignored with memory (auto) or exclusive"""
    memory: RunMemory | None = None
    """auto: the run's estimate; the fewest GPUs whose free memory holds it"""
    exclusive: bool = False
    """its arguments name its devices: it runs alone, holding every GPU"""
    solo: bool = False
    """a timed run (llama-bench): its own group as usual, but nothing else runs beside it,
    so that no other job's threads or memory traffic slow what it measures"""
    label: str = ""


@dataclass(frozen=True)
class Refused:
    """A job no group of these GPUs can ever run; `reason` is one sentence."""

    reason: str


def choose(want: Want, inv: Inventory, free: Iterable[int], all_idle: bool) -> list[Device] | Refused | None:
    """The group for a job now, None to wait, or Refused. `free`: keys no job holds;
    `all_idle`: no job holds any GPU (what is free now is the most there will ever be)."""
    free_set = set(free)
    idle = [d for d in inv.devices if d.key in free_set]
    n = len(inv.devices)
    if want.exclusive:
        return list(inv.devices) if len(idle) == n else None
    if not inv.real:  # CPU places: a group size means nothing without a GPU
        k = 1 if want.memory is not None else min(want.count, n)
        return idle[:k] if len(idle) >= k else None
    if want.memory is None:
        if want.count > n:
            return Refused(f"{want.label or 'the job'} asks for {want.count} GPUs per run but qtui may use "
                           f"only {n} here ({inv.describe()}); lower gpus_per_run or use \"auto\".")
        return idle[:want.count] if len(idle) >= want.count else None
    return _by_memory(want, want.memory, inv, idle, all_idle)


def _by_memory(want: Want, mem: RunMemory, inv: Inventory, idle: list[Device], all_idle: bool) -> list[Device] | Refused | None:
    n = len(inv.devices)
    if any(d.free is None for d in inv.devices):
        # No memory figures (a GPU NVML cannot place): one GPU, as without "auto".
        return idle[:1] if idle else None
    roomiest = sorted(idle, key=lambda d: (-(d.free or 0), d.key))
    for k in range(1, len(roomiest) + 1):
        group = roomiest[:k]
        if sum(d.free or 0 for d in group) >= mem.total(k):
            return sorted(group, key=lambda d: d.key)
    totals = sum(d.total or 0 for d in inv.devices)
    if all_idle or mem.total(n) > totals:
        have = sum(d.free or 0 for d in inv.devices) if all_idle else totals
        what = "free" if all_idle else "in all"
        return Refused(
            f"{want.label or 'the run'} needs about {human_bytes(mem.total(n))} of GPU memory on {n} GPU(s) "
            f"(weights {human_bytes(mem.weights)}, KV cache {human_bytes(mem.kv_cache)}, buffers "
            f"{human_bytes(mem.total(n) - mem.weights - mem.kv_cache)}) but the GPUs qtui may use "
            f"({inv.describe()}) have {human_bytes(have)} {what}; use fewer -ngl layers or a smaller -c or -b.")
    return None  # another job holds what it needs: wait for it


@dataclass
class Packing:
    starts: list[tuple[str, list[Device]]]
    refused: list[tuple[str, str]]


def pack(waiting: Sequence[tuple[str, Want]], inv: Inventory, busy: Iterable[int],
         passed: dict[str, int], settled: bool = True, solo_running: bool = False) -> Packing:
    """Which waiting jobs (in queue order) start now and on which GPUs, and which can never
    run. `passed` counts, per job, how often a later job started ahead of it; it is updated
    here and kept by the caller between calls. `settled`: False while the memory of a job that
    just ended may still show as used, so that no run is refused on a stale reading.
    `solo_running`: a solo job (Want.solo) runs: nothing starts beside it."""
    held = set(busy)
    out = Packing([], [])
    if solo_running:
        return out
    behind: list[str] = []  # jobs that wait while later ones may start
    for job_id, want in waiting:
        free = [k for k in inv.keys if k not in held]
        got = choose(want, inv, free, all_idle=settled and not held)
        if isinstance(got, Refused):
            out.refused.append((job_id, got.reason))
            continue
        if got is not None and want.solo and held:
            got = None  # a timed run starts only once nothing else runs
        if got is None:
            if passed.get(job_id, 0) >= MAX_PASSES:
                break  # reserved for: nothing behind it starts until it does
            behind.append(job_id)
            continue
        out.starts.append((job_id, got))
        held.update(d.key for d in got)
        for w in behind:
            passed[w] = passed.get(w, 0) + 1
        if want.solo:
            break  # and nothing starts beside it
    for job_id, _ in out.starts:
        passed.pop(job_id, None)
    return out


__all__ = ["AUTO", "MAX_PASSES", "Device", "Inventory", "Packing", "Refused", "Want", "choose", "group_env",
           "inventory", "names_own_devices", "pack", "parse_gpus_per_run"]

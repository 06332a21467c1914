"""Show what the GPU panel would show, and time Nvml.sample().

    .venv/bin/python bench/gpu_probe.py [-n 50] [--pid PID ...]

The first sample includes nvmlInit (and wakes a sleeping GPU); later ones are the steady cost
the 1 s UI loop pays. The target is a sample well under 1 % of the interval (< 10 ms).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qtui.core.gpu import GpuSample, GpuSnapshot, Nvml  # noqa: E402

GIB = 1 << 30


def _na(value: object, fmt: str = "{}") -> str:
    return "n/a" if value is None else fmt.format(value)


def describe_gpu(g: GpuSample, pids: set[int]) -> str:
    mem = "n/a"
    if g.mem_used is not None and g.mem_total:
        mem = f"{g.mem_used / GIB:.1f}/{g.mem_total / GIB:.1f} GiB ({100 * g.mem_used / g.mem_total:.0f}%)"
    power = f"{_na(g.power_w, '{:.0f}')}/{_na(g.power_limit_w, '{:.0f}')} W"
    line = (
        f"GPU {g.index}  {g.name}  mem {mem}  util {_na(g.util_gpu, '{}%')}  "
        f"mem-util {_na(g.util_mem, '{}%')}  {_na(g.temperature_c, '{}°C')}  {power}"
    )
    procs = ", ".join(
        f"{p.pid} ({_na(None if p.used_bytes is None else p.used_bytes / GIB, '{:.2f} GiB')})"
        for p in g.processes
    )
    line += f"\n       uuid {_na(g.uuid)}  processes: {procs or 'none'}"
    if pids:
        line += f"\n       job pids {sorted(pids)}: {_na(g.process_memory(pids), '{} bytes')}"
    return line


def describe(snap: GpuSnapshot, pids: set[int]) -> str:
    if not snap.available:
        return f"GPU: {snap.reason}"
    head = f"driver {_na(snap.driver)}, {len(snap.gpus)} GPU(s)"
    return "\n".join([head, *(describe_gpu(g, pids) for g in snap.gpus)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=50, help="samples to time after the first (default 50)")
    ap.add_argument("--pid", type=int, action="append", default=[], help="job pid to match (repeatable)")
    args = ap.parse_args()

    nvml = Nvml()
    t0 = time.perf_counter()
    first = nvml.sample()
    first_ms = (time.perf_counter() - t0) * 1000
    print(describe(first, set(args.pid)))
    print()

    times = []
    for _ in range(max(1, args.n)):
        t = time.perf_counter()
        nvml.sample()
        times.append((time.perf_counter() - t) * 1000)
    nvml.shutdown()

    mean = statistics.fmean(times)
    print(f"first sample (includes nvmlInit): {first_ms:.2f} ms")
    print(f"steady sample over {len(times)}: mean {mean:.3f} ms, max {max(times):.3f} ms, "
          f"median {statistics.median(times):.3f} ms")
    print(f"share of a 1 s interval: {mean / 10:.3f} %  (target < 1 %)")
    if first.available:
        print(f"per GPU: {mean / max(1, len(first.gpus)):.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

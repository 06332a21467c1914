"""Which GPUs each job really ran on, and when: proof that the scheduler's GPU groups hold.

Joins the queue's job states (the GPUs each job held, pid, start, end) with what nvidia-smi saw
while they ran (`nvidia-smi --query-compute-apps=pid,gpu_bus_id,used_memory` sampled in a loop,
each sample after a line holding the time) and the bus id to index map from
`--query-gpu=index,pci.bus_id`.

    python bench/gpu_timeline.py DATA_DIR SMI_APPS.txt SMI_GPUS.txt

Prints one line per job and exits 1 unless every job ran on exactly the GPUs of its group (a
job split over 2 GPUs shows its pid on both, and on no other) and at least two jobs ran at the
same time on disjoint groups (with gpus_per_run = 2 on 4 GPUs: two jobs at once, each on its
own pair), where the box has GPUs enough for two groups.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from qtui.core.jobs.queue import Job, JobQueue


def bus_to_index(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and parts[0].isdigit():
            out[parts[1].lower()] = int(parts[0])
    return out


def seen_on(text: str, buses: dict[str, int]) -> dict[int, dict[int, int]]:
    """pid -> {gpu index: peak MiB} from the sampled compute-apps lines."""
    seen: dict[int, dict[int, int]] = defaultdict(dict)
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        gpu = buses.get(parts[1].lower())
        mib = int(parts[2].split()[0]) if parts[2].split()[0].isdigit() else 0
        if gpu is not None:
            seen[int(parts[0])][gpu] = max(seen[int(parts[0])].get(gpu, 0), mib)
    return seen


def group(job: Job) -> set[int]:
    """The GPUs the scheduler gave the job (a job of an older qtui: its slot's GPU)."""
    if job.state.gpus is not None:
        return set(job.state.gpus)
    return {job.state.slot} if job.state.slot is not None else set()


def main(data: Path, apps: Path, gpus: Path) -> int:
    buses = bus_to_index(gpus.read_text())
    seen = seen_on(apps.read_text(), buses)
    jobs = sorted(JobQueue(data).jobs(), key=lambda j: j.state.started_at or 0)
    t0 = min((j.state.started_at for j in jobs if j.state.started_at), default=0.0)
    ok = True
    print(f"{'job':28} {'kind':4} {'status':7} {'GPUs':>7}  start    end   nvidia-smi saw")
    for j in jobs:
        s = j.state
        where = seen.get(s.pid or -1, {})
        saw = ", ".join(f"GPU {g} {mib} MiB" for g, mib in sorted(where.items())) or "nothing"
        held = ",".join(str(g) for g in sorted(group(j))) or "-"
        print(f"{j.spec.label[:28]:28} {j.spec.kind:4} {s.status:7} {held:>7} "
              f"{(s.started_at or t0) - t0:6.1f} {(s.ended_at or t0) - t0:6.1f}   {saw}")
        ok &= s.status == "done" and bool(group(j)) and set(where) == group(j)
    overlaps = [
        (a.spec.label, b.spec.label)
        for i, a in enumerate(jobs) for b in jobs[i + 1:]
        if not group(a) & group(b) and a.state.started_at and b.state.started_at
        and a.state.ended_at and b.state.ended_at
        and a.state.started_at < b.state.ended_at and b.state.started_at < a.state.ended_at
    ]
    sizes = sorted({len(group(j)) for j in jobs})
    # two disjoint groups fit only where the box has GPUs for both (2 GPUs, 2 per job: one at a time)
    room = len(buses) >= 2 * (sizes[0] if sizes else 1)
    print(f"GPUs per job: {', '.join(map(str, sizes))}; pairs that ran at the same time on disjoint GPU groups: "
          f"{len(overlaps)}{'' if room else f' (none expected: {len(buses)} GPU(s))'}")
    ok &= bool(overlaps) or not room
    verdict = "jobs in parallel" if room else "one group at a time, as the box allows"
    print(f"OK: every job on exactly its group's GPUs, {verdict}" if ok else "NOT OK")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    raise SystemExit(main(*map(Path, sys.argv[1:4])))

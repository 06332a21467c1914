"""bench/gpu_timeline.py: the check the lead runs on a GPU box, on nvidia-smi text it would
write there (one pid per GPU line; a job split over two GPUs shows its pid on both)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from qtui.core.jobs.queue import JobQueue, JobSpec

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu_timeline.py"
BUSES = "".join(f"{i}, 00000000:{0x18 + i:02X}:00.0, NVIDIA H200\n" for i in range(4))


def timeline() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_timeline", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bus(i: int) -> str:
    return f"00000000:{0x18 + i:02X}:00.0"


def run(tmp_path: Path, seen: dict[int, list[int]], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Two 2-GPU jobs at once on pairs (0,1) and (2,3), then one on (0,1) again."""
    q = JobQueue(tmp_path / "d")
    for pid, gpus, t in ((100, [0, 1], (0.0, 10.0)), (200, [2, 3], (1.0, 9.0)), (300, [0, 1], (11.0, 20.0))):
        j = q.add(JobSpec(kind="kld", argv=["x"], label=f"job{pid}", gpus_per_run=2))
        q.update(j.id, status="done", pid=pid, gpus=gpus, slot=gpus[0], started_at=1000 + t[0], ended_at=1000 + t[1])
    apps = "".join(f"1000.5\n{pid}, {bus(g)}, 2048 MiB\n" for pid, gs in seen.items() for g in gs)
    (tmp_path / "apps.txt").write_text(apps)
    (tmp_path / "gpus.txt").write_text(BUSES)
    code = timeline().main(tmp_path / "d", tmp_path / "apps.txt", tmp_path / "gpus.txt")
    return code, capsys.readouterr().out


def test_each_job_on_exactly_its_pair_and_two_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(tmp_path, {100: [0, 1], 200: [2, 3], 300: [0, 1]}, capsys)
    assert code == 0, out
    assert "pairs that ran at the same time on disjoint GPU groups: 1" in out and "GPUs per job: 2" in out


def test_a_job_seen_off_its_group_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(tmp_path, {100: [0, 1], 200: [2, 3], 300: [0, 1, 2]}, capsys)
    assert code == 1 and out.rstrip().endswith("NOT OK")
    code, out = run(tmp_path / "b", {100: [0], 200: [2, 3], 300: [0, 1]}, capsys)  # ran on half its pair
    assert code == 1


def test_one_group_at_a_time_where_two_do_not_fit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """2 GPUs, 2 per job: no overlap is expected, each job on both GPUs is what counts."""
    q = JobQueue(tmp_path / "d")
    for pid, t in ((100, 0.0), (200, 10.0)):
        j = q.add(JobSpec(kind="kld", argv=["x"], label=f"job{pid}", gpus_per_run=2))
        q.update(j.id, status="done", pid=pid, gpus=[0, 1], slot=0, started_at=1000 + t, ended_at=1009 + t)
    (tmp_path / "gpus.txt").write_text("".join(BUSES.splitlines(keepends=True)[:2]))
    for seen, want in (({100: [0, 1], 200: [0, 1]}, 0), ({100: [0, 1], 200: [1]}, 1)):
        (tmp_path / "apps.txt").write_text("".join(f"{pid}, {bus(g)}, 9 MiB\n" for pid, gs in seen.items() for g in gs))
        assert timeline().main(tmp_path / "d", tmp_path / "apps.txt", tmp_path / "gpus.txt") == want
        assert "(none expected: 2 GPU(s))" in capsys.readouterr().out

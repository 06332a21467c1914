"""The queue and the scheduler, driven by the fake llama-perplexity replaying REAL ik_llama.cpp
transcripts (tests/fixtures/ik): ordering, dependencies, persistence, cancel, adoption."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qtui.core.jobs.finalize import finalize_job
from qtui.core.jobs.queue import JobQueue, JobSpec
from qtui.core.jobs.scheduler import Scheduler, ensure_scheduler, scheduler_running, slot_gpu_env
from qtui.core.results.store import ResultStore

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "ik"
FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_llama_perplexity.py"


def spec(kind: str, case: str, tmp: Path, delay: float = 0.0, exit_code: int | None = None, **kw: object) -> JobSpec:
    env = {"FAKE_LLAMA_CASE": str(FIX / case), "FAKE_LLAMA_DELAY": str(delay)}
    if exit_code is not None:
        env["FAKE_LLAMA_EXIT"] = str(exit_code)
    out = str(tmp / "base.kld")
    argv = [sys.executable, str(FAKE), "-m", "x.gguf", "--kl-divergence-base", out + ".partial" if kind == "base" else out]
    if kind == "kld":
        argv.append("--kl-divergence")
    return JobSpec(kind=kind, argv=argv, env=env, model={"label": case, "size_bytes": 1000}, label=case,  # type: ignore[arg-type]
                   output=out if kind == "base" else None, **kw)  # type: ignore[arg-type]


def test_base_then_variants_in_order(tmp_path: Path) -> None:
    q = JobQueue(tmp_path)
    base = q.add(spec("base", "ik-tiny-base", tmp_path))
    k1 = q.add(spec("kld", "ik-tiny-kld-q4_0", tmp_path, depends_on=base.id))
    k2 = q.add(spec("kld", "ik-tiny-kld-q8_0", tmp_path, depends_on=base.id))
    Scheduler(tmp_path).run()
    states = {j.id: j.state for j in q.jobs()}
    assert [states[i].status for i in (base.id, k1.id, k2.id)] == ["done", "done", "done"]
    assert states[base.id].ended_at <= states[k1.id].started_at  # type: ignore[operator]
    assert (tmp_path / "base.kld").exists() and not (tmp_path / "base.kld.partial").exists()
    recs = {r.job_id: r for r in ResultStore(tmp_path).load().records}
    assert recs[k1.id].stats["kld_mean"] > recs[k2.id].stats["kld_mean"] > 0  # Q4_0 further from base than Q8_0
    assert recs[k1.id].duration_s is not None


def test_failed_base_fails_dependents_with_reason(tmp_path: Path) -> None:
    q = JobQueue(tmp_path)
    # the KLD transcript has no "Final estimate" line: judged a failed base generation by content
    base = q.add(spec("base", "ik-tiny-kld-q4_0", tmp_path))
    k1 = q.add(spec("kld", "ik-tiny-kld-q4_0", tmp_path, depends_on=base.id))
    Scheduler(tmp_path).run()
    b, k = q.get(base.id), q.get(k1.id)
    assert b is not None and k is not None
    assert b.state.status == "failed" and k.state.status == "failed"
    assert "base generation" in (k.state.reason or "")
    assert not (tmp_path / "base.kld.partial").exists()


def test_exit_zero_without_final_block_is_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the base transcript replayed as a KLD job: exit 0, but no KLD statistics
    q = JobQueue(tmp_path)
    j = q.add(spec("kld", "ik-tiny-base", tmp_path))
    Scheduler(tmp_path).run()
    got = q.get(j.id)
    assert got is not None and got.state.status == "failed"
    recs = ResultStore(tmp_path).load().records
    assert len(recs) == 1 and recs[0].status == "failed" and recs[0].failure


def test_crash_exit_code_is_failure_even_with_output(tmp_path: Path) -> None:
    q = JobQueue(tmp_path)
    j = q.add(spec("kld", "ik-tiny-kld-q4_0", tmp_path, exit_code=139))
    Scheduler(tmp_path).run()
    got = q.get(j.id)
    assert got is not None and got.state.exit_code == 139


def test_cancel_running_job(tmp_path: Path) -> None:
    q = JobQueue(tmp_path)
    j = q.add(spec("kld", "ik-tiny-kld-q4_0", tmp_path, delay=0.5))
    sched = Scheduler(tmp_path)
    import threading

    t = threading.Thread(target=sched.run)
    t.start()
    deadline = time.time() + 10
    while (got := q.get(j.id)) is not None and got.state.pid is None and time.time() < deadline:
        time.sleep(0.05)
    assert "stopping" in q.cancel(j.id)
    t.join(timeout=15)
    got = q.get(j.id)
    assert got is not None and got.state.status == "cancelled"


def test_cancel_retry_remove_move_queued(tmp_path: Path) -> None:
    q = JobQueue(tmp_path)
    a = q.add(spec("kld", "ik-tiny-kld-q4_0", tmp_path))
    b = q.add(spec("kld", "ik-tiny-kld-q8_0", tmp_path))
    assert q.move(b.id, -1)
    assert [x.id for x in q.jobs()] == [b.id, a.id]
    assert "cancelled" in q.cancel(a.id)
    assert "again" in q.retry(a.id)
    assert q.get(a.id).state.status == "queued"  # type: ignore[union-attr]
    assert "removed" in q.remove(b.id)
    assert [x.id for x in q.jobs()] == [a.id]


def test_adopts_a_child_whose_scheduler_died(tmp_path: Path) -> None:
    """A job marked running with a live child (no scheduler) is adopted and finalised by content."""
    q = JobQueue(tmp_path)
    j = q.add(spec("kld", "ik-tiny-kld-q4_0", tmp_path, delay=0.05))
    env = {**os.environ, **j.spec.env}
    with open(j.stdout_path, "wb") as out, open(j.stderr_path, "wb") as err:
        child = subprocess.Popen(j.spec.argv, stdout=out, stderr=err, env=env, start_new_session=True)
    import psutil

    q.update(j.id, status="running", pid=child.pid, pid_started=psutil.Process(child.pid).create_time(), started_at=time.time())
    Scheduler(tmp_path).run()
    child.wait()
    got = q.get(j.id)
    assert got is not None and got.state.status == "done" and got.state.exit_code is None


def test_detached_scheduler_survives_and_is_single(tmp_path: Path) -> None:
    q = JobQueue(tmp_path)
    jobs = [q.add(spec("kld", "ik-tiny-kld-q8_0", tmp_path, delay=0.02)) for _ in range(2)]
    ensure_scheduler(tmp_path)
    ensure_scheduler(tmp_path)  # a second call must not start a second runner
    deadline = time.time() + 30
    while time.time() < deadline and any(q.get(j.id).state.status != "done" for j in jobs):  # type: ignore[union-attr]
        time.sleep(0.1)
    assert all(q.get(j.id).state.status == "done" for j in jobs)  # type: ignore[union-attr]
    deadline = time.time() + 10
    while scheduler_running(tmp_path) and time.time() < deadline:
        time.sleep(0.1)
    assert not scheduler_running(tmp_path)  # exits once the queue is empty


def test_finalize_twice_keeps_one_state(tmp_path: Path) -> None:
    q = JobQueue(tmp_path)
    j = q.add(spec("kld", "ik-tiny-kld-q8_0", tmp_path))
    Scheduler(tmp_path).run()
    rec = finalize_job(q, j.id, 0)
    assert rec is not None and rec.status == "done"


LOST_TAIL = Path(__file__).resolve().parents[1] / "fixtures" / "llama" / "b0336" / "lost-tail-fail-ctx-mismatch"


def test_lost_output_tail_is_rerun_automatically(tmp_path: Path) -> None:
    """A REAL run of 0.3.36 that exited 0 but lost its final block is re-run, then reported."""
    from qtui.core.jobs.finalize import MAX_AUTO_RETRIES

    q = JobQueue(tmp_path)
    s = spec("kld", "ik-tiny-kld-q8_0", tmp_path)
    s.env["FAKE_LLAMA_CASE"] = str(LOST_TAIL)
    j = q.add(s)
    Scheduler(tmp_path).run()
    got = q.get(j.id)
    assert got is not None and got.state.status == "failed"
    assert got.state.attempts == MAX_AUTO_RETRIES
    assert "lost the end of its output" in (got.state.reason or "")
    recs = ResultStore(tmp_path).load().records
    assert len(recs) == 1  # only the final verdict is stored, not each attempt


def test_monitor_restarts_when_a_job_is_rerun(tmp_path: Path) -> None:
    from qtui.core.jobs.tail import JobTail
    from qtui.core.llama.parser import Progress

    q = JobQueue(tmp_path)
    j = q.add(spec("kld", "ik-tiny-kld-q8_0", tmp_path))
    Scheduler(tmp_path).run()
    mon = JobTail(q.get(j.id))  # type: ignore[arg-type]
    first = [e for e in mon.poll() if isinstance(e, Progress)]
    assert first
    for p in (j.stdout_path, j.stderr_path):  # what the scheduler does before a re-run
        data = p.read_bytes()
        p.unlink()
        p.write_bytes(data)
    again = [e for e in mon.poll() if isinstance(e, Progress)]
    assert [e.chunk for e in again] == [e.chunk for e in first]


def test_two_slots_run_two_jobs_at_once_one_gpu_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qtui.core.gpu import Nvml
    from tests.unit.test_gpu import FakeNvml, LibraryNotFound

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    log = tmp_path / "starts.log"
    q = JobQueue(tmp_path)
    jobs = []
    for _ in range(4):
        s = spec("kld", "ik-tiny-kld-q8_0", tmp_path, delay=0.1)
        s.env["FAKE_LLAMA_ENV_LOG"] = str(log)
        jobs.append(q.add(s))
    t0 = time.time()
    # no GPU seen (as on a CPU box, whatever GPUs this machine has): slots is the count
    no_gpu = Nvml(FakeNvml([], init_error=LibraryNotFound))
    Scheduler(tmp_path, slots=2, nvml=no_gpu).run()
    assert all(q.get(j.id).state.status == "done" for j in jobs)  # type: ignore[union-attr]
    starts = [line.split() for line in log.read_text().splitlines()]
    assert sorted({gpu for _, gpu, _ in starts}) == ["0", "1"]
    slots = {q.get(j.id).state.slot for j in jobs}  # type: ignore[union-attr]
    assert slots == {0, 1}
    # the first two started together, not one after the other
    first_two = sorted(float(t) for _, _, t in starts)[:2]
    assert first_two[1] - first_two[0] < 1.0 < time.time() - t0


@pytest.mark.parametrize(
    ("parent", "slot", "expected"),
    [
        ({}, 1, {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "1"}),
        ({"CUDA_VISIBLE_DEVICES": "2,3"}, 0, {"CUDA_VISIBLE_DEVICES": "2"}),
        ({"CUDA_VISIBLE_DEVICES": "2, 3"}, 1, {"CUDA_VISIBLE_DEVICES": "3"}),
        ({"CUDA_VISIBLE_DEVICES": "GPU-aa,GPU-bb"}, 2, {"CUDA_VISIBLE_DEVICES": "GPU-aa"}),  # more slots than GPUs
        ({"CUDA_VISIBLE_DEVICES": ""}, 1, {}),  # no GPU given: stays so
    ],
)
def test_slot_gets_one_of_the_gpus_qtui_was_given(parent: dict[str, str], slot: int, expected: dict[str, str]) -> None:
    assert slot_gpu_env(slot, parent) == expected


def test_a_job_folder_left_half_made_is_not_a_job(tmp_path: Path) -> None:
    """A qtui killed while queuing leaves at most a hidden temporary folder, never a job."""
    q = JobQueue(tmp_path)
    j = q.add(spec("kld", "ik-tiny-kld-q8_0", tmp_path))
    leftover = tmp_path / "jobs" / f".new-{j.id}x"
    leftover.mkdir()
    for name in ("job.json", "state.json"):
        (leftover / name).write_bytes((j.dir / name).read_bytes())
    assert [x.id for x in q.jobs()] == [j.id]


def test_a_failure_is_recorded_in_place_when_the_disk_refuses_new_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from qtui.core.jobs import queue as queue_mod

    q = JobQueue(tmp_path)
    j = q.add(spec("kld", "ik-tiny-kld-q8_0", tmp_path))

    def full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(queue_mod, "atomic_write_json", full)
    with pytest.raises(OSError):
        q.update(j.id, status="running")  # an ordinary write is refused...
    q.fail(j.id, "disk full: qtui could not record the result")  # ...the last resort is not
    got = q.get(j.id)
    assert got is not None and got.state.status == "failed" and got.state.reason.startswith("disk full")  # type: ignore[union-attr]

"""B7: a full or unwritable data dir. A job whose bookkeeping hits a full disk fails with "disk
full" and the scheduler waits quietly (it used to busy-loop at ~60 % CPU with nothing logged);
queuing on a full disk raises and leaves no half-made job folder."""

from __future__ import annotations

import errno
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from qtui.core.jobs import queue as queue_mod
from qtui.core.jobs.queue import FINISHED, JobQueue
from qtui.core.jobs.scheduler import Scheduler, ensure_scheduler, scheduler_running
from qtui.core.results.store import ResultStore
from tests.faults.conftest import fake_spec, fill_disk, scheduler_procs, status, wait_for

IDLE_CPU_S = 0.3
"""CPU seconds the scheduler may use while it waits MEASURE_S for room on a full disk"""
MEASURE_S = 3.0


def _enospc(*_: Any, **__: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_during_a_run_fails_the_job_and_the_scheduler_does_not_spin(
        small_disk: Path | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if small_disk is None:  # not root: no tmpfs to fill, so inject what a full disk raises
        data = tmp_path / "data"
        q = JobQueue(data)
        j = q.add(fake_spec("kld", "ik-tiny-kld-q4_0", data))
        monkeypatch.setattr(ResultStore, "save", _enospc)
        Scheduler(data).run()
        got = q.get(j.id)
        assert got is not None and got.state.status == "failed" and "disk full" in (got.state.reason or "")
        return
    data = small_disk
    q = JobQueue(data)
    first = q.add(fake_spec("kld", "ik-tiny-kld-q4_0", data, delay=0.2))
    second = q.add(fake_spec("kld", "ik-tiny-kld-q8_0", data))
    ensure_scheduler(data)
    wait_for("the first job's output", lambda: first.stdout_path.exists() and first.stdout_path.stat().st_size > 0)
    filler = fill_disk(data)
    wait_for("the first job to end", lambda: status(q, first.id) in FINISHED)
    got = q.get(first.id)
    assert got is not None and got.state.status == "failed"
    assert "disk full" in (got.state.reason or "")
    # The second job cannot even be marked running: it waits, queued, and the scheduler idles.
    sched = wait_for("the scheduler process", lambda: scheduler_procs(data))[0]
    before = sched.cpu_times()
    time.sleep(MEASURE_S)  # the one deliberate wait: CPU use is measured over a span of time
    after = sched.cpu_times()
    used = (after.user + after.system) - (before.user + before.system)
    assert used < IDLE_CPU_S, f"the scheduler used {used:.2f} s of CPU in {MEASURE_S:.0f} s while the disk was full"
    assert status(q, second.id) == "queued"
    filler.unlink()  # room again: the queued job runs without anyone restarting anything
    wait_for("the second job to run once there is room", lambda: status(q, second.id) == "done", timeout=60)
    wait_for("the scheduler to exit", lambda: not scheduler_running(data) and _ended(sched))


def _ended(proc: psutil.Process) -> bool:
    try:
        return bool(proc.status() == psutil.STATUS_ZOMBIE)  # ours, not reaped: ended all the same
    except psutil.NoSuchProcess:
        return True


def test_queuing_on_a_full_disk_leaves_no_half_made_job(small_disk: Path | None, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    data = small_disk or tmp_path / "data"
    q = JobQueue(data)
    q.add(fake_spec("kld", "ik-tiny-kld-q4_0", data))  # one good job, made while there was room
    specs = [fake_spec("kld", "ik-tiny-kld-q8_0", data) for _ in range(3)]
    if small_disk is not None:
        fill_disk(data)
    else:
        real = queue_mod.atomic_write_json

        def write(path: Path, obj: Any) -> None:
            if path.name == "job.json" and obj.get("id") == specs[1].id:
                _enospc()
            real(path, obj)
        monkeypatch.setattr(queue_mod, "atomic_write_json", write)
    with pytest.raises(OSError) as caught:
        q.add_many(specs)
    assert caught.value.errno == errno.ENOSPC
    names = sorted(p.name for p in (data / "jobs").iterdir() if p.is_dir())
    assert len(names) == 1 and not names[0].startswith(".")  # only the good job: no temp folder either
    assert len(q.jobs()) == 1


def test_queuing_into_a_data_dir_that_is_a_file_raises_oserror(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_text("not a folder")
    with pytest.raises(OSError):
        JobQueue(data).add(fake_spec("kld", "ik-tiny-kld-q4_0", data))
    assert data.read_text() == "not a folder"


def test_base_file_that_fills_the_disk_fails_with_disk_full_and_frees_its_space(
        small_disk: Path | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A base generation that runs out of room: failed with "disk full" in its reason, its
    partial file deleted (it is what filled the disk), and the failure recorded in the store."""
    data = small_disk or tmp_path / "data"
    q = JobQueue(data)
    j = q.add(fake_spec("base", "ik-tiny-base", data))
    if small_disk is not None:
        filler = fill_disk(data)
        with open(filler, "r+b") as fh:  # leave room for the job's logs, not for its base file
            fh.truncate(filler.stat().st_size - 24 * 1024)
    else:  # not root: the child fails as on a full disk, and the disk reads as full
        job = q.get(j.id)
        assert job is not None
        job.spec.env["FAKE_LLAMA_EXIT"] = "1"
        q.write_spec(job)
        monkeypatch.setattr("qtui.core.jobs.finalize.disk_nearly_full", lambda _: True)
    Scheduler(data).run()
    got = q.get(j.id)
    assert got is not None and got.state.status == "failed"
    assert (got.state.reason or "").endswith("(the disk is full)")
    assert not (data / "base.kld.partial").exists() and not (data / "base.kld").exists()
    recs = ResultStore(data).load().records
    assert [r.job_id for r in recs] == [j.id] and recs[0].failure

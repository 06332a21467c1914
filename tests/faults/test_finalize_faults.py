"""Faults at the moment a run ends: broken figures, an exception while recording, a scheduler
killed half-way through finalizing. None may leave a job "running"."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from qtui.core.jobs.queue import FINISHED, JobQueue
from qtui.core.jobs.scheduler import Scheduler, ensure_scheduler, scheduler_running
from qtui.core.llama.basefile import check_base_file
from qtui.core.results.store import ResultStore
from tests.faults.conftest import fake_spec, status, wait_for


def test_nan_base_estimate_fails_the_base_and_its_kld_jobs(data_dir: Path) -> None:
    """B1: `Final estimate: PPL = nan` made recording raise, and the job stayed running forever."""
    q = JobQueue(data_dir)
    base = q.add(fake_spec("base", "ik-tiny-base", data_dir, FAKE_LLAMA_NONFINITE="nan"))
    kld = q.add(fake_spec("kld", "ik-tiny-kld-q4_0", data_dir, depends_on=base.id))
    ensure_scheduler(data_dir)
    wait_for("both jobs to end", lambda: {status(q, base.id), status(q, kld.id)} <= set(FINISHED))
    b, k = q.get(base.id), q.get(kld.id)
    assert b is not None and k is not None
    assert b.state.status == "failed"
    assert "non-finite PPL (nan)" in (b.state.reason or "")
    assert k.state.status == "failed" and "non-finite PPL (nan)" in (k.state.reason or "")
    # neither the useless partial file nor a base file that a later run would reuse
    assert not (data_dir / "base.kld.partial").exists() and not (data_dir / "base.kld").exists()
    wait_for("the scheduler to exit", lambda: not scheduler_running(data_dir))
    recs = ResultStore(data_dir).load()
    assert not recs.problems and {r.job_id for r in recs.records} == {base.id}
    assert recs.records[0].stats["ppl_base"] == "nan"
    assert q.cancel(base.id).ok and q.remove(base.id).ok and q.remove(kld.id).ok
    assert q.jobs() == []


def test_exception_while_recording_fails_that_job_and_the_slot_goes_on(data_dir: Path) -> None:
    """An exception after the child exited (here: the base file's metadata cannot be written,
    its name is taken by a folder) fails that job with words; the next job still runs."""
    q = JobQueue(data_dir)
    blocked = data_dir / "blocked.kld"
    (data_dir / "blocked.kld.json").mkdir()
    bad = q.add(fake_spec("base", "ik-tiny-base", data_dir, output=blocked))
    good = q.add(fake_spec("kld", "ik-tiny-kld-q8_0", data_dir))
    ensure_scheduler(data_dir)
    wait_for("both jobs to end", lambda: {status(q, bad.id), status(q, good.id)} <= set(FINISHED))
    b = q.get(bad.id)
    assert b is not None and b.state.status == "failed"
    assert (b.state.reason or "").startswith("qtui could not record the result: [Errno 21] Is a directory")
    assert status(q, good.id) == "done"
    log = (data_dir / "jobs" / "scheduler.log").read_text()
    assert "Traceback (most recent call last)" in log and "IsADirectoryError" in log
    assert not Path(str(blocked) + ".partial").exists()  # a failed base leaves no partial file
    wait_for("the scheduler to exit", lambda: not scheduler_running(data_dir))


@pytest.mark.parametrize("value", ["nan", "-nan", "inf"])
def test_nonfinite_kld_fails_with_words(data_dir: Path, value: str) -> None:
    """B4: a KLD run whose mean KLD is nan/inf was recorded as done (the leaderboard showed "?")."""
    q = JobQueue(data_dir)
    j = q.add(fake_spec("kld", "ik-tiny-kld-q4_0", data_dir, FAKE_LLAMA_NONFINITE=value))
    Scheduler(data_dir).run()
    got = q.get(j.id)
    word = value.lstrip("-")
    assert got is not None and got.state.status == "failed"
    assert got.state.reason == f"llama-perplexity reported a non-finite KLD ({word}): the model's output is broken"
    recs = ResultStore(data_dir).load().records
    assert len(recs) == 1 and recs[0].status == "failed"
    assert recs[0].stats["kld_mean"] == word  # the figures are kept, as printed


def _run_base_child_by_hand(q: JobQueue, job_id: str) -> None:
    """What a scheduler does up to the child's exit, with the scheduler then dying: the job is
    left "running" with the pid of a child that has ended."""
    job = q.get(job_id)
    assert job is not None
    q.update(job_id, status="running", started_at=time.time())
    with open(job.stdout_path, "wb") as out, open(job.stderr_path, "wb") as err:
        child = subprocess.Popen(job.spec.argv, stdout=out, stderr=err, env={**os.environ, **job.spec.env},
                                 start_new_session=True)
    q.update(job_id, pid=child.pid, pid_started=psutil.Process(child.pid).create_time())
    assert child.wait(timeout=60) == 0


def test_scheduler_killed_after_placing_the_base_file_adopts_it_as_done(data_dir: Path) -> None:
    """B5: the scheduler died after renaming the base's .partial, before updating the queue; the
    next one re-judged the missing .partial, failed the base and all its KLD jobs."""
    q = JobQueue(data_dir)
    base = q.add(fake_spec("base", "ik-tiny-base", data_dir))
    kld = q.add(fake_spec("kld", "ik-tiny-kld-q4_0", data_dir, depends_on=base.id))
    _run_base_child_by_hand(q, base.id)
    final = data_dir / "base.kld"
    # the crash point: metadata written (it goes first), file renamed, queue not updated
    (data_dir / "base.kld.json").write_text(json.dumps({"job_id": base.id, "ctx": 128}))
    os.replace(str(final) + ".partial", final)
    assert status(q, base.id) == "running"
    ensure_scheduler(data_dir)
    wait_for("both jobs to end", lambda: {status(q, base.id), status(q, kld.id)} <= set(FINISHED))
    assert (status(q, base.id), status(q, kld.id)) == ("done", "done")
    assert check_base_file(final).n_ctx == 128


def test_scheduler_killed_after_rename_before_metadata_writes_the_metadata(data_dir: Path) -> None:
    """The same crash with the order an older qtui used (rename, then metadata): the placed file
    is this run's (written after the job started), so it is adopted and gets its metadata."""
    q = JobQueue(data_dir)
    base = q.add(fake_spec("base", "ik-tiny-base", data_dir))
    _run_base_child_by_hand(q, base.id)
    os.replace(str(data_dir / "base.kld") + ".partial", data_dir / "base.kld")
    Scheduler(data_dir).run()
    assert status(q, base.id) == "done"
    meta = json.loads((data_dir / "base.kld.json").read_text())
    assert meta["job_id"] == base.id and meta["n_chunk"] == 2


def test_base_file_of_an_earlier_run_is_not_taken_for_this_run(data_dir: Path) -> None:
    """Idempotence must not turn into trust: a stale base file with no partial is no success."""
    q = JobQueue(data_dir)
    base = q.add(fake_spec("base", "ik-tiny-base", data_dir))
    _run_base_child_by_hand(q, base.id)
    Path(str(data_dir / "base.kld") + ".partial").unlink()  # this run's file is lost...
    stale = data_dir / "base.kld"
    shutil.copy(Path(__file__), stale)  # ...and an older, broken file sits under the final name
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    Scheduler(data_dir).run()
    got = q.get(base.id)
    assert got is not None and got.state.status == "failed" and "base file is not usable" in (got.state.reason or "")


def test_retry_of_a_kld_job_whose_base_failed_requeues_the_base(data_dir: Path) -> None:
    """B5: retrying a KLD job whose base had failed failed again at once."""
    q = JobQueue(data_dir)
    base = q.add(fake_spec("base", "ik-tiny-base", data_dir, FAKE_LLAMA_EXIT="1"))
    kld = q.add(fake_spec("kld", "ik-tiny-kld-q8_0", data_dir, depends_on=base.id))
    Scheduler(data_dir).run()
    assert (status(q, base.id), status(q, kld.id)) == ("failed", "failed")
    b = q.get(base.id)
    assert b is not None
    b.spec.env.pop("FAKE_LLAMA_EXIT")  # the cause is gone (a GPU freed, a path fixed)
    q.write_spec(b)
    out = q.retry(kld.id)
    assert out.ok and "with the base generation it needs" in out and "which had failed" in out
    assert (status(q, base.id), status(q, kld.id)) == ("queued", "queued")
    Scheduler(data_dir).run()
    assert (status(q, base.id), status(q, kld.id)) == ("done", "done")


def test_failure_that_cannot_be_written_is_left_to_the_next_scheduler(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When even the failure cannot be written (the queue's disk refuses everything), the
    scheduler logs it and exits instead of waiting for ever on a job it cannot end; the next
    scheduler adopts the job and ends it once the disk takes writes again."""
    import errno

    from qtui.core.jobs import finalize as finalize_mod

    q = JobQueue(data_dir)
    j = q.add(fake_spec("kld", "ik-tiny-kld-q8_0", data_dir))
    later = q.add(fake_spec("kld", "ik-tiny-kld-q4_0", data_dir))

    def refuse(*_: object, **__: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    with monkeypatch.context() as m:
        m.setattr(finalize_mod, "finalize_job", refuse)
        m.setattr("qtui.core.jobs.scheduler.finalize_job", refuse)
        m.setattr(JobQueue, "fail", refuse)
        sched = Scheduler(data_dir)
        runner = threading.Thread(target=sched.run, daemon=True)
        runner.start()
        runner.join(timeout=30)
        assert not runner.is_alive(), "the scheduler kept waiting on jobs it could not end"
    assert sched.stranded == {j.id, later.id}
    assert status(q, j.id) == "running"
    assert "Read-only file system" in (data_dir / "jobs" / "scheduler.log").read_text()
    Scheduler(data_dir).run()
    assert (status(q, j.id), status(q, later.id)) == ("done", "done")

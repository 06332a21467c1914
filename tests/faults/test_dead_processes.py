"""Processes that die or will not die: a child that ignores SIGTERM, a scheduler killed with -9
mid-run (B3), both gone while a cancel is asked. A job must end cancelled, done or failed."""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from qtui.core.jobs.procs import alive
from qtui.core.jobs.queue import FINISHED, TERM_GRACE_S, Job, JobQueue
from qtui.core.jobs.scheduler import ensure_scheduler, scheduler_running
from tests.faults.conftest import fake_spec, kill9, scheduler_procs, status, wait_for

SLOW = 1.0  # seconds between the fake's output slices: a run of ~20 s, long enough to act on


def _running_child(q: JobQueue, job: Job) -> psutil.Process:
    def child() -> psutil.Process | None:
        got = q.get(job.id)
        return psutil.Process(got.state.pid) if got and got.state.status == "running" and got.state.pid else None
    proc: psutil.Process = wait_for(f"{job.spec.label} to run", child)
    # and to have started writing: by then the fake has set up its signal handling
    wait_for(f"{job.spec.label}'s first output", lambda: job.stderr_path.exists() and job.stderr_path.stat().st_size > 0)
    return proc


def _only_scheduler(data_dir: Path) -> psutil.Process:
    found: list[psutil.Process] = wait_for("the scheduler process", lambda: scheduler_procs(data_dir))
    assert len(found) == 1
    return found[0]


def test_cancel_of_a_child_that_ignores_sigterm_escalates_to_sigkill(data_dir: Path) -> None:
    q = JobQueue(data_dir)
    j = q.add(fake_spec("kld", "ik-tiny-kld-q4_0", data_dir, delay=SLOW, FAKE_LLAMA_IGNORE_TERM="1"))
    ensure_scheduler(data_dir)
    child = _running_child(q, j)
    t0 = time.monotonic()
    assert "stopping" in q.cancel(j.id)
    wait_for("the job to end cancelled", lambda: status(q, j.id) in FINISHED, timeout=TERM_GRACE_S + 5)
    assert time.monotonic() - t0 >= TERM_GRACE_S - 0.5  # SIGTERM alone did not stop it
    got = q.get(j.id)
    assert got is not None and got.state.status == "cancelled" and got.state.exit_code == 128 + 9
    assert not alive(child.pid, got.state.pid_started)


def test_cancel_when_scheduler_and_child_are_dead_ends_the_job(data_dir: Path) -> None:
    q = JobQueue(data_dir)
    j = q.add(fake_spec("kld", "ik-tiny-kld-q4_0", data_dir, delay=SLOW))
    ensure_scheduler(data_dir)
    child = _running_child(q, j)
    kill9(_only_scheduler(data_dir).pid)
    kill9(child.pid)
    wait_for("the scheduler's lock to be free", lambda: not scheduler_running(data_dir))
    assert status(q, j.id) == "running"  # what a dead scheduler leaves behind
    out = q.cancel(j.id)
    assert out.ok and out.startswith("cancelled")
    assert status(q, j.id) == "cancelled"
    assert q.remove(j.id).ok


def test_cancel_when_scheduler_is_dead_and_child_ignores_sigterm(data_dir: Path) -> None:
    """The cancel is recorded; the next scheduler (started by whoever reads the queue next)
    adopts the child, escalates to SIGKILL after the grace period and records "cancelled"."""
    q = JobQueue(data_dir)
    j = q.add(fake_spec("kld", "ik-tiny-kld-q4_0", data_dir, delay=SLOW, FAKE_LLAMA_IGNORE_TERM="1"))
    ensure_scheduler(data_dir)
    child = _running_child(q, j)
    kill9(_only_scheduler(data_dir).pid)
    wait_for("the scheduler's lock to be free", lambda: not scheduler_running(data_dir))
    assert "stopping" in q.cancel(j.id)
    ensure_scheduler(data_dir)
    wait_for("the job to end cancelled", lambda: status(q, j.id) in FINISHED, timeout=TERM_GRACE_S + 10)
    assert status(q, j.id) == "cancelled"
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_scheduler_killed_mid_run_is_adopted_by_the_next_one(data_dir: Path) -> None:
    """B3: kill -9 of the scheduler left a job "running" and the rest "queued" for ever."""
    q = JobQueue(data_dir)
    j = q.add(fake_spec("kld", "ik-tiny-kld-q4_0", data_dir, delay=0.1))
    later = q.add(fake_spec("kld", "ik-tiny-kld-q8_0", data_dir))
    ensure_scheduler(data_dir)
    child = _running_child(q, j)
    kill9(_only_scheduler(data_dir).pid)
    wait_for("the scheduler's lock to be free", lambda: not scheduler_running(data_dir))
    assert child.is_running()  # its own session: the scheduler's death does not reach it
    ensure_scheduler(data_dir)
    wait_for("both jobs to end", lambda: {status(q, j.id), status(q, later.id)} <= set(FINISHED))
    got = q.get(j.id)
    assert got is not None and got.state.status == "done" and got.state.exit_code is None  # judged by content
    assert status(q, later.id) == "done"


def test_scheduler_and_child_killed_mid_run_fails_the_job_and_runs_the_rest(data_dir: Path) -> None:
    q = JobQueue(data_dir)
    j = q.add(fake_spec("kld", "ik-tiny-kld-q4_0", data_dir, delay=SLOW))
    later = q.add(fake_spec("kld", "ik-tiny-kld-q8_0", data_dir))
    ensure_scheduler(data_dir)
    child = _running_child(q, j)
    kill9(_only_scheduler(data_dir).pid)
    kill9(child.pid)
    wait_for("the scheduler's lock to be free", lambda: not scheduler_running(data_dir))
    ensure_scheduler(data_dir)
    wait_for("both jobs to end", lambda: {status(q, j.id), status(q, later.id)} <= set(FINISHED))
    got = q.get(j.id)
    assert got is not None and got.state.status == "failed" and got.state.reason
    assert status(q, later.id) == "done"

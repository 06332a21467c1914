"""Waiting for a job's child: a finished child is noticed at once (its GPU goes to the next job
without waiting out a poll), with plain sleeps where the kernel or a sandbox offers no pidfd,
and never a busy loop when a pidfd says 'exited' wrongly."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from qtui.core.jobs import runner
from qtui.core.jobs.queue import JobQueue, JobSpec
from qtui.core.jobs.runner import ExitWatch, wait_adopted, wait_child

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="pidfd is Linux-only")


def test_the_wait_ends_when_the_child_exits_not_at_the_timeout():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    t0 = time.monotonic()
    with ExitWatch(child.pid) as exited:
        exited.wait(30.0)
    assert time.monotonic() - t0 < 20.0  # woken by the exit, long before the 30-s timeout
    assert child.wait(timeout=5) == 0


def test_without_pidfd_it_sleeps_out_the_timeout(monkeypatch):
    def no_pidfd(pid: int) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    slept: list[float] = []
    monkeypatch.setattr(runner.time, "sleep", slept.append)
    with ExitWatch(os.getpid()) as exited:
        exited.wait(0.25)
    assert slept == [0.25]


def test_a_pidfd_that_says_exited_wrongly_turns_into_sleeps(monkeypatch):
    """A sandbox whose pidfd is always readable must not make wait_child spin on the state file."""
    monkeypatch.setattr(runner.select, "select", lambda r, w, x, t: (r, [], []))
    slept: list[float] = []
    monkeypatch.setattr(runner.time, "sleep", slept.append)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with ExitWatch(child.pid) as exited:
            exited.wait(0.25)  # "exited" (wrongly): the caller reaps nothing and waits again
            exited.wait(0.25)
            exited.wait(0.25)
        assert slept == [0.25, 0.25]
    finally:
        child.kill()
        child.wait()


def test_wait_child_returns_the_exit_status_and_cpu_time(tmp_path):
    q = JobQueue(tmp_path)
    job = q.add(JobSpec(kind="kld", argv=["x"], model={"label": "m"}, label="m"))  # type: ignore[arg-type]
    child = subprocess.Popen([sys.executable, "-c", "import sys; sum(range(10**6)); sys.exit(3)"])
    code, cpu_s = wait_child(q, job.id, child)  # type: ignore[arg-type]
    assert code == 3 and child.returncode == 3
    assert cpu_s > 0


def test_an_adopted_child_is_watched_through_its_pidfd_too(tmp_path, monkeypatch):
    """A job left running by a dead scheduler: its child is not ours (the shell that started it
    here has exited, so it was handed to init), yet its exit ends the wait without a poll."""
    q = JobQueue(tmp_path)
    job = q.add(JobSpec(kind="kld", argv=["x"], model={"label": "m"}, label="m"))  # type: ignore[arg-type]
    out = subprocess.run(["sh", "-c", "sleep 0.5 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True, check=True)
    pid = int(out.stdout)
    assert psutil.Process(pid).ppid() != os.getpid()
    job.state.pid, job.state.pid_started = pid, psutil.Process(pid).create_time()
    slept: list[float] = []
    monkeypatch.setattr(runner.time, "sleep", slept.append)
    wait_adopted(q, job)
    assert slept == []  # woken by the pidfd, not by sleeps
    assert not runner.alive(pid, job.state.pid_started)

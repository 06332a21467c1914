"""Running one job's child: start it with its streams going to files, wait for it, and stop it
when the user cancels (SIGTERM first, SIGKILL once the grace period is over)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from typing import IO

from qtui.core.jobs.procs import alive, signal_group
from qtui.core.jobs.queue import TERM_GRACE_S, Job, JobQueue
from qtui.core.llama.tokendump import DUMP_ENV, JOB_FILE

POLL_S = 0.25


def start_child(job: Job, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start the job's command in its own session. Raises OSError (no binary, disk full...)."""
    out: IO[bytes]
    for old in (job.stdout_path, job.stderr_path, job.dir / JOB_FILE):
        old.unlink(missing_ok=True)  # fresh files (new inodes): watchers notice a re-run
    # qtui's own builds write per-token data where this names (others ignore it): see tokendump.py
    env = {k: v for k, v in env.items() if k != DUMP_ENV}
    if job.spec.kind == "kld":
        env[DUMP_ENV] = str(job.dir / JOB_FILE)
    with open(job.stdout_path, "wb") as out, open(job.stderr_path, "wb") as err:
        return subprocess.Popen(
            job.spec.argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            cwd=job.dir,
            start_new_session=True,
        )


class ExitWatch:
    """Sleeps that end as soon as a child exits: a pidfd on Linux (5.3+), so a finished job
    frees its GPU at once rather than at the next poll; elsewhere plain sleeps.

    The caller reaps the child after each wait. Being asked to wait again after the pidfd said
    "exited" means it was wrong (a sandbox may not implement it): plain sleeps from then on,
    never a busy loop."""

    def __init__(self, pid: int) -> None:
        self._fd: int | None = None
        self._said_exited = False
        try:
            self._fd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # not Linux, an old kernel, a sandbox without it
            self._fd = None

    def __enter__(self) -> ExitWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def wait(self, timeout: float) -> None:
        if self._said_exited:
            self.close()
        if self._fd is None:
            time.sleep(timeout)
            return
        ready, _, _ = select.select([self._fd], [], [], timeout)
        self._said_exited = bool(ready)


def wait_child(queue: JobQueue, job_id: str, proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    """Wait for our own child: its exit status shell-style (128 + N when killed by signal N)
    and the CPU time it used (user + system, seconds; what a run costs on a busy CPU box,
    where its wall time also counts the other processes)."""
    with ExitWatch(proc.pid) as exited:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                rc = os.waitstatus_to_exitcode(status)
                proc.returncode = rc  # reaped here: Popen must not wait for it again
                return (rc if rc >= 0 else 128 - rc), usage.ru_utime + usage.ru_stime
            escalate_cancel(queue, job_id, proc.pid)
            exited.wait(POLL_S)  # wakes at the child's exit; else checks for a cancel again


def wait_adopted(queue: JobQueue, job: Job) -> None:
    """Wait for the child of a job left running by a scheduler that died. Not our child, so
    there is no exit status to reap, but its pidfd still wakes the wait at its exit; `alive`
    (which also sees through a recycled pid) decides when it has ended."""
    if job.state.pid is None:
        return
    with ExitWatch(job.state.pid) as exited:
        while alive(job.state.pid, job.state.pid_started):
            escalate_cancel(queue, job.id, job.state.pid)
            exited.wait(POLL_S)


def escalate_cancel(queue: JobQueue, job_id: str, pid: int) -> None:
    """SIGKILL a child that outlived the grace period after a cancel (one that ignores or is
    stuck past SIGTERM, e.g. inside a GPU call). Errors reading the queue are ignored: this
    runs again a moment later."""
    try:
        job = queue.get(job_id)
    except OSError:
        return
    asked = job.state.cancel_requested_at if job else None
    if asked is None:
        return
    if time.time() - asked > TERM_GRACE_S:
        signal_group(pid, signal.SIGKILL)
    else:
        # A cancel whose SIGTERM never reached the child (written by a qtui that saw it
        # dead, or lost in a race with its start): ask again; repeating TERM is harmless.
        signal_group(pid, signal.SIGTERM)

"""The detached scheduler: runs queued jobs one per slot, outliving any qtui that started it.

Started by `ensure_scheduler()` as `python -m qtui.core.jobs.scheduler` in a new session, so a
closed terminal, Ctrl-C in the CLI or a dropped SSH connection never reaches it or its
children. The child's stdout/stderr go straight to files (no pipe to break), so even the
scheduler's own death does not stop a run: the next scheduler adopts it and, once it ends,
judges it from those files.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import psutil

from qtui.core.jobs.finalize import finalize_job
from qtui.core.jobs.queue import TERM_GRACE_S, Job, JobQueue, signal_group

POLL_S = 0.25


class Scheduler:
    def __init__(self, data_dir: Path, slots: int = 1) -> None:
        self.queue = JobQueue(data_dir)
        self.slots = max(1, slots)

    # -- choosing work ---------------------------------------------------------------------
    def _claim_next(self, slot: int) -> tuple[Job | None, bool]:
        """Under the queue lock: mark the next runnable job running. Returns (job, any_pending)."""
        with self.queue.locked():
            jobs = self.queue.jobs()
            by_id = {j.id: j for j in jobs}
            pending = False
            for job in jobs:
                if job.state.status != "queued":
                    continue
                dep = by_id.get(job.spec.depends_on) if job.spec.depends_on else None
                if job.spec.depends_on and dep is None:
                    self._fail_unlocked(job, "the base generation job it needs was removed")
                    continue
                if dep is not None and dep.state.status in ("failed", "cancelled"):
                    self._fail_unlocked(job, f"the base generation it needs {dep.state.status}: {dep.state.reason or ''}".rstrip(": "))
                    continue
                if dep is not None and dep.state.status != "done":
                    pending = True
                    continue
                job.state.status = "running"
                job.state.slot = slot
                job.state.started_at = time.time()
                self.queue.write_state(job)
                return job, True
            pending = pending or any(j.state.status == "running" for j in jobs)
            return None, pending

    def _fail_unlocked(self, job: Job, reason: str) -> None:
        job.state.status = "failed"
        job.state.reason = reason
        job.state.ended_at = time.time()
        self.queue.write_state(job)

    # -- running ---------------------------------------------------------------------------
    def _env(self, job: Job, slot: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_ARG_")}
        env.update(job.spec.env)
        if self.slots > 1 and "CUDA_VISIBLE_DEVICES" not in job.spec.env:
            env.update(slot_gpu_env(slot, os.environ))
        return env

    def run_job(self, job: Job, slot: int) -> None:
        out: IO[bytes]
        for old in (job.stdout_path, job.stderr_path):
            old.unlink(missing_ok=True)  # fresh files (new inodes): watchers notice a re-run
        try:
            with open(job.stdout_path, "wb") as out, open(job.stderr_path, "wb") as err:
                proc = subprocess.Popen(
                    job.spec.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env=self._env(job, slot),
                    cwd=job.dir,
                    start_new_session=True,
                )
        except OSError as exc:
            self.queue.update(job.id, status="failed", reason=f"could not start {job.spec.argv[0]}: {exc.strerror or exc}", ended_at=time.time())
            return
        created = _create_time(proc.pid)
        self.queue.update(job.id, pid=proc.pid, pid_started=created)
        while True:
            try:
                rc = proc.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                self._escalate_cancel(job.id, proc.pid)
        finalize_job(self.queue, job.id, rc if rc >= 0 else 128 - rc)

    def _escalate_cancel(self, job_id: str, pid: int) -> None:
        job = self.queue.get(job_id)
        asked = job.state.cancel_requested_at if job else None
        if asked is not None and time.time() - asked > TERM_GRACE_S:
            signal_group(pid, signal.SIGKILL)

    def adopt(self, job: Job) -> None:
        """A job left 'running' by a scheduler that died: wait for its child, then judge it."""
        pid = job.state.pid
        while pid is not None and _alive(pid, job.state.pid_started):
            self._escalate_cancel(job.id, pid)
            time.sleep(POLL_S)
        finalize_job(self.queue, job.id, None)  # exit code unknown: judged by content alone

    # -- main loop -------------------------------------------------------------------------
    def _slot_loop(self, slot: int) -> None:
        while True:
            job, pending = self._claim_next(slot)
            if job is not None:
                self.run_job(job, slot)
            elif pending:
                time.sleep(POLL_S)
            else:
                return

    def run(self) -> None:
        orphans = [j for j in self.queue.jobs() if j.state.status == "running"]
        threads = [threading.Thread(target=self.adopt, args=(j,), daemon=True) for j in orphans]
        for t in threads:
            t.start()
        while True:
            slots = [threading.Thread(target=self._slot_loop, args=(i,), daemon=True) for i in range(self.slots)]
            for t in slots:
                t.start()
            for t in slots + threads:
                t.join()
            threads = []
            if not any(j.state.status in ("queued", "running") for j in self.queue.jobs()):
                return


def _create_time(pid: int) -> float | None:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).create_time()
    return None


def _alive(pid: int, started: float | None) -> bool:
    try:
        p = psutil.Process(pid)
        if started is not None and abs(p.create_time() - started) > 1.0:
            return False  # the pid was recycled by another process
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# -- singleton + spawning ------------------------------------------------------------------
def _lock_path(data_dir: Path) -> Path:
    return Path(data_dir) / "jobs" / ".scheduler.lock"


def scheduler_running(data_dir: Path) -> bool:
    path = _lock_path(data_dir)
    if not path.exists():
        return False
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def serve(data_dir: Path, slots: int) -> int:
    """Run until the queue is empty. Exits at once if another scheduler holds the lock."""
    path = _lock_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0
    sched = Scheduler(data_dir, slots)
    while True:
        sched.run()
        # Release the singleton lock while holding the queue lock: a job added after our
        # last look either is seen here, or its adder spawns a scheduler that gets the lock.
        with sched.queue.locked():
            if any(j.state.status == "queued" for j in sched.queue.jobs()):
                continue
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()
            return 0


def slot_gpu_env(slot: int, parent: Mapping[str, str]) -> dict[str, str]:
    """The GPU a slot's job sees: the slot-th of the GPUs qtui itself was given.

    With CUDA_VISIBLE_DEVICES already set (a shared box where a person was handed GPUs 2,3),
    slot 0 gets the first of those, slot 1 the second: never a GPU outside the list. Without
    it, slot i is GPU i in PCI bus order, the order NVML and nvidia-smi number them in, so the
    GPU panel and the job agree on which card is which."""
    if "CUDA_VISIBLE_DEVICES" in parent:
        visible = [d.strip() for d in parent["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
        # More slots than GPUs given: jobs share them round-robin. None given: keep it so.
        return {"CUDA_VISIBLE_DEVICES": visible[slot % len(visible)]} if visible else {}
    return {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": str(slot)}


def ensure_scheduler(data_dir: Path, slots: int = 1) -> None:
    """Start a detached scheduler unless one is running. Cheap to call after every add."""
    if scheduler_running(data_dir):
        return
    log = Path(data_dir) / "jobs" / "scheduler.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    pkg_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(log, "ab") as fh:
        subprocess.Popen(
            [sys.executable, "-m", "qtui.core.jobs.scheduler", "--data-dir", str(data_dir), "--slots", str(slots)],
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=fh,
            env=env,
            start_new_session=True,
            close_fds=True,
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="qtui's detached job scheduler (started by qtui itself)")
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--slots", type=int, default=1)
    args = ap.parse_args(argv)
    # Belt and braces: a new session has no controlling terminal, but never die of a hang-up.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return serve(args.data_dir, args.slots)


if __name__ == "__main__":
    raise SystemExit(main())

"""The detached scheduler: runs queued jobs one per slot, outliving any qtui that started it.

Started by `ensure_scheduler()` as `python -m qtui.core.jobs.scheduler` in a new session, so a
closed terminal, Ctrl-C in the CLI or a dropped SSH connection never reaches it or its
children. The child's stdout/stderr go straight to files (no pipe to break), so even the
scheduler's own death does not stop a run: the next scheduler adopts it and, once it ends,
judges it from those files.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from qtui.core.jobs.finalize import failure_words, finalize_job, mark_failed
from qtui.core.jobs.procs import create_time, lock_path, log, log_path, scheduler_running, signal_group
from qtui.core.jobs.queue import Job, JobQueue
from qtui.core.jobs.runner import POLL_S, start_child, wait_adopted, wait_child
from qtui.core.jobs.screening import after_job, fail_batch, prepare_window, resume

MAX_BACKOFF_S = 10.0
"""longest wait between attempts to take a job while the queue cannot be written (disk full)"""

__all__ = ["POLL_S", "Scheduler", "ensure_scheduler", "scheduler_running", "serve", "slot_gpu_env"]


class Scheduler:
    """Every step after a child exits is guarded: whatever goes wrong while a job is judged or
    recorded ends THAT job as failed, with the reason in words in its state and the traceback
    in scheduler.log, and its slot goes on to the next job. No job is left "running"."""

    def __init__(self, data_dir: Path, slots: int = 1) -> None:
        self.queue = JobQueue(data_dir)
        self.slots = max(1, slots)
        self.stranded: set[str] = set()
        """jobs whose failure could not even be written: left to the next scheduler"""
        self._lock = threading.Lock()
        self._last_claim_error: str | None = None
        self._screen_followups: list[Job] = []
        """screening jobs failed while claiming (their base failed): their hook runs once the
        queue lock is released (flock is not re-entrant)"""

    # -- choosing work ---------------------------------------------------------------------
    def _claim_next(self, slot: int) -> tuple[Job | None, bool]:
        """Under the queue lock: mark the next runnable job running. Returns (job, any_pending)."""
        with self.queue.locked():
            jobs = self.queue.jobs()
            by_id = {j.id: j for j in jobs}
            for job in jobs:
                if job.state.status != "queued" or job.spec.depends_on in self.stranded:
                    continue
                dep = by_id.get(job.spec.depends_on) if job.spec.depends_on else None
                if job.spec.depends_on and dep is None:
                    self._fail_unlocked(job, "the base generation job it needs was removed")
                    continue
                if dep is not None and dep.state.status in ("failed", "cancelled"):
                    self._fail_unlocked(job, f"the base generation it needs {dep.state.status}: {dep.state.reason or ''}".rstrip(": "))
                    continue
                if dep is not None and dep.state.status != "done":
                    continue
                job.state.status = "running"
                job.state.slot = slot
                job.state.started_at = time.time()
                self.queue.write_state(job)
                return job, True
            return None, self._pending(jobs)

    def _pending(self, jobs: list[Job]) -> bool:
        """Work this scheduler can still do or wait for. Jobs it could not record (and those
        that wait on them) do not count: waiting on them would never end."""
        return any(
            (j.state.status == "queued" and j.spec.depends_on not in self.stranded)
            or (j.state.status == "running" and j.id not in self.stranded)
            for j in jobs
        )

    def has_pending(self) -> bool:
        return self._pending(self.queue.jobs())

    def _fail_unlocked(self, job: Job, reason: str) -> None:
        job.state.status = "failed"
        job.state.reason = reason
        job.state.ended_at = time.time()
        self.queue.write_state(job)
        if job.spec.screen:
            with self._lock:
                self._screen_followups.append(job)

    def _screen_followup(self) -> None:
        with self._lock:
            todo, self._screen_followups = self._screen_followups, []
        for job in todo:
            self._advance_screen(job)

    # -- running ---------------------------------------------------------------------------
    def _env(self, job: Job, slot: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_ARG_")}
        env.update(job.spec.env)
        if self.slots > 1 and "CUDA_VISIBLE_DEVICES" not in job.spec.env:
            env.update(slot_gpu_env(slot, os.environ))
        return env

    def run_job(self, job: Job, slot: int) -> None:
        try:
            # a screening job runs on a window of the base file: cut it (or find it cached)
            prepare_window(self.queue, job)
        except Exception as exc:
            self._give_up(job, "could not cut the screening window from the base file", exc)
            self._advance_screen(job)
            return
        try:
            proc = start_child(job, self._env(job, slot))
        except Exception as exc:
            self._give_up(job, f"could not start {job.spec.argv[0]}", exc)
            return
        try:
            self.queue.update(job.id, pid=proc.pid, pid_started=create_time(proc.pid))
        except Exception as exc:
            # Without its pid on disk a later scheduler could not tell that the child still
            # runs, and would judge a half-written output: stop the child now instead.
            signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            self._give_up(job, "qtui could not record that the job started", exc)
            return
        self._finalize(job, wait_child(self.queue, job.id, proc))

    def adopt(self, job: Job) -> None:
        """A job left 'running' by a scheduler that died: wait for its child, then judge it."""
        try:
            wait_adopted(self.queue, job)
        except Exception as exc:  # e.g. psutil failing: judge it now rather than never
            log(self.queue.data_dir, f"job {job.id}: could not follow its child", exc)
        self._finalize(job, None)  # exit code unknown: judged by content alone

    def _finalize(self, job: Job, exit_code: int | None) -> None:
        try:
            finalize_job(self.queue, job.id, exit_code)
        except Exception as exc:
            self._give_up(job, "qtui could not record the result", exc)
        self._advance_screen(job)

    def _advance_screen(self, job: Job) -> None:
        """After a screening job ends: the next stage of its batch once the stage is over. A
        failure here ends the batch with the reason in words (its queued jobs fail with it),
        never leaves it waiting for a stage that will not come."""
        if not job.spec.screen:
            return
        try:
            after_job(self.queue, job.id)
        except Exception as exc:
            self._fail_screen(str(job.spec.screen.get("batch")), exc)

    def _fail_screen(self, batch: str, exc: BaseException) -> None:
        data_dir = self.queue.data_dir
        reason = failure_words("qtui could not decide the next screening stage", exc, log_path(data_dir))
        log(data_dir, f"screening {batch}: {reason}", exc)
        try:
            fail_batch(self.queue, batch, reason)
        except Exception as again:
            log(data_dir, f"screening {batch}: could not record its failure either", again)

    def _give_up(self, job: Job, doing: str, exc: BaseException) -> None:
        """End a job whose bookkeeping raised: failed with the reason, traceback in the log."""
        data_dir = self.queue.data_dir
        reason = failure_words(doing, exc, log_path(data_dir))
        log(data_dir, f"job {job.id} ({job.spec.label or job.spec.kind}): {reason}", exc)
        try:
            mark_failed(self.queue, job.id, reason)
        except Exception as again:
            log(data_dir, f"job {job.id}: could not record its failure either; the next scheduler will try again", again)
            with self._lock:
                self.stranded.add(job.id)

    # -- main loop -------------------------------------------------------------------------
    def _slot_loop(self, slot: int) -> None:
        backoff = POLL_S
        while True:
            try:
                job, pending = self._claim_next(slot)
                self._screen_followup()
            except Exception as exc:
                if not self.queue.root.is_dir():
                    return  # the data dir is gone: nothing left to run, nobody to tell
                # The queue cannot be written (a full disk): wait, longer each time, rather
                # than spin; the job stays queued and starts once there is room again.
                self._note_claim_error(exc)
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = POLL_S
            if job is not None:
                try:
                    self.run_job(job, slot)
                except Exception as exc:  # run_job guards each step; this is the last net
                    self._give_up(job, "qtui could not run the job", exc)
            elif pending:
                time.sleep(POLL_S)
            else:
                return

    def _note_claim_error(self, exc: BaseException) -> None:
        text = f"could not take the next job from the queue ({exc}); trying again"
        with self._lock:
            if text == self._last_claim_error:
                return  # logged once, not every few seconds
            self._last_claim_error = text
        log(self.queue.data_dir, text, exc)

    def run(self) -> None:
        # Stages a scheduler killed between a job's end and its hook left undone.
        for batch, exc in resume(self.queue):
            self._fail_screen(batch, exc)
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
            if not self.has_pending():
                return
            time.sleep(POLL_S)  # never a tight loop, whatever the queue says


# -- singleton + spawning ------------------------------------------------------------------
def serve(data_dir: Path, slots: int) -> int:
    """Run until the queue is empty. Exits at once if another scheduler holds the lock."""
    path = lock_path(data_dir)
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
            if sched.has_pending():
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
    log_file = log_path(data_dir)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    pkg_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(log_file, "ab") as fh:
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

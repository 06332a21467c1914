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
from dataclasses import replace
from pathlib import Path

from qtui.core.cluster.survey import survey_path
from qtui.core.cluster.watch import watching
from qtui.core.gguf.reader import GGUFError
from qtui.core.gpu import Nvml
from qtui.core.jobs.finalize import failure_words, finalize_job, mark_failed
from qtui.core.jobs.gpus import AUTO, Inventory, Want, group_env, inventory, names_own_devices, pack, parse_gpus_per_run
from qtui.core.jobs.procs import create_time, lock_path, log, log_path, scheduler_running, signal_group
from qtui.core.jobs.queue import Job, JobQueue
from qtui.core.jobs.remote import ClusterSeats, RemoteFailed, asked_gpus, orphan_words, run_on_cluster
from qtui.core.jobs.runner import POLL_S, start_child, wait_adopted, wait_child
from qtui.core.jobs.screening import after_job, fail_batch, prepare_window, resume
from qtui.core.llama.memory import MemoryEstimateError, run_memory

MAX_BACKOFF_S = 10.0
"""longest wait between attempts to take a job while the queue cannot be written (disk full)"""
SETTLE_S = 3.0
"""after a job ends, how long its GPU memory may still show as used: no run is refused for
want of memory on a reading that recent"""
RESAMPLE_S = 1.0
"""how often free GPU memory is read again while an "auto" job waits"""

__all__ = ["POLL_S", "Scheduler", "ensure_scheduler", "scheduler_running", "serve", "slot_gpu_env"]


class Scheduler:
    """Every step after a child exits is guarded: whatever goes wrong while a job is judged or
    recorded ends THAT job as failed, with the reason in words in its state and the traceback
    in scheduler.log, and its GPUs go on to the next job. No job is left "running".

    Jobs take groups of GPUs (jobs/gpus.py): each job holds the GPUs it asked for while it
    runs, and the child sees only those. Without any GPU, `slots` jobs run at once on the CPU.
    `nvml` and `parent_env` are what the GPUs are read from (tests give a fake NVML)."""

    def __init__(self, data_dir: Path, slots: int = 1, nvml: Nvml | None = None,
                 parent_env: Mapping[str, str] | None = None) -> None:
        self.queue = JobQueue(data_dir)
        self.slots = max(1, slots)
        self._nvml = nvml
        self._parent = dict(os.environ if parent_env is None else parent_env)
        self.gpus: Inventory = inventory(self._parent, None, self.slots)
        """the GPUs jobs may use; read from NVML when run() starts"""
        self._held: dict[str, list[int]] = {}
        """job id -> the GPU keys it holds (running or adopted jobs)"""
        self._passed: dict[str, int] = {}
        self._wants: dict[str, Want] = {}
        self._last_end = 0.0
        self._last_sample = 0.0
        self._wake = threading.Event()
        self._seats = ClusterSeats(note=lambda text: log(self.queue.data_dir, text))
        self.stranded: set[str] = set()
        """jobs whose failure could not even be written: left to the next scheduler"""
        self._lock = threading.Lock()
        self._last_claim_error: str | None = None
        self._screen_followups: list[Job] = []
        """screening jobs failed while claiming (their base failed): their hook runs once the
        queue lock is released (flock is not re-entrant)"""

    # -- choosing work ---------------------------------------------------------------------
    def _claim(self) -> tuple[list[Job], bool]:
        """Under the queue lock: mark running every job that can start now, each with its GPU
        group (jobs/gpus.pack: queue order, backfill, then a reservation). Returns (jobs,
        any_pending)."""
        with self.queue.locked():
            jobs = self.queue.jobs()
            by_id = {j.id: j for j in jobs}
            runnable: list[Job] = []
            for job in jobs:
                if job.state.status != "queued" or job.spec.depends_on in self.stranded or job.id in self._held:
                    continue
                dep = by_id.get(job.spec.depends_on) if job.spec.depends_on else None
                if job.spec.depends_on and dep is None:
                    self._fail_unlocked(job, "the base generation job it needs was removed")
                    continue
                if dep is not None and dep.state.status in ("failed", "cancelled"):
                    self._fail_unlocked(job, f"the base generation it needs {dep.state.status}: {dep.state.reason or ''}".rstrip(": "))
                    continue
                if dep is not None and dep.state.status != "done":
                    if job.spec.cluster:  # its base runs first: join and warm the cluster meanwhile
                        self._seats.prepare(str(job.spec.cluster), asked_gpus(job))
                    continue
                runnable.append(job)
            remote = self._claim_remote([j for j in runnable if j.spec.cluster], jobs)
            runnable = [j for j in runnable if not j.spec.cluster]
            if not runnable:
                return remote, bool(remote) or self._pending(jobs)
            with self._lock:
                busy = {k for keys in self._held.values() for k in keys}
            for j in jobs:  # a run this scheduler does not follow (yet) still holds its GPUs;
                # a stranded one ended (only its record could not be written): it holds none
                if j.state.status == "running" and j.id not in self._held and j.id not in self.stranded:
                    busy.update(self._keys_of(j))
            self._refresh(runnable)
            waiting = [(j.id, self._want(j)) for j in runnable]
            # a speed run (timed) running here or under a scheduler before this one
            solo = any(j.state.status == "running" and j.spec.kind == "speed" and j.id not in self.stranded and
                       not j.spec.cluster for j in jobs)
            plan = pack(waiting, self.gpus, busy, self._passed, settled=time.time() - self._last_end > SETTLE_S,
                        solo_running=solo)
            for job_id, reason in plan.refused:
                self._fail_unlocked(by_id[job_id], reason)
            started: list[Job] = []
            for job_id, group in plan.starts:
                job = by_id[job_id]
                job.state.status = "running"
                # GPUs are recorded; places for CPU jobs are not GPUs and are kept here only
                job.state.gpus = [d.key for d in group] if self.gpus.real else None
                job.state.slot = group[0].key if group else None
                job.state.started_at = time.time()
                try:
                    self.queue.write_state(job)
                except Exception:
                    if not started:
                        raise
                    break  # those already marked run; this one stays queued for the next look
                with self._lock:
                    self._held[job.id] = [d.key for d in group]
                started.append(job)
            return remote + started, True

    def _keys_of(self, job: Job) -> list[int]:
        """The GPUs a running job holds: recorded in its state (a job of an older qtui: its slot)."""
        if job.state.gpus is not None:
            return list(job.state.gpus)
        return [job.state.slot] if job.state.slot is not None else []

    def _want(self, job: Job) -> Want:
        """What a job asks for, worked out once (an "auto" job's estimate reads its GGUF header)."""
        if job.id in self._wants:
            return self._wants[job.id]
        spec = job.spec
        label = spec.label or spec.kind
        want = Want(label=label)
        if names_own_devices(spec.argv, spec.env):
            want = Want(exclusive=True, label=label)
        else:
            try:
                asked = parse_gpus_per_run(spec.gpus_per_run if spec.gpus_per_run is not None else 1)
            except ValueError as exc:
                log(self.queue.data_dir, f"job {job.id}: {exc}; using 1")
                asked = 1
            if asked == AUTO and self.gpus.real:
                try:
                    model = spec.model.get("path")
                    if not model:
                        raise MemoryEstimateError("the job names no model file")
                    want = Want(memory=run_memory(Path(str(model)), spec.argv), label=label)
                except (GGUFError, MemoryEstimateError, OSError) as exc:
                    log(self.queue.data_dir, f"job {job.id}: cannot estimate its GPU memory ({exc}); giving it one GPU")
            elif isinstance(asked, int):
                want = Want(count=asked, label=label)
        if spec.kind == "speed":
            want = replace(want, solo=True)  # timed: no other job beside it
        self._wants[job.id] = want
        return want

    def _refresh(self, runnable: list[Job]) -> None:
        """Read the free GPU memory again while an "auto" job waits (at most every RESAMPLE_S)."""
        if not self.gpus.real or self._nvml is None or time.time() - self._last_sample < RESAMPLE_S:
            return
        if any(self._want(j).memory is not None for j in runnable):
            self._last_sample = time.time()
            self.gpus = inventory(self._parent, self._nvml.sample(), self.slots)

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
        """The child's environment: qtui's, without llama.cpp's LLAMA_ARG_* (the command line
        says everything), the job's own variables, and the GPU group it holds. A job that
        names its own devices keeps them untouched (it holds every GPU, see jobs/gpus.py)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_ARG_")}
        env.update(job.spec.env)
        if names_own_devices(job.spec.argv, job.spec.env):
            return env
        with self._lock:
            keys = self._held.get(job.id) or self._keys_of(job) or [slot]
        group = [d for d in self.gpus.devices if d.key in keys]
        if group:
            env.update(group_env(self.gpus, group))
        return env

    def run_job(self, job: Job, slot: int) -> None:
        try:
            # a screening job runs on a window of the base file: cut it (or find it cached)
            prepare_window(self.queue, job)
        except Exception as exc:
            self._give_up(job, "could not cut the screening window from the base file", exc)
            self._advance_screen(job)
            return
        if job.spec.cluster:
            self._run_remote(job)
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
        exit_code, cpu_s = wait_child(self.queue, job.id, proc)
        try:
            self.queue.update(job.id, cpu_s=round(cpu_s, 3))
        except Exception as exc:  # a figure for the record, not worth failing the run over
            log(self.queue.data_dir, f"job {job.id}: could not record its CPU time", exc)
        self._finalize(job, exit_code)

    def _claim_remote(self, runnable: list[Job], jobs: list[Job]) -> list[Job]:
        """Under the queue lock: mark running the cluster jobs the cluster has room for now.
        They hold no GPU of this machine; Ray picks each one's node when it starts."""
        started: list[Job] = []
        for job in runnable:
            address = str(job.spec.cluster)
            try:
                room = self._seats.capacity(address, asked_gpus(job)) - sum(
                    1 for j in jobs if j.spec.cluster == address and j.state.status == "running")
            except RemoteFailed as exc:
                self._fail_unlocked(job, str(exc))
                continue
            if room <= 0:
                continue
            job.state.status = "running"
            job.state.started_at = time.time()
            job.state.node = {"cluster": address}
            self.queue.write_state(job)
            with self._lock:
                self._held[job.id] = []
            started.append(job)
        return started

    def _run_remote(self, job: Job) -> None:
        """A cluster job: Ray runs it on a node, its output comes back into its folder here."""
        data_dir = self.queue.data_dir
        try:
            # while cluster jobs run, the cluster's GPUs are surveyed into the data dir for the
            # app's GPU panel (the app itself never joins Ray)
            with watching(str(job.spec.cluster), survey_path(data_dir), on_error=lambda text: log(data_dir, text)):
                exit_code = run_on_cluster(self.queue, job)
        except RemoteFailed as exc:  # its node died, Ray is missing...: the reason is the words
            self._fail_remote(job, str(exc))
            return
        except Exception as exc:
            self._give_up(job, "qtui could not run the job on the Ray cluster", exc)
            self._advance_screen(job)
            return
        self._finalize(job, exit_code)

    def _fail_remote(self, job: Job, reason: str) -> None:
        log(self.queue.data_dir, f"job {job.id} ({job.spec.label or job.spec.kind}): {reason}")
        try:
            mark_failed(self.queue, job.id, reason)
        except Exception as exc:
            self._give_up(job, reason, exc)
        self._advance_screen(job)

    def adopt(self, job: Job) -> None:
        """A job left 'running' by a scheduler that died: wait for its child, then judge it.

        A cluster job cannot be adopted: its task died with the old scheduler (its Ray driver),
        so waiting for it would never end. It fails with that reason; `qtui retry` runs it again
        (not re-queued by itself: a job that kills its scheduler would otherwise loop)."""
        if job.spec.cluster:
            self._fail_remote(job, orphan_words(job))
            return
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
    def _run_held(self, job: Job) -> None:
        """Run a claimed job on its GPUs, then give them back and wake the loop."""
        try:
            self.run_job(job, job.state.slot or 0)
        except Exception as exc:  # run_job guards each step; this is the last net
            self._give_up(job, "qtui could not run the job", exc)
        finally:
            self._release(job)

    def _adopt_held(self, job: Job) -> None:
        try:
            self.adopt(job)
        finally:
            self._release(job)

    def _release(self, job: Job) -> None:
        with self._lock:
            self._held.pop(job.id, None)
            self._wants.pop(job.id, None)
            self._last_end = time.time()
        self._wake.set()

    def _loop(self, threads: list[threading.Thread]) -> None:
        """Start every job that can start, each in its own thread, until nothing is left to
        run or wait for; woken early whenever a job ends."""
        backoff = POLL_S
        while True:
            threads = [t for t in threads if t.is_alive()]
            try:
                started, pending = self._claim()
                self._screen_followup()
            except Exception as exc:
                if not self.queue.root.is_dir() and not threads:
                    return  # the data dir is gone: nothing left to run, nobody to tell
                # The queue cannot be written (a full disk): wait, longer each time, rather
                # than spin; the job stays queued and starts once there is room again.
                self._note_claim_error(exc)
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = POLL_S
            for job in started:
                t = threading.Thread(target=self._run_held, args=(job,), daemon=True)
                t.start()
                threads.append(t)
            if not started and not threads and not pending:
                return
            if not started:
                self._wake.wait(POLL_S)
                self._wake.clear()

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
        if self._nvml is None:
            self._nvml = Nvml()
        self.gpus = inventory(self._parent, self._nvml.sample(), self.slots)
        self._last_sample = time.time()
        orphans = [j for j in self.queue.jobs() if j.state.status == "running"]
        with self._lock:
            for j in orphans:  # a run left by a scheduler that died keeps its GPUs until it ends
                self._held[j.id] = self._keys_of(j)
        threads = [threading.Thread(target=self._adopt_held, args=(j,), daemon=True) for j in orphans]
        for t in threads:
            t.start()
        while True:
            self._loop(threads)
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

"""Where the app's live data comes from: the on-disk job queue, the jobs' output files, the
results store and NVML, polled on thread workers and turned into Messages.

The app never reads those itself; it is handed a Source. The real one (FsSource) watches a data
dir, a read-only one (RecordsSource) serves `--results PATH`, and tests hand in a
ScriptedSource, so snapshots and pilot tests go through the same Message path as a real run.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from textual.message import Message

from qtui.core.cluster.survey import fresh_survey, survey_path
from qtui.core.gpu import GpuSnapshot
from qtui.core.jobs.live import LiveTracker
from qtui.core.jobs.queue import FINISHED, Job, JobQueue
from qtui.core.results.store import ResultStore, load_records
from qtui.ui.messages import ClusterSurveyed, GpuSampled, JobsChanged, LiveRun, RecordsChanged, RunProgress

log = logging.getLogger(__name__)


class Source(Protocol):
    queue: JobQueue | None
    """where queue actions (cancel, retry, ...) go; None when the source is read-only"""

    def poll(self) -> list[Message]: ...

    def close(self) -> None: ...


class JobCache:
    """JobQueue.jobs() without re-reading unchanged jobs: two stats per job instead of two JSON
    parses, so a long job history costs next to nothing to poll three times a second."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self._cache: dict[str, tuple[tuple[int, ...], Job]] = {}

    def jobs(self) -> list[Job]:
        try:
            entries = list(os.scandir(self.queue.root))
        except FileNotFoundError:
            return []
        out: list[Job] = []
        fresh: dict[str, tuple[tuple[int, ...], Job]] = {}
        for e in entries:
            try:
                a, b = os.stat(os.path.join(e.path, "job.json")), os.stat(os.path.join(e.path, "state.json"))
            except OSError:
                continue  # not a job (or one being created or removed right now)
            # Files are replaced atomically, so a new inode means new content.
            sig = (a.st_ino, a.st_mtime_ns, a.st_size, b.st_ino, b.st_mtime_ns, b.st_size)
            hit = self._cache.get(e.name)
            if hit is not None and hit[0] == sig:
                job = hit[1]
            else:
                loaded = self.queue.get(e.name)
                if loaded is None:
                    continue
                job = loaded
            fresh[e.name] = (sig, job)
            out.append(job)
        self._cache = fresh
        out.sort(key=lambda j: (j.spec.seq, j.spec.created_at, j.id))  # JobQueue.jobs()'s order
        return out


class FsSource:
    """The queue and results under a data dir. Re-attaching is free: a new LiveTracker replays
    the job's files, so a qtui opened mid-run shows the whole curve so far."""

    def __init__(self, data_dir: Path, replay_per_poll: int = 4) -> None:
        self.queue: JobQueue | None = JobQueue(data_dir)
        self._jobs = JobCache(self.queue)
        self.store = ResultStore(data_dir)
        self._replay_per_poll = replay_per_poll
        self._jobs_sig: tuple[object, ...] | None = None
        self._records_sig: tuple[int, int] | None = None
        self._watches: dict[str, LiveTracker] = {}

    def poll(self) -> list[Message]:
        out: list[Message] = []
        jobs = self._jobs.jobs()
        sig = tuple((j.id, j.state.status, j.spec.seq, j.state.pid, j.state.reason, j.state.cancel_requested_at)
                    for j in jobs)
        if sig != self._jobs_sig:
            self._jobs_sig = sig
            out.append(JobsChanged(jobs))
        out.extend(self._follow(jobs))
        records = self._records_changed()
        if records is not None:
            out.append(records)
        return out

    def _follow(self, jobs: list[Job]) -> list[Message]:
        out: list[Message] = []
        live_ids = {j.id for j in jobs}
        replays = 0
        for job in jobs:
            w = self._watches.get(job.id)
            if job.state.status == "queued":
                if w is not None:  # retried: its old files are gone, start afresh when it runs
                    w.close()
                    del self._watches[job.id]
                    out.append(RunProgress(LiveRun(job.id)))
                continue
            if w is None:
                if job.state.status in FINISHED:
                    # Old finished jobs are replayed a few per poll so a long history never
                    # stalls the first screen.
                    if replays >= self._replay_per_poll:
                        continue
                    replays += 1
                w = self._watches[job.id] = LiveTracker(job)
                changed = True
            elif w.closed:
                continue
            else:
                changed = False
            changed = w.feed(job) or changed
            if job.state.status in FINISHED:
                # The state is written after the child exited: this poll drained everything.
                w.close()
                changed = True
            if changed:
                out.append(RunProgress(w.snapshot()))
        for gone in set(self._watches) - live_ids:
            self._watches.pop(gone).close()
        return out

    def _records_changed(self) -> RecordsChanged | None:
        try:
            st = os.stat(self.store.root)
            sig = (st.st_mtime_ns, st.st_ino)
        except FileNotFoundError:
            sig = (0, 0)
        if sig == self._records_sig:
            return None
        self._records_sig = sig
        res = self.store.load()
        return RecordsChanged(res.records, res.problems)

    def close(self) -> None:
        for w in self._watches.values():
            w.close()
        self._watches.clear()


class RecordsSource:
    """`qtui --results PATH`: the records in PATH, read once; nothing can be queued."""

    queue: JobQueue | None = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self._done = False

    def poll(self) -> list[Message]:
        if self._done:
            return []
        self._done = True
        res = load_records(self.path)
        return [RecordsChanged(res.records, res.problems)]

    def close(self) -> None:
        pass


class ScriptedSource:
    """Hands out prepared batches of messages, one batch per poll (tests, snapshots)."""

    def __init__(self, batches: list[list[Message]], queue: JobQueue | None = None) -> None:
        self.batches = list(batches)
        self.queue = queue

    def poll(self) -> list[Message]:
        return self.batches.pop(0) if self.batches else []

    def close(self) -> None:
        pass


class Pump:
    """Calls `step()` every `interval` seconds on a worker thread and posts what it returns.

    `wake()` runs the next step at once (after a user action, the queue view should not lag a
    whole interval); `stop()` ends the loop without waiting for the interval to pass.
    """

    def __init__(self, step: Callable[[], list[Message]], post: Callable[[Message], object],
                 interval: float, until: Callable[[], bool] | None = None) -> None:
        self.step = step
        self.post = post
        self.interval = interval
        self.until = until
        self._wake = threading.Event()
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self.step()
            except Exception:  # one damaged file must not kill the live view for good
                log.exception("polling failed")
                messages = []
            for m in messages:
                self.post(m)
            if self.until is not None and self.until():
                return
            self._wake.wait(self.interval)
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()


class GpuSampler(Protocol):
    def sample(self) -> GpuSnapshot: ...


def gpu_pump(sampler: GpuSampler, post: Callable[[Message], object], interval: float) -> Pump:
    """One GPU sample per interval; once NVML is known to be missing for good, stop sampling
    (the panel keeps showing the reason)."""
    return Pump(lambda: [GpuSampled(sampler.sample())], post, interval,
                until=lambda: bool(getattr(sampler, "permanently_unavailable", False)))


def cluster_pump(data_dir: Callable[[], Path], post: Callable[[Message], object], interval: float) -> Pump:
    """The scheduler's survey of its Ray cluster (a file in the data dir; the app never joins
    Ray itself), read once per interval; a missing or stale one posts None."""
    return Pump(lambda: [ClusterSurveyed(fresh_survey(survey_path(data_dir())))], post, interval)

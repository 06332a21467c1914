"""The job queue on disk: what to run, in which order, and what became of it.

A job is a folder `<data_dir>/jobs/<id>/` holding job.json (what to run), state.json (what
happened), and the child's raw stdout/stderr. Everything a later qtui needs to re-attach
to a running job, or to finish the bookkeeping of one that ended while nobody watched, is
in that folder: no state lives only in a process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from qtui.core.fsutil import atomic_write_json, read_json
from qtui.core.results.store import new_id

JobKind = Literal["base", "kld"]
JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
ACTIVE: tuple[str, ...] = ("queued", "running")
FINISHED: tuple[str, ...] = ("done", "failed", "cancelled")
TERM_GRACE_S = 5.0


class Outcome(str):
    """What a user action on a job did, in words, and whether it was done (`ok`) or refused.

    A str, so the app shows it as it is; the command line reads `ok` (and `state`, the job's
    status when it was refused, None if there was no such job) for its exit status instead
    of parsing the words.
    """

    ok: bool
    state: str | None

    def __new__(cls, text: str, ok: bool = True, state: str | None = None) -> Outcome:
        self = super().__new__(cls, text)
        self.ok, self.state = ok, state
        return self


@dataclass
class JobSpec:
    kind: JobKind
    argv: list[str]
    """the full command; argv[0] is the llama-perplexity binary"""
    env: dict[str, str] = field(default_factory=dict)
    """variables set on top of the sanitised environment (LD_LIBRARY_PATH, ...)"""
    model: dict[str, Any] = field(default_factory=dict)
    base: dict[str, Any] = field(default_factory=dict)
    corpus: dict[str, Any] = field(default_factory=dict)
    ctx: int | None = None
    chunks: int | None = None
    llama: dict[str, Any] = field(default_factory=dict)
    output: str | None = None
    """base jobs: where the finished base file goes (the child writes `output + .partial`)"""
    depends_on: str | None = None
    batch: str | None = None
    label: str = ""
    id: str = field(default_factory=new_id)
    seq: float = field(default_factory=time.time)
    created_at: float = field(default_factory=time.time)


@dataclass
class JobState:
    status: JobStatus = "queued"
    pid: int | None = None
    pid_started: float | None = None
    """the child's create time: a recycled pid must not be mistaken for our child"""
    slot: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    reason: str | None = None
    result_id: str | None = None
    cancel_requested_at: float | None = None
    attempts: int = 0
    """automatic re-runs after llama.cpp lost its output tail (see finalize.MAX_AUTO_RETRIES)"""


@dataclass
class Job:
    spec: JobSpec
    state: JobState
    dir: Path

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def stdout_path(self) -> Path:
        return self.dir / "stdout"

    @property
    def stderr_path(self) -> Path:
        return self.dir / "stderr"


class JobQueue:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "jobs"

    # -- locking ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """An exclusive lock over queue mutations, shared by every qtui process on the box."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- reading ---------------------------------------------------------------------------
    def jobs(self) -> list[Job]:
        if not self.root.is_dir():
            return []
        out: list[Job] = []
        for d in self.root.iterdir():
            job = self._load(d)
            if job is not None:
                out.append(job)
        out.sort(key=lambda j: (j.spec.seq, j.spec.created_at, j.id))
        return out

    def get(self, job_id: str) -> Job | None:
        return self._load(self.root / job_id)

    def _load(self, d: Path) -> Job | None:
        try:
            spec = JobSpec(**read_json(d / "job.json"))
            state = JobState(**read_json(d / "state.json"))
        except (OSError, ValueError, TypeError):
            return None  # half-created or foreign folder: not a job
        return Job(spec, state, d)

    # -- writing ---------------------------------------------------------------------------
    def add(self, spec: JobSpec) -> Job:
        with self.locked():
            return self._add_unlocked(spec)

    def add_many(self, specs: list[JobSpec]) -> list[Job]:
        with self.locked():
            return [self._add_unlocked(s) for s in specs]

    def add_many_locked(self, specs: list[JobSpec]) -> list[Job]:
        """add_many for a caller already inside `locked()` (flock is not re-entrant), so that
        what to add is decided and added in one hold of the lock. All or nothing: on an
        error the jobs added so far are removed again and the error is raised."""
        added: list[Job] = []
        current: Path | None = None
        try:
            for s in specs:
                current = self.root / s.id  # a folder this call makes: never one already there
                added.append(self._add_unlocked(s))
        except BaseException:
            for d in [j.dir for j in added] + ([current] if current is not None else []):
                shutil.rmtree(d, ignore_errors=True)
            raise
        return added

    def _add_unlocked(self, spec: JobSpec) -> Job:
        d = self.root / spec.id
        d.mkdir(parents=True, exist_ok=False)
        state = JobState()
        # state.json first: job.json's presence is what makes the folder a job.
        atomic_write_json(d / "state.json", asdict(state))
        atomic_write_json(d / "job.json", asdict(spec))
        return Job(spec, state, d)

    def write_state(self, job: Job) -> None:
        atomic_write_json(job.dir / "state.json", asdict(job.state))

    def write_spec(self, job: Job) -> None:
        atomic_write_json(job.dir / "job.json", asdict(job.spec))

    def update(self, job_id: str, **changes: Any) -> Job | None:
        with self.locked():
            job = self.get(job_id)
            if job is None:
                return None
            for k, v in changes.items():
                setattr(job.state, k, v)
            self.write_state(job)
            return job

    # -- user actions ------------------------------------------------------------------------
    def cancel(self, job_id: str) -> Outcome:
        """Cancel a queued job at once; ask a running one to stop (SIGTERM to its group).

        The scheduler escalates to SIGKILL after TERM_GRACE_S and records the outcome.
        """
        with self.locked():
            job = self.get(job_id)
            if job is None:
                return Outcome(f"no job {job_id}", ok=False)
            if job.state.status == "queued":
                job.state.status = "cancelled"
                job.state.reason = "cancelled before it started"
                job.state.ended_at = time.time()
                self.write_state(job)
                return Outcome(f"cancelled {job.spec.label or job_id}")
            if job.state.status != "running":
                # Nothing left to stop: what the user wanted holds already.
                return Outcome(f"{job.spec.label or job_id} is already {job.state.status}")
            job.state.cancel_requested_at = time.time()
            self.write_state(job)
            pid = job.state.pid
        if pid is not None:
            signal_group(pid, signal.SIGTERM)
        return Outcome(f"stopping {job.spec.label or job_id}")

    def retry(self, job_id: str) -> Outcome:
        with self.locked():
            job = self.get(job_id)
            if job is None:
                return Outcome(f"no job {job_id}", ok=False)
            if job.state.status not in ("failed", "cancelled"):
                return Outcome(f"{job.spec.label or job_id} is {job.state.status}: only failed or cancelled jobs can be retried",
                               ok=False, state=job.state.status)
            job.state = JobState()
            job.spec.seq = time.time()  # to the back of the queue
            self.write_spec(job)
            self.write_state(job)
            for p in (job.stdout_path, job.stderr_path):
                p.unlink(missing_ok=True)
            return Outcome(f"queued {job.spec.label or job_id} again")

    def remove(self, job_id: str) -> Outcome:
        with self.locked():
            job = self.get(job_id)
            if job is None:
                return Outcome(f"no job {job_id}", ok=False)
            if job.state.status == "running":
                return Outcome(f"cannot remove {job.spec.label or job_id}: it is running; cancel it first",
                               ok=False, state="running")
            for p in sorted(job.dir.iterdir(), reverse=True):
                p.unlink(missing_ok=True)
            job.dir.rmdir()
            return Outcome(f"removed {job.spec.label or job_id}")

    def move(self, job_id: str, delta: int) -> bool:
        """Move a queued job up (delta < 0) or down among the queued jobs."""
        with self.locked():
            queued = [j for j in self.jobs() if j.state.status == "queued"]
            idx = next((i for i, j in enumerate(queued) if j.id == job_id), None)
            if idx is None:
                return False
            other = idx + (1 if delta > 0 else -1)
            if not 0 <= other < len(queued):
                return False
            a, b = queued[idx], queued[other]
            a.spec.seq, b.spec.seq = b.spec.seq, a.spec.seq
            if a.spec.seq == b.spec.seq:
                a.spec.seq += 1e-6 if delta > 0 else -1e-6
            self.write_spec(a)
            self.write_spec(b)
            return True

    def clear_finished(self) -> int:
        n = 0
        for job in self.jobs():
            if job.state.status in FINISHED:
                self.remove(job.id)
                n += 1
        return n


def signal_group(pid: int, sig: int) -> None:
    # Children run in their own session, so the group id is the child's pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)

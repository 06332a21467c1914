"""The job queue on disk: what to run, in which order, and what became of it.

A job is a folder `<data_dir>/jobs/<id>/` holding job.json (what to run), state.json (what
happened), and the child's raw stdout/stderr. Everything a later qtui needs to re-attach
to a running job, or to finish the bookkeeping of one that ended while nobody watched, is
in that folder: no state lives only in a process.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from qtui.core.fsutil import atomic_write_json, file_lock, read_json
from qtui.core.jobs.procs import alive, scheduler_running, signal_group
from qtui.core.results.store import new_id

JobKind = Literal["base", "kld", "speed"]
"""speed: llama-bench on a variant (tokens per second), independent of the base and KLD jobs"""
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
    """the full command; argv[0] is the llama-perplexity binary (llama-bench for a speed job)"""
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
    window: list[int] | None = None
    """screening: the chunks [a, b) (0-based) of the full base file this KLD job runs on; the
    runner cuts that window from the finished base file (base["file"]) before the child starts"""
    screen: dict[str, Any] | None = None
    """screening: {"batch": id, "stage": n, "key": variant key, "policy": {...}} (jobs/screening.py)"""
    label: str = ""
    gpus_per_run: int | str | None = None
    """GPUs this run asks for: a number, or "auto" (the fewest whose free memory holds the
    run's estimate); None: one. Kept with the job, so a queued job keeps what it was asked."""
    cluster: str | None = None
    """the Ray cluster that runs it ("auto", "ray://HOST:PORT", "HOST:PORT"); None: this machine"""
    base_argv: list[str] | None = None
    """cluster kld jobs: the base generation's command, so a node without the base file makes it"""
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
    gpus: list[int] | None = None
    """the GPUs it holds while it runs (NVML indices, as nvidia-smi numbers them; None on a
    box without GPU)"""
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    reason: str | None = None
    result_id: str | None = None
    cancel_requested_at: float | None = None
    node: dict[str, Any] | None = None
    """a cluster job: where it runs ({"cluster", "node_id", "ip", "hostname", "gpus", "pid"})"""
    attempts: int = 0
    """automatic re-runs after llama.cpp lost its output tail (see finalize.MAX_AUTO_RETRIES)"""
    cpu_s: float | None = None
    """the child's CPU time, user + system seconds (None: not seen to end by the scheduler
    that started it, or run on a cluster)"""


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
        with file_lock(self.root / ".lock"):
            yield

    # -- reading ---------------------------------------------------------------------------
    def jobs(self) -> list[Job]:
        if not self.root.is_dir():
            return []
        out: list[Job] = []
        for d in self.root.iterdir():
            if d.name.startswith("."):
                continue  # locks, and job folders still being made (see add_many_locked)
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
        return self.add_many([spec])[0]

    def add_many(self, specs: list[JobSpec]) -> list[Job]:
        with self.locked():
            return self.add_many_locked(specs)

    def add_many_locked(self, specs: list[JobSpec]) -> list[Job]:
        """add_many for a caller already inside `locked()` (flock is not re-entrant), so that
        what to add is decided and added in one hold of the lock.

        All or nothing: each job folder is made under a hidden temporary name and renamed into
        place once complete, so a full or unwritable disk leaves no half-made job folder and no
        half-queued sweep. On an error everything made so far is removed and the OSError raised."""
        made: list[tuple[Path, Job]] = []
        placed: list[Path] = []
        try:
            for spec in specs:
                made.append(self._make(spec))
            for tmp, job in made:
                if job.dir.exists():  # a folder this call makes: never one already there
                    raise FileExistsError(errno.EEXIST, "a job with this id exists", str(job.dir))
                os.rename(tmp, job.dir)
                placed.append(job.dir)
        except BaseException:
            for d in [tmp for tmp, _ in made] + placed:
                shutil.rmtree(d, ignore_errors=True)
            raise
        return [job for _, job in made]

    def _make(self, spec: JobSpec) -> tuple[Path, Job]:
        tmp = self.root / f".new-{spec.id}"
        tmp.mkdir(parents=True)
        try:
            state = JobState()
            atomic_write_json(tmp / "state.json", asdict(state))
            atomic_write_json(tmp / "job.json", asdict(spec))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return tmp, Job(spec, state, self.root / spec.id)

    def write_state(self, job: Job, last_resort: bool = False) -> None:
        """last_resort: on a full disk, rewrite the file in place (see _overwrite_in_place)."""
        path = job.dir / "state.json"
        try:
            atomic_write_json(path, asdict(job.state))
        except OSError as exc:
            if not last_resort or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            _overwrite_in_place(path, asdict(job.state))

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

    def fail(self, job_id: str, reason: str, status: JobStatus = "failed") -> None:
        """End a job with a reason, even on a full disk."""
        with self.locked():
            job = self.get(job_id)
            if job is None:
                return
            job.state.status = status
            job.state.reason = reason
            job.state.ended_at = time.time()
            self.write_state(job, last_resort=True)

    # -- user actions ------------------------------------------------------------------------
    def cancel(self, job_id: str) -> Outcome:
        """Cancel a queued job at once; ask a running one to stop (SIGTERM to its group).

        The scheduler escalates to SIGKILL after TERM_GRACE_S and records the outcome. A
        "running" job whose child is gone while no scheduler runs is ended here: nobody else
        would. One whose child lives on without a scheduler is ended by the next scheduler
        (which escalates too), started by whoever reads the queue next.
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
            if not alive(job.state.pid, job.state.pid_started) and not scheduler_running(self.data_dir):
                job.state.status = "cancelled"
                job.state.reason = "cancelled by the user (its run had already stopped)"
                job.state.ended_at = time.time()
                self.write_state(job)
                return Outcome(f"cancelled {job.spec.label or job_id}")
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
            base = self.get(job.spec.depends_on) if job.spec.depends_on else None
            also = ""
            if base is not None and base.state.status in ("failed", "cancelled"):
                # Without its base the job would fail again at once: queue the base with it.
                also = f", with the base generation it needs ({base.spec.label or base.id}, which had {base.state.status})"
                self._requeue(base)
            self._requeue(job)
            return Outcome(f"queued {job.spec.label or job_id} again{also}")

    def _requeue(self, job: Job) -> None:
        job.state = JobState()
        job.spec.seq = time.time()  # to the back of the queue
        self.write_spec(job)
        self.write_state(job)
        for p in (job.stdout_path, job.stderr_path):
            p.unlink(missing_ok=True)

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


def _overwrite_in_place(path: Path, state: dict[str, Any]) -> None:
    """The last resort on a full disk: rewrite state.json inside the space it already holds.

    An atomic write needs a new file, which a full disk refuses; rewriting the existing file
    reuses its allocated block (a state is far smaller than one), so a failure can still be
    recorded. The price is a torn file if the machine dies mid-write, acceptable only here."""
    data = json.dumps(state, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    with open(path, "r+b") as fh:
        fh.write(data)
        fh.truncate()
        fh.flush()
        os.fsync(fh.fileno())

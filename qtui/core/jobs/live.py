"""Following one run as it goes: what its output says so far, as an immutable snapshot.

`LiveTracker` feeds a JobTail and keeps what the views need (the first line of the run, the
progress history, the warnings, the stderr tail); `LiveRun` is the copy it hands out. The app's
Runs tab, `qtui run` and `qtui jobs --watch` all read the same snapshot, so progress, KLD and
ETA are the same figures wherever a run is followed.
"""

from __future__ import annotations

from dataclasses import dataclass

from qtui.core.jobs.queue import Job
from qtui.core.jobs.tail import JobTail
from qtui.core.llama.events import Progress, Started
from qtui.core.llama.events import Warning as ParserWarning
from qtui.core.llama.parser import StreamParser

HISTORY_LIMIT = 5000  # progress rows kept per job: a full wiki.test.raw run at -c 512 is ~600


@dataclass(frozen=True)
class LiveRun:
    """What the stream parser has learned about one job so far (an immutable copy)."""

    job_id: str
    started: Started | None = None
    latest: Progress | None = None
    history: tuple[Progress, ...] = ()
    stderr_tail: str = ""
    warnings: tuple[str, ...] = ()
    started_at: float | None = None
    """when the job's process started (the queue's clock): the pace so far gives the ETA"""

    @property
    def n_chunks(self) -> int | None:
        return (self.latest.n_chunks if self.latest else None) or (self.started.n_chunks if self.started else None)

    @property
    def done(self) -> int:
        """Chunks finished so far."""
        return self.latest.chunk if self.latest else 0

    @property
    def fraction(self) -> float | None:
        """Share of the chunks done, 0..1; None while the total is unknown."""
        total = self.n_chunks
        return min(1.0, max(0.0, self.done / total)) if total else None

    @property
    def kld(self) -> float | None:
        return self.latest.kld if self.latest else None

    @property
    def kld_err(self) -> float | None:
        return self.latest.kld_err if self.latest else None

    def eta_s(self, now: float) -> float | None:
        """Seconds left: llama-perplexity's own estimate when it prints one, else the pace so far
        stretched over the chunks still to come; None before the first chunk."""
        p, total = self.latest, self.n_chunks
        if p is None or not total:
            return None
        if p.eta_s is not None:
            return p.eta_s
        # ik_llama.cpp and --kl-divergence runs print no per-chunk ETA: extrapolate.
        if self.started_at is None or p.chunk <= 0:
            return None
        return max(0.0, now - self.started_at) / p.chunk * max(0, total - p.chunk)


class LiveTracker:
    """Tails one job's output files and keeps its live state; `snapshot()` copies it out.

    Not thread-safe: one poller owns a tracker.
    """

    def __init__(self, job: Job, history_limit: int = HISTORY_LIMIT) -> None:
        self.job = job
        self.tail = JobTail(job)
        self.history_limit = history_limit
        self._parser: StreamParser = self.tail.parser
        self._history: list[Progress] = []
        self.closed = False

    def feed(self, job: Job | None = None) -> bool:
        """Read what the files gained; True when the snapshot changed. `job` is the queue's
        latest view of the job (its state, its start time)."""
        if job is not None:
            self.job = job
        changed = False
        events = self.tail.poll()
        if self.tail.parser is not self._parser:
            # The job was run again (its files started over): so does what we know of it.
            self._parser, self._history = self.tail.parser, []
            changed = True
        for ev in events:
            if isinstance(ev, Progress):
                self._history.append(ev)
                changed = True
            elif isinstance(ev, (Started, ParserWarning)):
                changed = True  # the parser keeps both; the snapshot reads them from it
        del self._history[:-self.history_limit]
        return changed

    def snapshot(self) -> LiveRun:
        p = self._parser
        return LiveRun(self.job.id, p.started, self._history[-1] if self._history else None, tuple(self._history),
                       p.stderr_tail(), tuple(p.warnings), self.job.state.started_at)

    def close(self) -> None:
        self.tail.close()
        self.closed = True

    def __enter__(self) -> LiveTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Every Message the app's workers post, as small dataclasses in one place.

Workers run in threads and only ever talk to the UI through these, so a test can feed the same
messages from a script (see qtui/ui/source.py) and drive exactly the code a real run drives.
Messages that arrive in floods (progress, GPU samples) implement `can_replace`, so a UI that
falls behind skips straight to the latest value instead of replaying a backlog.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from textual.message import Message

from qtui.core.gguf.discovery import ScanResult
from qtui.core.gpu import GpuSnapshot
from qtui.core.jobs.queue import Job
from qtui.core.llama.parser import Progress, Started
from qtui.core.results.store import ResultRecord


@dataclass(frozen=True)
class LiveRun:
    """What the stream parser has learned about one job so far (an immutable copy)."""

    job_id: str
    started: Started | None = None
    latest: Progress | None = None
    history: tuple[Progress, ...] = ()
    stderr_tail: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def n_chunks(self) -> int | None:
        return (self.latest.n_chunks if self.latest else None) or (self.started.n_chunks if self.started else None)


# -- model scan ----------------------------------------------------------------------------
@dataclass
class ScanProgress(Message):
    count: int
    path: Path

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ScanProgress)


@dataclass
class ScanFinished(Message):
    result: ScanResult
    dirs: list[Path]


# -- jobs, live runs, results --------------------------------------------------------------
@dataclass
class JobsChanged(Message):
    jobs: list[Job]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, JobsChanged)


@dataclass
class RunProgress(Message):
    live: LiveRun

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunProgress) and message.live.job_id == self.live.job_id


@dataclass
class RecordsChanged(Message):
    records: list[ResultRecord]
    problems: list[str] = field(default_factory=list)

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RecordsChanged)


@dataclass
class GpuSampled(Message):
    snapshot: GpuSnapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, GpuSampled)


# -- starting a showdown -------------------------------------------------------------------
@dataclass
class RunQueued(Message):
    jobs: list[Job]
    notes: list[str]


@dataclass
class StartRefused(Message):
    """The plan was refused (or the tools are missing): every problem, each a sentence."""

    title: str
    problems: list[str]
    hint: str = ""

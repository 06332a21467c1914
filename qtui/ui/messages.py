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

from qtui.core.cluster.survey import ClusterSurvey
from qtui.core.gguf.discovery import ScanResult
from qtui.core.gpu import GpuSnapshot
from qtui.core.jobs.live import LiveRun as LiveRun  # the snapshot RunProgress carries, made in the core
from qtui.core.jobs.queue import Job
from qtui.core.results.store import ResultRecord


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
    """A job's new live snapshot (progress, history, warnings, ETA), made in the core."""

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


@dataclass
class ClusterSurveyed(Message):
    """The scheduler's latest survey of its Ray cluster, when fresh (None: none, or stale)."""

    survey: ClusterSurvey | None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ClusterSurveyed)


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

"""The headless live view: one line per job, the running KLD converging, until the batch ends.

Watching never owns the runs: Ctrl-C or a dropped connection only stops the watching.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from qtui.core.jobs.queue import FINISHED, Job, JobQueue
from qtui.core.jobs.tail import JobTail
from qtui.core.llama.parser import Progress, Started

REFRESH_S = 0.5


class Detached(Exception):
    """The terminal went away (SIGHUP) or the user pressed Ctrl-C: stop watching, not running."""


@dataclass
class _View:
    job: Job
    monitor: JobTail

    # The parser already keeps the run's state; reading it (not copies) stays right after the
    # monitor starts over on a re-run.
    @property
    def started(self) -> Started | None:
        return self.monitor.parser.started

    @property
    def latest(self) -> Progress | None:
        return self.monitor.parser.latest

    def poll(self) -> None:
        self.monitor.poll()


def _fmt_eta(s: float | None) -> str:
    if s is None:
        return ""
    m, sec = divmod(int(s), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s"


def _bar(done: int, total: int | None, width: int = 16) -> str:
    if not total:
        return "·" * width
    filled = min(width, int(width * done / total))
    return "█" * filled + "░" * (width - filled)


def render(views: Sequence[_View]) -> Table:
    t = Table(box=None, pad_edge=False, expand=False)
    for col in ("job", "state", "progress", "", "KLD ± err", "same top", "ETA"):
        t.add_column(col, no_wrap=True)
    for v in views:
        st = v.job.state.status
        p = v.latest
        total = (p.n_chunks if p else None) or (v.started.n_chunks if v.started else None)
        done = p.chunk if p else 0
        kld = f"{p.kld:.5f} ± {p.kld_err:.5f}" if p and p.kld is not None and p.kld_err is not None else (
            f"PPL {p.ppl:.3f}" if p and p.ppl is not None else "")
        same = f"{p.same_top:.2f}%" if p and p.same_top is not None else ""
        style = {"done": "green", "failed": "red", "cancelled": "yellow", "running": "cyan"}.get(st, "dim")
        prog = f"{done}/{total or '?'}" if st != "queued" else ""
        t.add_row(v.job.spec.label[:40], Text(st, style=style), _bar(done, total) if st == "running" else "", prog,
                  kld, same, _fmt_eta(p.eta_s if p else None) if st == "running" else "")
    return t


def watch(queue: JobQueue, job_ids: Sequence[str], console: Console) -> list[Job]:
    """Follow the given jobs until all have finished. Raises Detached on Ctrl-C or SIGHUP."""
    views: dict[str, _View] = {}
    announced: set[str] = set()

    def on_hup(signum: int, frame: FrameType | None) -> None:
        raise Detached()

    old = signal.signal(signal.SIGHUP, on_hup)
    try:
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            while True:
                jobs = [j for j in (queue.get(i) for i in job_ids) if j is not None]
                for job in jobs:
                    v = views.get(job.id)
                    if v is None:
                        v = views[job.id] = _View(job, JobTail(job))
                    v.job = job
                    if job.state.status != "queued":
                        v.poll()
                    if job.state.status in FINISHED and job.id not in announced:
                        announced.add(job.id)
                        if job.state.status != "done":
                            live.console.print(f"[red]✗ {job.spec.label}: {job.state.status}[/] — {job.state.reason or ''}")
                live.update(Group(render(list(views.values()))))
                if all(j.state.status in FINISHED for j in jobs):
                    return jobs
                time.sleep(REFRESH_S)
    except KeyboardInterrupt:
        raise Detached() from None
    finally:
        signal.signal(signal.SIGHUP, old)
        for v in views.values():
            v.monitor.close()

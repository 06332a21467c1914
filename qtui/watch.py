"""The headless live view: one line per job, the running KLD converging, until the batch ends.

Watching never owns the runs: Ctrl-C or a dropped connection only stops the watching.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from types import FrameType

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from qtui.core import formats
from qtui.core.jobs.live import LiveRun, LiveTracker
from qtui.core.jobs.queue import FINISHED, Job, JobQueue

REFRESH_S = 0.5
KEEP_GOING_S = 5.0
BAR_WIDTH = 16
STATE_STYLE = {"done": "green", "failed": "red", "cancelled": "yellow", "running": "cyan"}


class Detached(Exception):
    """The terminal went away (SIGHUP) or the user pressed Ctrl-C: stop watching, not running."""


def render(runs: Sequence[tuple[Job, LiveRun]], now: float) -> Table:
    """One row per job: its state, chunks done, the running KLD and the ETA (the app's figures)."""
    t = Table(box=None, pad_edge=False, expand=False)
    for col in ("job", "state", "progress", "", "KLD ± err", "same top", "ETA"):
        t.add_column(col, no_wrap=True)
    for job, live in runs:
        st = job.state.status
        p = live.latest
        running = st == "running"
        if live.kld is not None:
            value = formats.kld(live.kld, live.kld_err)
        elif p is not None and p.ppl is not None:
            value = f"PPL {p.ppl:.3f}"
        else:
            value = ""
        same = f"{p.same_top:.2f}%" if p and p.same_top is not None else ""
        t.add_row(job.spec.label[:40], Text(st, style=STATE_STYLE.get(st, "dim")),
                  formats.progress_bar(live.fraction, BAR_WIDTH) if running else "",
                  formats.chunks(live.done, live.n_chunks) if st != "queued" else "",
                  value, same, formats.duration(live.eta_s(now)) if running and live.latest else "")
    return t


def watch(queue: JobQueue, job_ids: Sequence[str], console: Console,
          clock: Callable[[], float] = time.time, keep_going: Callable[[], object] | None = None,
          more: Callable[[], Sequence[str]] | None = None, done: Callable[[], bool] | None = None) -> list[Job]:
    """Follow the given jobs until all have finished. Raises Detached on Ctrl-C or SIGHUP.

    `keep_going` is called every KEEP_GOING_S: it restarts a scheduler that died meanwhile,
    so the jobs being watched never wait for ever. A screening batch grows while it runs:
    `more` names the jobs queued since (followed too), and the watch ends only once `done`
    says the batch is over."""
    job_ids = list(job_ids)
    trackers: dict[str, LiveTracker] = {}
    announced: set[str] = set()
    checked = clock()

    def on_hup(signum: int, frame: FrameType | None) -> None:
        raise Detached()

    old = signal.signal(signal.SIGHUP, on_hup)
    try:
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            while True:
                if more is not None:
                    job_ids += [i for i in more() if i not in job_ids]
                jobs = [j for j in (queue.get(i) for i in job_ids) if j is not None]
                for job in jobs:
                    tracker = trackers.get(job.id)
                    if tracker is None:
                        tracker = trackers[job.id] = LiveTracker(job)
                    tracker.job = job
                    if job.state.status != "queued":
                        tracker.feed()
                    if job.state.status in FINISHED and job.id not in announced:
                        announced.add(job.id)
                        if job.state.status != "done":
                            live.console.print(f"[red]✗ {job.spec.label}: {job.state.status}[/] — {job.state.reason or ''}")
                live.update(Group(render([(t.job, t.snapshot()) for t in trackers.values()], clock())))
                if all(j.state.status in FINISHED for j in jobs) and (done is None or done()):
                    return jobs
                if keep_going is not None and clock() - checked >= KEEP_GOING_S:
                    checked = clock()
                    keep_going()
                time.sleep(REFRESH_S)
    except KeyboardInterrupt:
        raise Detached() from None
    finally:
        signal.signal(signal.SIGHUP, old)
        for tracker in trackers.values():
            tracker.close()

"""The headless live view: one line per job, the running KLD converging, until the batch ends.

Watching never owns the runs: `q`, Ctrl-C or a dropped connection only stops the watching.
On a terminal the keys are read without echo and without waiting for Enter (cbreak), so a key
pressed neither waits in a line buffer nor scrolls the live table (which redrew its header).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
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


# Columns in the order they are given up when the terminal is too narrow: the job, its state in
# full, its chunks and its KLD stay; the same-top share goes first, then the ETA, then the bar.
COLUMNS = ("job", "state", "chunks", "kld", "bar", "eta", "same")
_DROP_ORDER = ("same", "eta", "bar")
_TITLES = {"job": "job", "state": "state", "chunks": "chunks", "kld": "KLD ± err", "bar": "", "eta": "ETA",
           "same": "same top"}
_LABEL_MAX, _LABEL_MIN = 40, 12
_GAP = 2  # between two columns (padding 0 1, no edge padding)


def _cells(job: Job, live: LiveRun, now: float) -> dict[str, str]:
    st = job.state.status
    p = live.latest
    running = st == "running"
    if live.kld is not None:
        value = formats.kld(live.kld, live.kld_err)
    elif p is not None and p.ppl is not None:
        value = f"PPL {p.ppl:.3f}"
    else:
        value = ""
    return {"job": job.spec.label, "state": st,
            # a speed job (llama-bench) has no chunks: its figures are on the board once it ends
            "chunks": formats.chunks(live.done, live.n_chunks) if st != "queued" and job.spec.kind != "speed" else "",
            "kld": value,
            "bar": formats.progress_bar(live.fraction, BAR_WIDTH) if running else "",
            "eta": formats.duration(live.eta_s(now)) if running and live.latest else "",
            "same": f"{p.same_top:.2f}%" if p and p.same_top is not None else ""}


def fit(rows: Sequence[dict[str, str]], width: int | None) -> tuple[list[str], int]:
    """The columns that fit `width` whole, and the width left for the job's name: a cut state or
    KLD misleads, so the minor columns go first and the name is shortened last."""
    def natural(key: str) -> int:
        return max([len(_TITLES[key])] + [len(r[key]) for r in rows])

    label = min(_LABEL_MAX, natural("job"))
    if width is None:
        return list(COLUMNS), label
    keys = list(COLUMNS)
    for drop in (None, *_DROP_ORDER):
        if drop is not None:
            keys.remove(drop)
        others = sum(natural(k) + _GAP for k in keys if k != "job")
        if others + label <= width:
            break
    return keys, max(_LABEL_MIN, min(label, width - others))


def render(runs: Sequence[tuple[Job, LiveRun]], now: float, width: int | None = None) -> Table:
    """One row per job: its state, chunks done, the running KLD and the ETA (the app's figures),
    with the columns that fit `width` (all of them when None)."""
    rows = [_cells(job, live, now) for job, live in runs]
    keys, label = fit(rows, width)
    t = Table(box=None, pad_edge=False, expand=False)
    for key in keys:
        t.add_column(_TITLES[key], no_wrap=True, overflow="ellipsis",
                     justify="left" if key in ("job", "state", "bar") else "right",
                     max_width=label if key == "job" else None)
    for cells in rows:
        st = cells["state"]
        t.add_row(*(Text(cells[k], style=STATE_STYLE.get(st, "dim")) if k == "state" else cells[k] for k in keys))
    return t


QUIT_KEYS = frozenset("qQ")


@contextlib.contextmanager
def keys_from_terminal() -> Iterator[Callable[[float], str]]:
    """A function that waits up to `timeout` seconds for keys and returns what was typed ("" for
    none). On a terminal, stdin is put in cbreak mode (no echo, no line buffer) and restored after;
    when stdin is not a terminal (a pipe, a file, /dev/null) it is left alone and only waited on."""
    fd = -1
    try:
        # Only in the foreground: a background process changing the terminal would be stopped.
        if sys.stdin is not None and sys.stdin.isatty() and os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp():
            fd = sys.stdin.fileno()
    except (OSError, ValueError):
        fd = -1
    if fd < 0:
        def wait(timeout: float) -> str:
            time.sleep(timeout)
            return ""
        yield wait
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd, termios.TCSANOW)

    def read(timeout: float) -> str:
        ready, _, _ = select.select([fd], [], [], timeout)
        return os.read(fd, 64).decode(errors="replace") if ready else ""

    try:
        yield read
    finally:
        try:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        except (termios.error, OSError):
            pass  # the terminal is gone (SIGHUP): nothing to restore


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
        with keys_from_terminal() as keys, Live(console=console, refresh_per_second=4, transient=False) as live:
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
                live.update(Group(render([(t.job, t.snapshot()) for t in trackers.values()], clock(), console.width)))
                if all(j.state.status in FINISHED for j in jobs) and (done is None or done()):
                    return jobs
                if keep_going is not None and clock() - checked >= KEEP_GOING_S:
                    checked = clock()
                    keep_going()
                if QUIT_KEYS & set(keys(REFRESH_S)):
                    raise Detached()  # q: stop watching; the runs go on
    except KeyboardInterrupt:
        raise Detached() from None
    finally:
        signal.signal(signal.SIGHUP, old)
        for tracker in trackers.values():
            tracker.close()

"""The job queue: every job in run order with its state in words, and the keys that change it.

Queue edits go through JobQueue (file lock shared with the scheduler and the CLI) on a thread
worker; the table itself only ever shows what the source last read from disk.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable

from qtui.core import formats
from qtui.core.jobs.live import LiveRun
from qtui.core.jobs.queue import Job, JobQueue
from qtui.ui.widgets.rowtable import RowTable

STATE_WORDS = {"queued": "waiting", "running": "running", "done": "done", "failed": "failed", "cancelled": "cancelled"}
# Colour only repeats what the word says (NO_COLOR must lose nothing).
STATE_STYLE = {"running": "bold", "done": "", "failed": "bold red", "cancelled": "yellow", "waiting": "dim",
               "stopping": "yellow"}


JOB_MIN = 12  # the job's name is shortened to fit, never below this
VALUE_ROOM = len("0.003202 ±0.000080")  # a KLD's room is kept before its first value arrives


def state_word(job: Job) -> str:
    if job.state.status == "running" and job.state.cancel_requested_at is not None:
        return "stopping"
    return STATE_WORDS.get(job.state.status, job.state.status)


def where(job: Job) -> str:
    """Where a cluster job runs (ran), after its state: " on gpu-box-3"; "" for a local job."""
    node = job.state.node
    if not node:
        return ""
    name = node.get("hostname") or node.get("ip")
    if name:
        return f" on {name}"
    return " (Ray picks a node)" if job.state.status == "running" else ""


def state_cell(job: Job) -> Text:
    word = state_word(job)
    return Text(word + where(job), style=STATE_STYLE.get(word, ""))


def fmt_progress(live: LiveRun | None) -> str:
    if live is None or live.latest is None:
        return ""
    return formats.chunks(live.done, live.n_chunks)


def jobs_ahead(job: Job, jobs: list[Job]) -> int:
    """Waiting jobs before `job` in the queue's run order: the ones it waits for."""
    ahead = 0
    for j in jobs:
        if j.id == job.id:
            return ahead
        ahead += j.state.status == "queued"
    return ahead


def fmt_value(live: LiveRun | None) -> str:
    p = live.latest if live else None
    if p is None:
        return ""
    if p.kld is not None:
        return formats.kld(p.kld, p.kld_err, compact=True)  # a narrow column
    if p.ppl is not None:
        return f"PPL {p.ppl:.4g}"
    return ""


class QueueView(Vertical):
    BINDINGS = [
        Binding("c", "cancel", "Cancel", tooltip="Cancel the job under the cursor (a running one is stopped)"),
        Binding("r", "retry", "Retry", tooltip="Retry: queue a failed or cancelled job again"),
        Binding("x,delete", "remove", "Remove", tooltip="Remove a finished or waiting job from the queue"),
        Binding("K,ctrl+up", "move(-1)", "Up", tooltip="Move a waiting job earlier in the queue", show=False),
        Binding("J,ctrl+down", "move(1)", "Down", tooltip="Move a waiting job later in the queue", show=False),
        Binding("ctrl+t", "stderr", "Log", tooltip="Show or hide the job's stderr tail"),
        Binding("X", "clear_finished", "Clear", tooltip="Remove every finished job from the queue", show=False),
    ]

    class Highlighted(Message):
        def __init__(self, job_id: str | None) -> None:
            super().__init__()
            self.job_id = job_id

    class Edited(Message):
        """A queue edit finished; `text` says what happened, `retried` asks for a scheduler."""

        def __init__(self, text: str, retried: bool = False) -> None:
            super().__init__()
            self.text = text
            self.retried = retried

    class StderrToggled(Message):
        pass

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.queue: JobQueue | None = None
        self.read_only_reason = "this view is read-only"
        self.jobs: list[Job] = []
        self.live: dict[str, LiveRun] = {}
        self.follow_running = True  # until the user moves the cursor, show the running job
        self._auto_keys: set[str] = set()  # rows the table highlights by itself, not the user
        self._job_width: int | None = None  # the width job names are shortened to (None: whole)

    def compose(self) -> ComposeResult:
        table: DataTable[str | Text] = RowTable(id="queue", cursor_type="row")
        table.add_column("#", key="n")
        table.add_column("Job", key="job")
        table.add_column("State", key="state")
        table.add_column("Chunks", key="chunks")
        table.add_column("KLD / PPL", key="value")
        yield table

    @property
    def table(self) -> DataTable[str | Text]:
        return self.query_one("#queue", DataTable)

    def selected_job(self) -> Job | None:
        table = self.table
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((j for j in self.jobs if j.id == key), None)

    # -- data ------------------------------------------------------------------------------
    def set_jobs(self, jobs: list[Job]) -> None:
        table = self.table
        selected = self.selected_job()
        self.jobs = jobs
        self.live = {k: v for k, v in self.live.items() if any(j.id == k for j in jobs)}
        with self.app.batch_update():
            if [j.id for j in jobs] == [str(k.value) for k in table.rows]:
                for job in jobs:  # same jobs, same order: only states (and a screening job's window) changed
                    table.update_cell(job.id, "state", state_cell(job), update_width=True)
                    table.update_cell(job.id, "job", self._label(job), update_width=True)
            else:
                table.clear()
                if jobs:
                    self._auto_keys.add(jobs[0].id)  # the table highlights its first row on its own
                for i, job in enumerate(jobs, 1):
                    table.add_row(str(i), self._label(job), state_cell(job),
                                  fmt_progress(self.live.get(job.id)), fmt_value(self.live.get(job.id)),
                                  key=job.id)
            target = selected.id if selected else None
            running = next((j for j in jobs if j.state.status == "running"), None)
            if running is None and not any(j.state.status == "queued" for j in jobs):
                self.follow_running = True  # the batch is over: the next one is followed again
            elif self.follow_running and running is not None:
                target = running.id
            if target is not None and target in table.rows:
                row = table.get_row_index(target)
                if row != table.cursor_row:
                    self._auto_keys.add(target)
                    table.move_cursor(row=row, animate=False)
        self._fit()
        now_selected = self.selected_job()
        self.post_message(self.Highlighted(now_selected.id if now_selected else None))

    def set_live(self, live: LiveRun) -> None:
        self.live[live.job_id] = live
        job = next((j for j in self.jobs if j.id == live.job_id), None)
        if job is None or live.job_id not in self.table.rows:
            return
        self.table.update_cell(job.id, "chunks", fmt_progress(live), update_width=True)
        self.table.update_cell(job.id, "value", fmt_value(live), update_width=True)
        self.call_after_refresh(self._fit)  # the widths of the cells just changed are known after

    # -- fitting the width -----------------------------------------------------------------
    def on_resize(self) -> None:
        self.call_after_refresh(self._fit)

    def _label(self, job: Job) -> str:
        label = job.spec.label or job.id
        return label if self._job_width is None else formats.shorten(label, self._job_width)

    def _fit(self) -> None:
        """Every column whole in the table's width: the job's name gives way (cut in the middle),
        never its state, chunks or KLD. A state cut to 'cancell' or a KLD cut to '0.00492 ±0.00'
        misleads; a shortened file name still says which file."""
        table = self.table
        room = table.content_region.width - self._scrollbar_width()
        if room <= 0 or not table.columns:
            return
        others = 0
        for key, column in table.columns.items():
            if key.value == "job":
                continue
            width = column.get_render_width(table)
            others += max(width, VALUE_ROOM + 2 * table.cell_padding) if key.value == "value" else width
        natural = max([len("Job")] + [len(j.spec.label or j.id) for j in self.jobs])
        fitted = max(JOB_MIN, min(natural, room - others - 2 * table.cell_padding))
        job_width = None if fitted >= natural else fitted
        if job_width == self._job_width:
            return
        self._job_width = job_width
        for job in self.jobs:
            if job.id in table.rows:
                table.update_cell(job.id, "job", self._label(job), update_width=True)

    def _scrollbar_width(self) -> int:
        """The vertical scrollbar's width when the rows overflow the table's height, known from
        the rows themselves: Textual shows the scrollbar only at its next layout, and a width
        fitted before that would lose its last column to it (a KLD cut to '±0.00008')."""
        table = self.table
        overflow = table.styles.overflow_y
        rows = sum(row.height for row in table.rows.values()) + (table.header_height if table.show_header else 0)
        shown = overflow == "scroll" or (overflow == "auto" and rows > table.content_region.height)
        return int(table.styles.scrollbar_size_vertical) if shown else 0

    @on(DataTable.RowHighlighted, "#queue")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        key = event.row_key.value if event.row_key else None
        if key in self._auto_keys:
            self._auto_keys.discard(key)
        else:
            # The user moved: from now on the cursor stays on the job they chose (by id), even
            # when that job ends and the next one starts.
            self.follow_running = False
        self.post_message(self.Highlighted(key))

    # -- actions ---------------------------------------------------------------------------
    def _edit(self, fn: Callable[[JobQueue, Job | None], str], retried: bool = False, need_job: bool = True) -> None:
        if self.queue is None:
            self.notify(self.read_only_reason, severity="warning")
            return
        job = self.selected_job()
        if job is None and need_job:
            self.notify("no job selected: choose variants on the Models tab and press s to start")
            return
        self._run_edit(self.queue, job, fn, retried)

    @work(thread=True, group="queue-edit", exit_on_error=False, description="editing the queue")
    def _run_edit(self, queue: JobQueue, job: Job | None, fn: Callable[[JobQueue, Job | None], str],
                  retried: bool) -> None:
        self.post_message(self.Edited(fn(queue, job), retried))

    def action_cancel(self) -> None:
        job = self.selected_job()
        if self.queue is None or job is None:
            self._edit(lambda q, j: "")  # says why nothing can be cancelled
            return
        # From here on the cursor stays on this job, by id: the next job starting (or the queue
        # re-ordering) must not slide another job under it, or a second `c` would cancel that one.
        self.follow_running = False
        live = self.live.get(job.id)
        if job.state.status == "running" and job.state.cancel_requested_at is None and live is not None and live.done:
            from qtui.ui.screens.confirm import ConfirmScreen

            total = live.n_chunks
            done = f"{live.done} of {total} chunks" if total else f"{live.done} chunk{'s' if live.done != 1 else ''}"
            label = job.spec.label or job.id
            self.app.push_screen(
                ConfirmScreen(f"Cancel {label}?", f"{done} done will be lost: a retry starts from chunk 1.",
                              yes="Cancel the run", no="Keep it running"),
                lambda yes: self._cancel(job.id) if yes else None)
            return
        self._cancel(job.id)  # waiting, or nothing measured yet: nothing is lost

    def _cancel(self, job_id: str) -> None:
        def cancel(q: JobQueue, _: Job | None) -> str:
            now = q.get(job_id)
            if now is not None and now.state.status == "running" and now.state.cancel_requested_at is not None:
                return f"{now.spec.label or job_id} is already stopping"
            return q.cancel(job_id)
        if self.queue is not None:
            self._run_edit(self.queue, None, cancel, False)

    def action_retry(self) -> None:
        self._edit(lambda q, j: q.retry(j.id) if j else "", retried=True)

    def action_remove(self) -> None:
        self._edit(lambda q, j: q.remove(j.id) if j else "")

    def action_move(self, delta: int) -> None:
        def move(q: JobQueue, j: Job | None) -> str:
            if j is None:
                return ""
            if j.state.status != "queued":
                return f"{j.spec.label} is {state_word(j)}: only waiting jobs can be reordered"
            return "" if q.move(j.id, delta) else f"{j.spec.label} is already {'first' if delta < 0 else 'last'}"
        self.follow_running = False
        self._edit(move)

    def action_clear_finished(self) -> None:
        self._edit(lambda q, j: f"removed {q.clear_finished()} finished job(s)", need_job=False)

    def action_stderr(self) -> None:
        self.post_message(self.StderrToggled())

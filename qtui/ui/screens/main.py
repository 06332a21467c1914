"""The main screen: Models | Runs | Leaderboard tabs over a one-line GPU bar and the footer.

It wires widgets to the app's Message stream (jobs, live runs, records, GPU samples) and owns
the start flow: plan in a thread worker (it hashes the corpus), refuse with every reason at
once, or queue the jobs and make sure a detached scheduler runs them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, TabbedContent, TabPane

from qtui.core.gguf.sameness import has_experts
from qtui.core.jobs.queue import Job
from qtui.core.llama.assets import demo_notes
from qtui.core.results.leaderboard import Row, board_records
from qtui.core.results.store import ResultRecord
from qtui.ui.bindings import BOARD_BINDINGS, MAIN_BINDINGS
from qtui.ui.messages import (
    ClusterSurveyed,
    GpuSampled,
    JobsChanged,
    LiveRun,
    RecordsChanged,
    RunProgress,
    RunQueued,
    StartRefused,
)
from qtui.ui.screens.details import (
    InfoScreen,
    mix_diff_details,
    model_details,
    problems_text,
    record_details,
    skipped_details,
)
from qtui.ui.widgets.gpu_panel import GpuPanel
from qtui.ui.widgets.leaderboard import Leaderboard
from qtui.ui.widgets.model_list import Choice, ModelList
from qtui.ui.widgets.queue import QueueView, jobs_ahead
from qtui.ui.widgets.run_panel import RunPanel

if TYPE_CHECKING:
    from qtui.core.config import Config
    from qtui.ui.source import Source
    from qtui.ui.widgets.scatter import Scatter

TABS = ("models", "runs", "board")
WIDE = 150  # columns from which the Runs and Leaderboard tabs go side by side


class Autostart(Protocol):
    """The models a demo asks to start at once (what this screen reads of the request)."""

    @property
    def base(self) -> Path: ...

    @property
    def variants(self) -> Sequence[Path]: ...

    @property
    def ctx(self) -> int: ...

    @property
    def chunks(self) -> int | None: ...

    @property
    def corpus(self) -> str | Path | None: ...


class HostContext(Protocol):
    @property
    def cfg(self) -> Config: ...

    @property
    def read_only(self) -> bool: ...

    @property
    def dirs(self) -> list[Path]: ...

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def autostart(self) -> Autostart | None: ...

    @property
    def data_dir(self) -> Path: ...


class MainHost(Protocol):
    """What the main screen needs from the app that shows it; the app hands itself in, so the
    screen never imports the app."""

    @property
    def ctx(self) -> HostContext: ...

    @property
    def source(self) -> Source: ...

    def start_pumps(self, screen: Screen[Any]) -> None: ...

    def read_only_reason(self) -> str: ...

    def ensure_scheduler(self) -> None: ...

    def wake_source(self) -> None: ...

    def plan_and_queue(self, choice: Choice, gpu_name: str | None, screen: bool = False,
                       floor: bool = False, speed: bool = False) -> RunQueued | StartRefused: ...

    def queue_full_run(self, record: ResultRecord, gpu_name: str | None) -> RunQueued | StartRefused: ...


class BoardPane(Vertical):
    """Leaderboard over the scatter plot; the keys here act on both.

    The scatter plot (plotext) is mounted after the first screen is drawn: importing plotext
    costs more than the rest of the first screen, and nothing needs it before a result exists.
    """

    BINDINGS = BOARD_BINDINGS
    VIEWS = ("both", "table", "plot")

    class DetailsRequested(Message):
        """Show everything stored about this result (the screen holds the records)."""

        def __init__(self, record_id: str | None) -> None:
            super().__init__()
            self.record_id = record_id

    class CompareRequested(Message):
        """Compare two results (the screen holds the records)."""

        def __init__(self, a: str, b: str) -> None:
            super().__init__()
            self.a, self.b = a, b

    class DiffRequested(Message):
        """The tensor-mix diff of two results' model files (the screen holds the records)."""

        def __init__(self, a: str, b: str) -> None:
            super().__init__()
            self.a, self.b = a, b

    class FullRunRequested(Message):
        """Run this result's variant in full on its setup (the screen holds the records)."""

        def __init__(self, record_id: str) -> None:
            super().__init__()
            self.record_id = record_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._pending: tuple[list[Row], str | None, float | None] = ([], None, None)
        self._log_pending = False
        self._x_pending = "size_gib"
        """the scatter's x axis chosen before the scatter was mounted"""
        self.marked: str | None = None
        """the row marked with m, to compare with another (C)"""

    def compose(self) -> ComposeResult:
        yield Leaderboard(include_failed=True, id="leaderboard")

    @property
    def scatter(self) -> Scatter | None:
        from qtui.ui.widgets.scatter import Scatter

        found = self.query(Scatter)
        return found.first() if found else None

    async def mount_scatter(self) -> None:
        if self.scatter is not None:
            return
        from qtui.ui.widgets.scatter import Scatter

        scatter = Scatter(id="scatter")
        await self.mount(scatter)
        rows, selected, floor = self._pending
        scatter.set_rows(rows, selected, floor)
        if self._log_pending:
            scatter.toggle_log()
        scatter.x_axis = self._x_pending

    def set_rows(self, rows: list[Row], selected: str | None, floor: float | None = None) -> None:
        self._pending = (rows, selected, floor)
        if self.scatter is not None:
            self.scatter.set_rows(rows, selected, floor)

    def action_log_scale(self) -> None:
        if self.scatter is not None:
            self.scatter.toggle_log()
        else:
            self._log_pending = not self._log_pending

    def action_x_axis(self) -> None:
        """The scatter's x axis: size, pp t/s, tg t/s (speeds from `qtui run --speed`)."""
        from qtui.ui.widgets.scatter import X_AXES

        if self.scatter is not None:
            label = self.scatter.next_x_axis()
        else:
            keys = [k for k, _ in X_AXES]
            self._x_pending = keys[(keys.index(self._x_pending) + 1) % len(keys)]
            label = dict(X_AXES)[self._x_pending]
        self.notify(f"scatter x axis: {label}", timeout=2)

    def action_view(self) -> None:
        current = next((v for v in self.VIEWS if self.has_class(f"-{v}")), "both")
        nxt = self.VIEWS[(self.VIEWS.index(current) + 1) % len(self.VIEWS)]
        for v in self.VIEWS:
            self.set_class(v == nxt, f"-{v}")
        # Keep the keys working: focus must stay inside the pane when a part is hidden.
        scatter = self.scatter
        (scatter if nxt == "plot" and scatter is not None else self.query_one(Leaderboard).table).focus()

    def action_details(self) -> None:
        self.post_message(self.DetailsRequested(self.query_one(Leaderboard).selected_id))

    def action_mark(self) -> None:
        board = self.query_one(Leaderboard)
        row = next((r for r in board.rows if r.id == board.selected_id), None)
        if row is None:
            self.notify("no result selected")
            return
        if self.marked == row.id:
            self.marked = None
            self.notify(f"unmarked {row.model}", timeout=2)
            return
        self.marked = row.id
        self.notify(f"marked {row.model}: move to another row and press C to compare, d to diff their tensor mix",
                    timeout=4)

    def _pair(self, key: str) -> tuple[str, str] | None:
        """(marked, selected) row ids for a key that works on two rows, or None after saying why."""
        board = self.query_one(Leaderboard)
        ids = {r.id for r in board.rows}
        if self.marked is None or self.marked not in ids:
            self.notify(f"mark a result with m first, then move to another and press {key}", severity="warning")
            return None
        if board.selected_id is None or board.selected_id == self.marked:
            self.notify(f"move to another result than the marked one, then press {key}", severity="warning")
            return None
        return self.marked, board.selected_id

    def action_compare(self) -> None:
        pair = self._pair("C")
        if pair is not None:
            self.post_message(self.CompareRequested(*pair))

    def action_diff(self) -> None:
        pair = self._pair("d")
        if pair is not None:
            self.post_message(self.DiffRequested(*pair))

    def action_full_run(self) -> None:
        board = self.query_one(Leaderboard)
        if board.selected_id is None:
            self.notify("no result selected")
            return
        self.post_message(self.FullRunRequested(board.selected_id))

    def action_next_setup(self, step: int = 1) -> None:
        board = self.query_one(Leaderboard)
        if not board.next_setup(step):
            self.notify("every result on the board is from one setup", timeout=3)

    def action_prev_setup(self) -> None:
        self.action_next_setup(-1)

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_details()


class MainScreen(Screen[None]):
    BINDINGS = MAIN_BINDINGS

    def __init__(self, host: MainHost) -> None:
        super().__init__(id="main")
        self.host = host
        self.jobs: list[Job] = []
        self._jobs_seen = False  # the first JobsChanged is history: no toasts for it
        self.live: dict[str, LiveRun] = {}
        self.records: list[ResultRecord] = []
        self.selected_job: str | None = None
        self.last_gpu: GpuSampled | None = None
        self._autostarted = False

    def compose(self) -> ComposeResult:
        ctx = self.host.ctx
        with TabbedContent(id="tabs", initial="board" if ctx.read_only else "models"):
            with TabPane("Models", id="models"):
                yield ModelList(ctx.dirs, id="model-list")
            with TabPane("Runs", id="runs"):
                with Vertical(id="runs-pane"):
                    yield QueueView(id="queue-view")
                    yield RunPanel(clock=ctx.clock, id="run-panel")
            with TabPane("Leaderboard", id="board"):
                yield BoardPane(id="board-pane")
        yield GpuPanel(id="gpu")
        yield Footer()

    def on_mount(self) -> None:
        ctx = self.host.ctx
        queue = self.query_one(QueueView)
        queue.queue = self.host.source.queue
        if ctx.read_only:
            queue.read_only_reason = self.host.read_only_reason()
            tabs = self.query_one(TabbedContent)
            tabs.hide_tab("models")
            tabs.hide_tab("runs")
            self.query_one(GpuPanel).display = False  # stored results: this machine's GPU is beside the point
            self.query_one(Leaderboard).table.focus()
        else:
            self.query_one(ModelList).table.focus()
        # After the first frame: the first screen must not wait for NVML, plotext or the disk.
        self.call_after_refresh(self._after_first_frame)

    def _after_first_frame(self) -> None:
        self.host.start_pumps(self)
        self._import_scatter()

    @work(thread=True, group="imports", exit_on_error=False, description="loading the scatter plot")
    def _import_scatter(self) -> None:
        importlib.import_module("qtui.ui.widgets.scatter")  # plotext: the slowest import, off the UI thread

        self.app.call_from_thread(self.call_later, self.query_one(BoardPane).mount_scatter)

    def on_resize(self) -> None:
        self.set_class(self.size.width >= WIDE, "-wide")

    # -- tabs ------------------------------------------------------------------------------
    def action_tab(self, tab: str) -> None:
        if self.host.ctx.read_only and tab != "board":
            self.notify(self.host.read_only_reason(), severity="warning")
            return
        self.query_one(TabbedContent).active = tab
        self.focus_tab(tab)

    def focus_tab(self, tab: str) -> None:
        tables: dict[str, Callable[[], Widget]] = {"models": lambda: self.query_one(ModelList).table,
                                                   "runs": lambda: self.query_one(QueueView).table,
                                                   "board": lambda: self.query_one(Leaderboard).table}
        tables[tab]().focus()

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        tab = event.pane.id or "models"
        if tab in TABS:
            self.call_after_refresh(self.focus_tab, tab)

    # -- data from the source --------------------------------------------------------------
    def on_jobs_changed(self, msg: JobsChanged) -> None:
        before = {j.id: j.state.status for j in self.jobs}
        history, self._jobs_seen = not self._jobs_seen, True
        for j in msg.jobs:
            # Say so when a run ends while this qtui watches, not for history loaded at start.
            # A job first seen already ended counts too: on a busy machine a run that fails at
            # once can end before this qtui's next look at the queue.
            if not history and before.get(j.id) != j.state.status and j.state.status in ("done", "failed"):
                if j.state.status == "done":
                    self.notify(f"✓ {j.spec.label} done", timeout=3)
                else:
                    self.notify(f"✗ {j.spec.label} failed: {j.state.reason or 'see the Runs tab'}",
                                severity="error", timeout=8)
        self.jobs = msg.jobs
        self.query_one(QueueView).set_jobs(msg.jobs)
        running = sum(1 for j in msg.jobs if j.state.status == "running")
        waiting = sum(1 for j in msg.jobs if j.state.status == "queued")
        label = "Runs" + (f" ({running} running, {waiting} waiting)" if running or waiting else "")
        tabs = self.query_one(TabbedContent)
        tabs.get_tab("runs").label = label
        if history and (running or waiting) and not self.host.ctx.read_only and tabs.active == "models":
            self.action_tab("runs")  # reopened while jobs run: show them (Models when none runs or waits)
        self._show_selected()
        if self.last_gpu is not None:
            self.on_gpu_sampled(self.last_gpu)

    def on_run_progress(self, msg: RunProgress) -> None:
        self.live[msg.live.job_id] = msg.live
        self.query_one(QueueView).set_live(msg.live)
        if msg.live.job_id == self.selected_job:
            self._show_selected()

    def on_records_changed(self, msg: RecordsChanged) -> None:
        self.records = msg.records
        board = self.query_one(Leaderboard)
        board.set_records(board_records(msg.records))
        self._models_measured()
        self._update_scatter()
        for p in msg.problems[:3]:
            self.notify(p, title="results", severity="warning")
        if len(msg.problems) > 3:
            self.notify(f"{len(msg.problems) - 3} more unreadable result file(s)", severity="warning")

    def on_gpu_sampled(self, msg: GpuSampled) -> None:
        self.last_gpu = msg
        running = [j for j in self.jobs if j.state.status == "running"]
        pids = {j.state.pid for j in running if j.state.pid is not None}
        holders = {g: j.spec.label or j.spec.kind for j in running for g in (j.state.gpus or [])}
        gpu = self.query_one(GpuPanel)
        gpu.show(msg.snapshot, pids, holders)
        gpu.set_class(not msg.snapshot.available, "-unavailable")

    def on_cluster_surveyed(self, msg: ClusterSurveyed) -> None:
        """The Ray cluster's nodes and GPUs below this machine's, each GPU naming the cluster job
        that holds it (from the job's node, as the scheduler recorded it)."""
        from qtui.core.jobs.remote import cluster_gpu_holders

        self.query_one(GpuPanel).show_cluster(msg.survey, cluster_gpu_holders(self.jobs))

    def gpu_name(self) -> str | None:
        snap = self.last_gpu.snapshot if self.last_gpu else None
        return snap.gpus[0].name if snap is not None and snap.available and snap.gpus else None

    @on(QueueView.Highlighted)
    def _job_highlighted(self, msg: QueueView.Highlighted) -> None:
        self.selected_job = msg.job_id
        self._show_selected()

    def _show_selected(self) -> None:
        job = next((j for j in self.jobs if j.id == self.selected_job), None)
        self.query_one(RunPanel).show(job, self.live.get(job.id) if job else None,
                                      jobs_ahead(job, self.jobs) if job else None)

    @on(QueueView.StderrToggled)
    def _toggle_stderr(self) -> None:
        self.query_one(RunPanel).toggle_stderr()

    @on(QueueView.Edited)
    def _queue_edited(self, msg: QueueView.Edited) -> None:
        if msg.text:
            self.notify(msg.text, timeout=3)
        if msg.retried:
            self.host.ensure_scheduler()
        self.host.wake_source()

    @on(Leaderboard.Selected)
    @on(Leaderboard.SetupChanged)
    def _board_selected(self, msg: Leaderboard.Selected | Leaderboard.SetupChanged) -> None:
        self._update_scatter()

    def _update_scatter(self) -> None:
        board = self.query_one(Leaderboard)
        rows: list[Row] = [r for r in board.rows if r.status == "done"]
        self.query_one(BoardPane).set_rows(rows, board.selected_id, board.floor)

    @on(BoardPane.DetailsRequested)
    def _record_details(self, msg: BoardPane.DetailsRequested) -> None:
        rec = next((r for r in self.records if r.id == msg.record_id), None)
        if rec is None:
            self.notify("no result selected")
            return
        marks = self.query_one(Leaderboard).marks.get(rec.id)
        self.app.push_screen(InfoScreen(f"Result: {rec.model.get('label') or rec.id}",
                                        record_details(rec, marks.notes() if marks else ())))

    @on(BoardPane.CompareRequested)
    def _compare(self, msg: BoardPane.CompareRequested) -> None:
        from qtui.core.results.store import ResultStore
        from qtui.ui.screens.compare import CompareScreen

        found = {r.id: r for r in self.records if r.id in (msg.a, msg.b)}
        if len(found) < 2:
            self.notify("the results to compare are gone", severity="warning")
            return
        store = ResultStore(self.host.ctx.data_dir).root
        self.app.push_screen(CompareScreen(store, found[msg.a], found[msg.b], self.query_one(Leaderboard).floor))

    @on(BoardPane.DiffRequested)
    def _board_diff(self, msg: BoardPane.DiffRequested) -> None:
        from qtui.core.gguf.model_info import model_info
        from qtui.core.gguf.reader import GGUFError

        found = {r.id: r for r in self.records if r.id in (msg.a, msg.b)}
        if len(found) < 2:
            self.notify("the results to diff are gone", severity="warning")
            return
        infos = []
        for rec in (found[msg.a], found[msg.b]):
            name = rec.model.get("label") or rec.id
            path = rec.model.get("path")
            if not path:  # a published or imported row: only its numbers are known
                self.notify(f"{name} has no local model file (a published or imported result): the tensor-mix diff "
                            "needs both files", severity="warning", timeout=6)
                return
            try:
                infos.append(model_info(Path(str(path))))
            except (GGUFError, OSError) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                self.notify(f"cannot read {name}'s model file {path}: {why}", severity="warning", timeout=6)
                return
        a, b = infos
        self.app.push_screen(InfoScreen(f"Tensor-mix diff: {a.path.name} vs {b.path.name}", mix_diff_details(a, b)))

    @on(BoardPane.FullRunRequested)
    def _full_run(self, msg: BoardPane.FullRunRequested) -> None:
        rec = next((r for r in self.records if r.id == msg.record_id), None)
        if rec is None:
            self.notify("the selected result is gone", severity="warning")
            return
        if self.host.ctx.read_only:
            self.notify(self.host.read_only_reason(), severity="warning")
            return
        self.notify(f"queuing a full run of {rec.model.get('label') or rec.id}…", timeout=1.5)
        self._queue_full_run(rec)

    @work(thread=True, exclusive=True, group="plan", exit_on_error=False, description="queuing a full run")
    def _queue_full_run(self, rec: ResultRecord) -> None:
        self.post_message(self.host.queue_full_run(rec, self.gpu_name()))

    def action_export(self) -> None:
        """The board's rows as shown (sorted, finished runs) and the records behind them."""
        from qtui.ui.screens.export import ExportScreen

        if not self._export_source()[0]:
            self.notify("nothing to export yet: no finished KLD runs", severity="warning")
            return
        # Read again when Export is pressed: a run that finishes meanwhile is in the file.
        self.app.push_screen(ExportScreen(self._export_source), self._exported)

    def _export_source(self) -> tuple[list[Row], list[ResultRecord]]:
        """The finished rows of the setup shown, in the board's order, and their records only
        (an export never mixes setups)."""
        rows = [r for r in self.query_one(Leaderboard).rows if r.status == "done"]
        ids = {r.id for r in rows}
        return rows, [r for r in self.records if r.id in ids]

    def _exported(self, path: Path | None) -> None:
        if path is not None:
            self.notify(f"exported to {path}", title="Export")

    # -- models ----------------------------------------------------------------------------
    def _models_measured(self) -> None:
        """Mark the files measured on the setup a run would use now (the demo's own, in the demo)."""
        auto, cfg = self.host.ctx.autostart, self.host.ctx.cfg
        ctx, chunks, corpus = (auto.ctx, auto.chunks, auto.corpus) if auto else (cfg.ctx, cfg.chunks, cfg.corpus)
        self.query_one(ModelList).set_records(list(self.records), ctx, chunks, str(corpus) if corpus else None)

    @on(ModelList.Changed)
    def _models_changed(self) -> None:
        auto = self.host.ctx.autostart
        ml = self.query_one(ModelList)
        if auto is None or ml.scanning or self._autostarted:
            return
        # qtui demo: the ladder it just made is chosen and started without a key press.
        self._autostarted = True
        by_path = {m.path.resolve(): m.path for m in ml.models}
        base = by_path.get(auto.base.resolve())
        variants = [by_path[v.resolve()] for v in auto.variants if v.resolve() in by_path]
        if base is None or not variants:
            self.notify("the demo models were not found by the scan; choose them by hand", severity="warning")
            return
        ml.choose(base, variants)
        self.action_start()
        infos = {m.path: m for m in ml.models}
        notes = demo_notes(infos[base].upcast_from, [infos[v].quant for v in variants], has_experts(infos[base]))
        if notes:
            # Before the first row lands: the ranking it will show has two artefacts of how it is made.
            self.notify(" ".join(notes), title="about this demo", timeout=30)

    @on(ModelList.DetailsRequested)
    def _model_details(self, msg: ModelList.DetailsRequested) -> None:
        ml = self.query_one(ModelList)
        extra = [*(["measured on this setup (✓): its result is on the Leaderboard"] if msg.model.path in ml.measured else []),
                 *([f"same tensors as {', '.join(ml.twins[msg.model.path])} (≡): same types, same sizes"]
                   if msg.model.path in ml.twins else [])]
        self.app.push_screen(InfoScreen(f"Model: {msg.model.path.name}", model_details(msg.model, extra)))

    @on(ModelList.DiffRequested)
    def _model_diff(self, msg: ModelList.DiffRequested) -> None:
        self.app.push_screen(InfoScreen(f"Tensor-mix diff: {msg.a.path.name} vs {msg.b.path.name}",
                                        mix_diff_details(msg.a, msg.b)))

    @on(ModelList.SkippedRequested)
    def _skipped(self, msg: ModelList.SkippedRequested) -> None:
        self.app.push_screen(InfoScreen(f"{len(msg.skipped)} skipped file(s)", skipped_details(msg.skipped)))

    # -- start -----------------------------------------------------------------------------
    def action_start_screened(self) -> None:
        """Start with adaptive screening: every variant on the first chunks, on only while its
        place is open (as `qtui run --screen`)."""
        self.action_start(screen=True)

    def action_start_with_floor(self) -> None:
        """Start and also measure the noise floor: the base against its own log-probs with
        half the batch (as `qtui run --floor`); differences below it are ties."""
        self.action_start(floor=True)

    def action_start_with_speed(self) -> None:
        """Start and also measure each variant's speed with llama-bench (as `qtui run --speed`)."""
        self.action_start(speed=True)

    def action_start(self, screen: bool = False, floor: bool = False, speed: bool = False) -> None:
        if self.host.ctx.read_only:
            self.notify(self.host.read_only_reason(), severity="warning")
            return
        choice = self.query_one(ModelList).choice()
        if choice.base is None:
            self.notify("Choose a base model first: move to it on the Models tab and press b.", severity="warning")
            self.action_tab("models")
            return
        if not choice.variants:
            self.notify("Choose variants to compare first: space toggles one, a chooses all shown.", severity="warning")
            self.action_tab("models")
            return
        # Which variants are worth running (not measured, queued or running on this setup) is
        # the showdown service's call, as for `qtui run`: it says what it skipped and why.
        self.notify(f"checking {len(choice.variants)} variant(s) and the corpus…", timeout=1.5)
        self._plan(choice, screen, floor, speed)

    @work(thread=True, exclusive=True, group="plan", exit_on_error=False, description="planning the showdown")
    def _plan(self, choice: Choice, screen: bool = False, floor: bool = False, speed: bool = False) -> None:
        self.post_message(self.host.plan_and_queue(choice, self.gpu_name(), screen, floor, speed))

    def on_run_queued(self, msg: RunQueued) -> None:
        if not msg.jobs:
            self.notify("\n".join(["nothing new to run", *msg.notes]), title="Not started", severity="warning", timeout=8)
            return
        kld = sum(1 for j in msg.jobs if j.spec.kind == "kld")
        base = any(j.spec.kind == "base" for j in msg.jobs)
        # One toast, not one per note: at 80x24 a stack of them hides the run panel.
        speed = sum(1 for j in msg.jobs if j.spec.kind == "speed")
        what = f"queued {kld} KLD run(s)" + (f" and {speed} speed run(s)" if speed else "")
        text = "\n".join([what + (" after the base log-probs" if base else ""), *msg.notes])
        self.notify(text, title="Started", timeout=5)
        self.host.wake_source()
        self.action_tab("runs")

    def on_start_refused(self, msg: StartRefused) -> None:
        self.app.push_screen(InfoScreen(msg.title, problems_text(msg.problems, msg.hint), id="refused"))

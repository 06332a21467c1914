"""The qtui app: one factory (`make_app`) shared by the CLI, the pilot tests and the snapshots.

Everything the app reads from the outside world comes in through AppContext (config, folders,
the data Source, the GPU sampler, llama tools, the clock), so a test swaps any of them and the
rest of the app runs unchanged.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from qtui.core.config import Config, effective_data_dir, effective_llama_bin, load_config, save_config
from qtui.core.jobs.queue import ACTIVE
from qtui.core.llama.tools import LlamaTools
from qtui.core.results.store import ResultRecord
from qtui.core.showdown.request import ShowdownRequest
from qtui.ui.bindings import APP_BINDINGS
from qtui.ui.commands import QtuiCommands
from qtui.ui.messages import RunQueued, StartRefused
from qtui.ui.screens.main import MainScreen
from qtui.ui.source import FsSource, GpuSampler, Pump, RecordsSource, Source, cluster_pump, gpu_pump
from qtui.ui.widgets.model_list import Choice

FALLBACK_THEME = "textual-dark"
LLAMA_FIX = ("To fix: run `qtui setup-llama` (builds llama.cpp's tools into qtui's cache, CUDA when a GPU is "
             "found), or open Settings (, or f2) and set 'llama bin' to a folder holding llama-perplexity.")


Autostart = ShowdownRequest
"""`qtui demo`: choose the request's models and start at once with its corpus, ctx, chunks and
`again`; its llama_args are appended to the configured ones (the demo asks for finer progress)."""


@dataclass
class AppContext:
    cfg: Config
    dirs: list[Path]
    data_dir: Path
    results: Path | None = None
    llama_bin: str | None = None
    config_path: Path | None = None
    config_problems: list[str] = field(default_factory=list)
    tools: LlamaTools | None = None
    """use these tools instead of searching (tests, the demo)"""
    source: Source | None = None
    gpu: GpuSampler | None = None
    clock: Callable[[], float] = time.time
    poll_interval: float = 0.33
    keep_going_interval: float = 5.0
    """seconds between checks that a scheduler runs while jobs wait (it may have been killed)"""
    gpu_interval: float | None = None
    theme_dirs: list[Path] | None = None
    autostart: Autostart | None = None

    @property
    def read_only(self) -> bool:
        return self.results is not None


class QtuiApp(App[int]):
    CSS_PATH = "qtui.tcss"
    TITLE = "qtui"
    COMMANDS = App.COMMANDS | {QtuiCommands}
    BINDINGS = APP_BINDINGS

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.source: Source = ctx.source or (RecordsSource(ctx.results) if ctx.results else FsSource(ctx.data_dir))
        self._pumps: list[Pump] = []
        self._source_pump: Pump | None = None
        if ctx.read_only:
            self.sub_title = f"results: {ctx.results} (read-only)"

    def get_default_screen(self) -> Screen[Any]:
        return MainScreen(self)

    def on_mount(self) -> None:
        self._load_themes()
        for p in self.ctx.config_problems:
            self.notify(p, title="config", severity="warning", timeout=10)

    def start_pumps(self, screen: Screen[Any]) -> None:
        """Start polling once `screen` has its widgets: every message goes to it."""
        if self._pumps:
            return
        self._source_pump = self._start_pump(Pump(self.source.poll, screen.post_message, self.ctx.poll_interval))
        if not self.ctx.read_only:
            from qtui.core.gpu import Nvml

            sampler = self.ctx.gpu or Nvml()
            interval = self.ctx.gpu_interval or self.ctx.cfg.gpu_interval_s
            self._start_pump(gpu_pump(sampler, screen.post_message, interval))
            self._start_pump(cluster_pump(lambda: self.ctx.data_dir, screen.post_message, max(interval, 1.0)))
            self.ensure_scheduler()  # opening qtui re-attaches: a scheduler that died comes back
            # ... and so does one that dies while qtui is open: the app reads the queue all the
            # time, it must keep its work going as every reading command does.
            self.set_interval(self.ctx.keep_going_interval, self.ensure_scheduler)

    def _start_pump(self, pump: Pump) -> Pump:
        self._pumps.append(pump)
        self.run_worker(pump.run, thread=True, group="pumps", exit_on_error=False, description="polling")
        return pump

    def wake_source(self) -> None:
        if self._source_pump is not None:
            self._source_pump.wake()

    def on_unmount(self) -> None:
        for p in self._pumps:
            p.stop()
        self.source.close()

    # -- themes ----------------------------------------------------------------------------
    def _load_themes(self) -> None:
        from qtui.ui.themes import load_themes, theme_dirs

        themes, problems = load_themes(self.ctx.theme_dirs if self.ctx.theme_dirs is not None else theme_dirs())
        for t in themes:
            self.register_theme(t)
        for p in problems:
            self.notify(p, title="theme", severity="warning", timeout=10)
        wanted = self.ctx.cfg.theme
        if wanted in self.available_themes:
            self.theme = wanted
        else:
            self.notify(f"theme {wanted!r} not found; using {FALLBACK_THEME}", title="theme", severity="warning")
            self.theme = FALLBACK_THEME
        self.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, theme: Any) -> None:
        if theme.name != self.ctx.cfg.theme:
            self.ctx.cfg = replace(self.ctx.cfg, theme=theme.name)
            self._save_config(self.ctx.cfg)

    @work(thread=True, group="config", exit_on_error=False, description="saving the settings")
    def _save_config(self, cfg: Config) -> None:
        save_config(cfg, self.ctx.config_path)

    def action_theme(self) -> None:
        self.action_change_theme()

    def action_next_theme(self) -> None:
        """The next theme by name, as the picker lists them; saved by _theme_changed."""
        names = sorted(self.available_themes)
        self.theme = names[(names.index(self.theme) + 1) % len(names)] if self.theme in names else names[0]
        self.notify(f"theme {self.theme} (T: pick from a list)", timeout=2)

    # -- settings, help ------------------------------------------------------------
    def action_settings(self) -> None:
        from qtui.ui.screens.settings import SettingsScreen

        self.push_screen(SettingsScreen(self.ctx.cfg, self.ctx.config_path), self._settings_saved)

    def _settings_saved(self, cfg: Config | None) -> None:
        if cfg is None:
            return
        old = self.ctx.cfg
        self.ctx.cfg = cfg
        from qtui.core.paths import config_file

        self.notify(f"settings saved to {self.ctx.config_path or config_file()}", timeout=3)
        if cfg.data_dir != old.data_dir and self.ctx.source is None and not self.ctx.read_only:
            self.notify("the new data dir is used from the next start of qtui", severity="warning")
        queue = self.source.queue
        if cfg.slots != old.slots and queue is not None:
            from qtui.core.jobs.scheduler import scheduler_running

            # The scheduler took its slot count when it started and keeps it while work is queued.
            if scheduler_running(queue.data_dir):
                self.notify(f"parallel runs: {old.slots} until the queue is empty, then {cfg.slots} "
                            "(the scheduler keeps its count while it has work)", severity="warning")

    def action_help(self) -> None:
        from qtui.ui.commands import key_groups
        from qtui.ui.screens.help import HelpScreen

        self.push_screen(HelpScreen(key_groups()))

    def read_only_reason(self) -> str:
        return (f"read-only: qtui was opened with --results {self.ctx.results}. "
                "Run qtui without --results to measure models.")

    # -- runs ------------------------------------------------------------------------------
    def showdown_request(self, choice: Choice) -> ShowdownRequest:
        """The settings, and the demo's own (autostart) over them, for the chosen models."""
        cfg, auto = self.ctx.cfg, self.ctx.autostart
        assert choice.base is not None
        request = ShowdownRequest(base=choice.base, variants=choice.variants, corpus=cfg.corpus, ctx=cfg.ctx,
                                  chunks=cfg.chunks, llama_args=cfg.llama_args, base_args=cfg.base_args,
                                  gpus_per_run=cfg.gpus_per_run, cluster=cfg.cluster or None,
                                  cluster_base_dir=Path(cfg.cluster_base_dir).expanduser() if cfg.cluster_base_dir else None)
        if auto is None:
            return request
        return replace(request, corpus=auto.corpus or request.corpus, ctx=auto.ctx, chunks=auto.chunks or request.chunks,
                       llama_args=(*request.llama_args, *auto.llama_args), again=auto.again)

    def plan_and_queue(self, choice: Choice, gpu_name: str | None, screen: bool = False,
                       floor: bool = False, speed: bool = False) -> RunQueued | StartRefused:
        """Blocking (thread worker): the showdown service plans, reuses, queues and makes sure
        a scheduler runs, exactly as for `qtui run` (with `screen`, `floor` or `speed`, as
        `qtui run --screen`, `--floor` or `--speed`)."""
        if self.source.queue is None or choice.base is None:
            return StartRefused("Read-only", [self.read_only_reason()])
        request = replace(self.showdown_request(choice), screen=screen, floor=floor, speed=speed)
        return self.queue_request(request, gpu_name)

    def queue_full_run(self, record: ResultRecord, gpu_name: str | None) -> RunQueued | StartRefused:
        """Blocking: a full KLD run of a result's variant on its own setup (a screened variant
        ran only some chunks), measured again on purpose."""
        from qtui.core.showdown.request import NoFullRun, full_run_request

        try:
            request = full_run_request(record, self.ctx.cfg.llama_args, self.ctx.cfg.base_args)
        except NoFullRun as exc:
            return StartRefused("Cannot run it in full", [str(exc)])
        return self.queue_request(request, gpu_name)

    def queue_request(self, request: ShowdownRequest, gpu_name: str | None) -> RunQueued | StartRefused:
        """Blocking: hand one request to the showdown service; its refusals in words."""
        from qtui.core.llama.tools import LlamaNotFound
        from qtui.core.showdown.service import DataDirError, RunRefused, Showdown, load_tools

        queue = self.source.queue
        if queue is None:
            return StartRefused("Read-only", [self.read_only_reason()])
        cfg = self.ctx.cfg
        try:
            tools, build = load_tools(self.ctx.llama_bin, effective_llama_bin(cfg), self.ctx.tools)
        except LlamaNotFound as exc:
            return StartRefused("llama-perplexity is not available", [str(exc)], LLAMA_FIX)
        try:
            queued = Showdown(queue.data_dir, cfg.slots).start(request, tools, build, gpu_name)
        except RunRefused as exc:
            return StartRefused("Cannot start the showdown", exc.problems,
                                "Fix these (Settings: , or f2) and press s again.")
        except DataDirError as exc:
            return StartRefused("Cannot queue the runs", [str(exc)],
                                "Free some space or choose another data dir (Settings: , or f2).")
        hint = {"measured": " (see the Leaderboard)", "queued": " (see the Runs tab)", "running": " (see the Runs tab)"}
        skipped = [s.text + hint.get(s.why, "") for s in queued.skipped]
        return RunQueued(queued.jobs, [*queued.notes, *skipped])

    def ensure_scheduler(self) -> None:
        """Restart the scheduler if it died with work pending (off the UI thread)."""
        queue = self.source.queue
        if queue is not None:
            self._ensure_scheduler(queue.data_dir, self.ctx.cfg.slots)

    @work(thread=True, group="scheduler", exit_on_error=False, description="starting the scheduler")
    def _ensure_scheduler(self, data_dir: Path, slots: int) -> None:
        from qtui.core.showdown.service import Showdown

        Showdown(data_dir, slots).ensure_scheduler()

    # -- quitting --------------------------------------------------------------------------
    def action_request_quit(self) -> None:
        from qtui.ui.screens.quit import QuitScreen

        # The main screen holds the queue as last read: the same counts its Runs tab shows.
        main = next((s for s in self.screen_stack if isinstance(s, MainScreen)), None)
        jobs = main.jobs if main is not None else []
        running = sum(1 for j in jobs if j.state.status == "running")
        waiting = sum(1 for j in jobs if j.state.status == "queued")
        if self.ctx.read_only or not (running or waiting):
            self.exit(0)
            return
        self.push_screen(QuitScreen(running, waiting), self._quit_chosen)

    async def action_quit(self) -> None:
        # The palette's built-in Quit too must say that runs go on.
        self.action_request_quit()

    def _quit_chosen(self, choice: str | None) -> None:
        if choice == "quit":
            self.exit(0)
        elif choice == "cancel-all":
            self._cancel_all_and_exit()

    @work(thread=True, group="quit", exit_on_error=False, description="cancelling the runs")
    def _cancel_all_and_exit(self) -> None:
        queue = self.source.queue
        if queue is not None:
            # Waiting jobs first, so the scheduler cannot start one while the running one stops.
            jobs = sorted((j for j in queue.jobs() if j.state.status in ACTIVE), key=lambda j: j.state.status != "queued")
            for j in jobs:
                queue.cancel(j.id)
        self.call_from_thread(self.exit, 0)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # One place for every worker that failed unexpectedly: say what it was doing.
        if event.state == WorkerState.ERROR:
            err = event.worker.error
            self.notify(f"{event.worker.description or event.worker.name} failed: {err}", severity="error", timeout=10)


def make_app(*, dirs: list[Path] | None = None, results: Path | None = None, data_dir: Path | None = None,
             llama_bin: str | None = None, config_path: Path | None = None, **overrides: Any) -> QtuiApp:
    """The app as the CLI opens it; keyword overrides replace AppContext fields (tests)."""
    cfg, problems = load_config(config_path)
    if dirs is None:
        dirs = [Path.cwd()] + [Path(d).expanduser() for d in cfg.model_dirs]
    ctx = AppContext(
        cfg=cfg, dirs=[Path(d) for d in dirs], data_dir=Path(data_dir) if data_dir else effective_data_dir(cfg),
        results=results, llama_bin=llama_bin, config_path=config_path, config_problems=problems,
    )
    for key, value in overrides.items():
        if not hasattr(ctx, key):
            raise TypeError(f"make_app() got an unknown option {key!r}")
        setattr(ctx, key, value)
    return QtuiApp(ctx)


def run_app(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    autostart = getattr(args, "autostart", None)  # qtui demo's request
    if autostart is not None:
        overrides["autostart"] = autostart
    app = make_app(dirs=getattr(args, "dirs", None), results=getattr(args, "results", None),
                   data_dir=getattr(args, "data_dir", None), llama_bin=getattr(args, "llama_bin", None), **overrides)
    result = app.run()
    return app.return_code or (result or 0)

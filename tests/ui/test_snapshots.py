"""Snapshot tests of the app's main states, at 80x24 (the smallest supported) and one larger.

Live data comes from a ScriptedSource through the same Message path a real run uses: jobs and
times are fixed, progress is parsed from the first half of REAL recorded transcripts, records
are the published figures in sample_results/. The clock is fixed, so ETAs are too.
Update with: pytest tests/ui/test_snapshots.py --snapshot-update (and look at the SVGs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.message import Message
from textual.widgets import TabbedContent

from qtui.core.gpu import GpuProcess, GpuSample, GpuSnapshot
from qtui.core.jobs.queue import Job, JobSpec, JobState
from qtui.core.llama.parser import Progress, StreamParser
from qtui.core.results.store import load_records
from qtui.ui.messages import JobsChanged, LiveRun, RecordsChanged, RunProgress
from qtui.ui.screens.details import InfoScreen
from qtui.ui.screens.help import HelpScreen
from qtui.ui.screens.quit import QuitScreen
from qtui.ui.source import ScriptedSource
from qtui.ui.widgets.model_list import ModelList
from tests.ui.conftest import FIXTURES, NoGpu, wait_for

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_results" / "qwen3.5-27b-q4-published.json"
T0 = 1_790_000_000.0  # a fixed "now"
PID = 4242


class OneGpu:
    """An H100 as NVML describes it, with the running job's process on it."""

    permanently_unavailable = False

    def sample(self) -> GpuSnapshot:
        gib = 1024**3
        gpu = GpuSample(0, "NVIDIA H100 80GB HBM3", None, int(21.5 * gib), int(79.6 * gib), 97, 41, 63, 412.0, 700.0,
                        (GpuProcess(PID, int(20.1 * gib)),))
        return GpuSnapshot(True, None, "570.124.06", (gpu,), T0)


def job(label: str, kind: str, status: str, *, started: float | None = None, ended: float | None = None,
        reason: str | None = None, pid: int | None = None, seq: float = 0.0) -> Job:
    spec = JobSpec(kind=kind, argv=["llama-perplexity"], label=label, id=f"job-{label}", seq=seq,  # type: ignore[arg-type]
                   created_at=T0 - 100)
    state = JobState(status=status, pid=pid, started_at=started, ended_at=ended, reason=reason)  # type: ignore[arg-type]
    return Job(spec, state, Path("/nonexistent"))


def replay(case: str, fraction: float = 1.0) -> LiveRun:
    """The parser's view of a real transcript, cut after `fraction` of its stdout."""
    folder = FIXTURES / "llama" / "b0336"
    out = (folder / f"{case}.out").read_bytes()
    err = (folder / f"{case}.err").read_bytes()
    p = StreamParser()
    events = p.feed("err", err) + p.feed("out", out[: int(len(out) * fraction)])
    history = tuple(e for e in events if isinstance(e, Progress))
    return LiveRun("", p.started, history[-1] if history else None, history, p.stderr_tail(), tuple(p.warnings))


def live_for(j: Job, live: LiveRun) -> RunProgress:
    """The snapshot a LiveTracker following `j` would make: its id and its start (for the ETA)."""
    return RunProgress(replace(live, job_id=j.id, started_at=j.state.started_at))


class Script(ScriptedSource):
    """A ScriptedSource that counts its polls: the pump posts a batch before it polls again,
    so a second poll means the script's messages are on their way to the screen."""

    polls = 0

    def poll(self) -> list[Message]:
        self.polls += 1
        return super().poll()


def scripted(*messages: Message) -> Script:
    return Script([list(messages)])


def running_state() -> list[Message]:
    base = job("base tiny-F16.gguf", "base", "done", started=T0 - 60, ended=T0 - 40, seq=1)
    q8 = job("tiny-Q8_0.gguf", "kld", "done", started=T0 - 40, ended=T0 - 30, seq=2)
    q4 = job("tiny-Q4_0.gguf", "kld", "running", started=T0 - 30, pid=PID, seq=3)
    waiting = job("tiny-IQ4_XS.gguf", "kld", "queued", seq=4)
    return [JobsChanged([base, q8, q4, waiting]), live_for(base, replay("base")), live_for(q8, replay("kld-q8_0")),
            live_for(q4, replay("kld-q4_0", 0.55))]


def failed_state() -> list[Message]:
    base = job("base tiny-F16.gguf", "base", "done", started=T0 - 60, ended=T0 - 40, seq=1)
    bad = job("tiny-Q4_0.gguf", "kld", "failed", started=T0 - 40, ended=T0 - 39, seq=2,
              reason="the base file ends before chunk 40: it is truncated (probably cut short by a killed run); "
                     "delete it and generate it again")
    return [JobsChanged([base, bad]), live_for(base, replay("base")), live_for(bad, replay("fail-truncated-base"))]


@pytest.fixture
def snap_app(app_factory: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.chdir(tmp_path)  # model folders are shown relative: no tmp path in the picture

    def make(messages: list[Message] | None = None, dirs: list[Path] | None = None, **kw: Any) -> Any:
        kw.setdefault("clock", lambda: T0)
        return app_factory(dirs or [Path("no-models")], source=scripted(*(messages or [])), **kw)

    return make


def scan_done(*then: str, until: Callable[[Any], object] | None = None) -> Any:
    """run_before for snap_compare: wait until the scan, the plot, the script and the first GPU
    sample are on the screen, press `then`, and wait until `until(app)` says the keys took effect."""

    async def run_before(pilot: Any) -> None:
        app = pilot.app
        await wait_for(pilot, lambda: bool(app.screen.query(ModelList)), 15, "the main screen")
        ml = app.screen.query_one(ModelList)
        # the plot is mounted after the first frame
        await wait_for(pilot, lambda: not ml.scanning and bool(app.screen.query("Scatter")), 15, "the scan and the plot")
        await wait_for(pilot, lambda: app.source.polls >= 2 and app.screen.last_gpu is not None, 15,
                       "the scripted messages and the first GPU sample")
        await pilot.pause()  # the screen handles every message posted so far
        await pilot.press(*then)
        if until is not None:
            await wait_for(pilot, lambda: bool(until(app)), 10, f"the effect of {' '.join(then)}")

    return run_before


def tab_shown(tab: str) -> Callable[[Any], bool]:
    """The tab is active and the focus has moved into it (focus_tab runs after a refresh)."""
    def shown(app: Any) -> bool:
        focused = app.focused
        return (app.screen.query_one(TabbedContent).active == tab and focused is not None
                and any(node.id == tab for node in focused.ancestors))

    return shown


def on_top(screen_type: type) -> Callable[[Any], bool]:
    return lambda app: isinstance(app.screen, screen_type)


def test_empty(snap_compare: Any, snap_app: Any) -> None:
    Path("no-models").mkdir()
    assert snap_compare(snap_app(), run_before=scan_done(), terminal_size=(80, 24))


def test_model_list(snap_compare: Any, snap_app: Any, models_dir: Path) -> None:
    app = snap_app(dirs=[Path("models")])
    assert snap_compare(app, run_before=scan_done("down", "space", "space", until=lambda app: len(app.screen.query_one(ModelList).chosen) == 2),
                        terminal_size=(80, 24))


def test_model_details(snap_compare: Any, snap_app: Any, models_dir: Path) -> None:
    app = snap_app(dirs=[Path("models")])
    assert snap_compare(app, run_before=scan_done("down", "i", until=on_top(InfoScreen)), terminal_size=(80, 24))


def test_running_mid_run_narrow(snap_compare: Any, snap_app: Any) -> None:
    app = snap_app(running_state(), gpu=OneGpu())
    assert snap_compare(app, run_before=scan_done("2", until=tab_shown("runs")), terminal_size=(80, 24))


def test_running_mid_run_wide(snap_compare: Any, snap_app: Any) -> None:
    app = snap_app(running_state(), gpu=OneGpu())
    assert snap_compare(app, run_before=scan_done("2", until=tab_shown("runs")), terminal_size=(160, 40))


def test_failed_run(snap_compare: Any, snap_app: Any) -> None:
    app = snap_app(failed_state(), gpu=NoGpu())
    assert snap_compare(app, run_before=scan_done("2", "down", "ctrl+t", until=lambda app: app.screen.query_one("#run-stderr").display),
                        terminal_size=(80, 24))


def test_finished_leaderboard_narrow(snap_compare: Any, snap_app: Any) -> None:
    records = load_records(SAMPLE).records
    app = snap_app([RecordsChanged(records)])
    assert snap_compare(app, run_before=scan_done("3", until=tab_shown("board")), terminal_size=(80, 24))


def test_finished_leaderboard_wide(snap_compare: Any, snap_app: Any) -> None:
    records = load_records(SAMPLE).records
    app = snap_app([RecordsChanged(records)], gpu=OneGpu())
    assert snap_compare(app, run_before=scan_done("3", until=tab_shown("board")), terminal_size=(160, 40))


def test_help_narrow(snap_compare: Any, snap_app: Any) -> None:
    assert snap_compare(snap_app(), run_before=scan_done("question_mark", until=on_top(HelpScreen)), terminal_size=(80, 24))


def test_quit_while_running(snap_compare: Any, snap_app: Any) -> None:
    app = snap_app(running_state(), gpu=NoGpu())
    assert snap_compare(app, run_before=scan_done("2", "q", until=on_top(QuitScreen)), terminal_size=(80, 24))


def test_running_no_color(snap_compare: Any, snap_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Under NO_COLOR the states, marks and the chart must still read: words and glyphs, not hues.
    monkeypatch.setenv("NO_COLOR", "1")
    app = snap_app(running_state(), gpu=OneGpu())
    assert snap_compare(app, run_before=scan_done("2", until=tab_shown("runs")), terminal_size=(80, 24))

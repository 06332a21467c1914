"""The run panel: one job up close. Chunks done and ETA, the running KLD with its ± band
narrowing as chunks accumulate, same-top-p and PPL, the failure reason in words, and the
stderr tail on demand.

The band chart is drawn with plain block characters rather than plotext: it redraws several
times a second during a run, must stay cheap, and reads the same without colour (▀▄ the
value, ░ the ± band).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from qtui.core import formats
from qtui.core.jobs.live import LiveRun
from qtui.core.jobs.queue import Job
from qtui.core.llama.events import Progress
from qtui.ui.widgets.queue import STATE_STYLE, state_word, where

AXIS = 9
BAR_WIDTH = 20
_KIND_WORDS = {"base": "base log-probs", "kld": "KLD", "speed": "speed, llama-bench"}


def _speed_text(job: Job) -> str:
    """A speed job's figures once it ended (tokens per second), or what it is doing."""
    if job.state.status == "running":
        return "llama-bench is measuring prompt and generation speed…"
    from qtui.core.llama.bench import parse_bench

    try:
        res = parse_bench(job.stdout_path.read_bytes(), b"", 0)
    except OSError:
        return ""
    parts = [f"{name} {t.avg_ts:.1f} ± {t.stddev_ts:.1f} t/s" for name, t in (("pp", res.pp), ("tg", res.tg)) if t]
    return " · ".join(parts)


def _fmt(v: float) -> str:
    if v == 0 or math.isnan(v) or math.isinf(v):
        return str(v)
    return f"{v:.3g}" if abs(v) >= 1000 else f"{v:.5f}"[: AXIS - 1]


class BandRenderable:
    """The value (▀/▄, half a cell high) over its ± error band (░), the whole run's chunks
    stretched over the panel's width."""

    def __init__(self, values: Sequence[float], errs: Sequence[float | None], total: int | None,
                 value_style: Style, band_style: Style, axis_style: Style) -> None:
        self.values = values
        self.errs = errs
        self.total = total
        self.styles = (value_style, band_style, axis_style)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(1, options.max_width - AXIS)
        height = max(2, options.height or 6)
        value_style, band_style, axis_style = self.styles
        pts = [(v, e or 0.0) for v, e in zip(self.values, self.errs) if math.isfinite(v)]
        if not pts:
            for _ in range(height):
                yield Segment(" " * options.max_width)
                yield Segment.line()
            return
        lo = min(v - e for v, e in pts)
        hi = max(v + e for v, e in pts)
        if hi - lo < 1e-12:
            lo, hi = lo - 1e-6, hi + 1e-6
        n_slots = max(len(pts), self.total or 0)
        sub_rows = 2 * height  # half blocks: twice the vertical resolution of whole cells

        def sub_of(y: float) -> int:
            return min(sub_rows - 1, max(0, int((hi - y) / (hi - lo) * (sub_rows - 1) + 0.5)))

        grid = [[" "] * width for _ in range(height)]
        for c in range(width):
            # Stretched over the whole run: the empty right part is the chunks still to come.
            idx = c * n_slots // width
            if idx >= len(pts):
                break
            v, e = pts[idx]
            for r in range(sub_of(v + e) // 2, sub_of(v - e) // 2 + 1):
                grid[r][c] = "░"
            k = sub_of(v)
            grid[k // 2][c] = "▀" if k % 2 == 0 else "▄"
        for r in range(height):
            label = _fmt(hi) if r == 0 else (_fmt(lo) if r == height - 1 else "")
            yield Segment(label.rjust(AXIS - 1) + "│", axis_style)
            for ch, run in _runs("".join(grid[r])):
                yield Segment(run, band_style if ch == "░" else None if ch == " " else value_style)
            yield Segment.line()


def _runs(line: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for ch in line:
        if out and out[-1][0] == ch:
            out[-1] = (ch, out[-1][1] + ch)
        else:
            out.append((ch, ch))
    return out


class BandChart(Widget):
    DEFAULT_CSS = """
    BandChart { height: 1fr; min-height: 3; }
    BandChart > .band--value { color: $accent; }
    BandChart > .band--band { color: $primary-muted; }
    BandChart > .band--axis { color: $text-muted; }
    """
    COMPONENT_CLASSES = {"band--value", "band--band", "band--axis"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.values: list[float] = []
        self.errs: list[float | None] = []
        self.total: int | None = None

    def set_data(self, values: list[float], errs: list[float | None], total: int | None) -> None:
        self.values, self.errs, self.total = values, errs, total
        self.refresh()

    def render(self) -> BandRenderable:
        return BandRenderable(self.values, self.errs, self.total,
                              self.get_component_rich_style("band--value"),
                              self.get_component_rich_style("band--band"),
                              self.get_component_rich_style("band--axis"))


class RunPanel(Vertical):
    """Shows the job it is given; `show()` is cheap enough to call on every progress message."""

    def __init__(self, *, clock: Callable[[], float] = time.time, id: str | None = None) -> None:
        super().__init__(id=id)
        self.clock = clock
        self.job: Job | None = None
        self.live: LiveRun | None = None
        self.ahead: int | None = None
        """waiting jobs before this one in the queue (shown while it waits)"""
        self.show_stderr = False

    def compose(self) -> ComposeResult:
        yield Static(id="run-title")
        yield Static(id="run-progress")
        yield Static(id="run-values")
        yield BandChart(id="run-chart")
        yield Static(id="run-reason")
        with VerticalScroll(id="run-stderr"):
            yield Static(id="run-stderr-text")

    def on_mount(self) -> None:
        self.query_one("#run-stderr").display = False
        self._refresh_view()

    def show(self, job: Job | None, live: LiveRun | None, ahead: int | None = None) -> None:
        self.job, self.live, self.ahead = job, live, ahead
        self._refresh_view()

    def toggle_stderr(self) -> bool:
        self.show_stderr = not self.show_stderr
        self.query_one("#run-stderr").display = self.show_stderr
        self._refresh_view()
        return self.show_stderr

    def _waiting_text(self, job: Job) -> str:
        if job.spec.kind == "speed" and job.state.status in ("running", "done"):
            return _speed_text(job)
        if job.state.status == "running":
            return "waiting for the first chunk…"
        if job.state.status != "queued":
            return ""
        if self.ahead is None:
            return "queued"
        return f"queued, {self.ahead} ahead" + ("" if self.ahead else ": next to start")

    def _refresh_view(self) -> None:
        job, live = self.job, self.live
        title = self.query_one("#run-title", Static)
        prog = self.query_one("#run-progress", Static)
        values = self.query_one("#run-values", Static)
        chart = self.query_one("#run-chart", BandChart)
        reason = self.query_one("#run-reason", Static)
        if job is None:
            title.update(Text("No job selected. Choose a base (b) and variants (space) on the Models tab, then s.",
                              style="dim"))
            for w in (prog, values, reason):
                w.update("")
            chart.set_data([], [], None)
            return
        word = state_word(job)
        title.update(Text.assemble((job.spec.label or job.id, "bold"), "  ", (word, STATE_STYLE.get(word, "")),
                                   where(job), f"  ({_KIND_WORDS.get(job.spec.kind, 'KLD')})"))
        p = live.latest if live else None
        total = live.n_chunks if live else None
        done = live.done if live else 0
        line = f"{formats.progress_bar(live.fraction if live else None, BAR_WIDTH)} {formats.chunks(done, total)} chunks"
        if job.spec.kind == "speed":
            line = ""  # llama-bench runs tests, not chunks
        if job.state.status == "running" and live is not None and job.spec.kind != "speed":
            line += f" · ETA {formats.duration(live.eta_s(self.clock()))}"
        elif job.state.started_at and job.state.ended_at:
            line += f"{' · ' if line else ''}took {formats.duration(job.state.ended_at - job.state.started_at)}"
        prog.update(line)
        history: tuple[Progress, ...] = live.history if live else ()
        if p is not None and p.kld is not None:
            values.update(f"KLD {formats.kld(p.kld, p.kld_err)}"
                          f" · same top {formats.plus_minus(p.same_top, p.same_top_err, 2, ' %')}"
                          f" · PPL {formats.plus_minus(p.ppl, p.ppl_err, 3)}")
            chart.set_data([h.kld for h in history if h.kld is not None],
                           [h.kld_err for h in history if h.kld is not None], total)
        elif p is not None and p.ppl is not None:
            values.update(f"PPL {formats.plus_minus(p.ppl, p.ppl_err, 4)} (base model, {done} chunks)")
            chart.set_data([h.ppl for h in history if h.ppl is not None],
                           [h.ppl_err for h in history if h.ppl is not None], total)
        else:
            values.update(self._waiting_text(job))
            chart.set_data([], [], total)
        notes: list[Text] = []
        if job.state.status in ("failed", "cancelled") and job.state.reason:
            notes.append(Text(f"✗ {job.state.status}: {job.state.reason}", style="bold red"))
        for warning in live.warnings if live else ():
            notes.append(Text(f"⚠ {warning}", style="yellow"))
        if job.state.status in ("failed", "cancelled") and not self.show_stderr:
            notes.append(Text("ctrl+t shows the end of llama-perplexity's stderr", style="dim"))
        reason.update(Text("\n").join(notes))
        if self.show_stderr:
            tail = live.stderr_tail if live and live.stderr_tail else "(no stderr yet)"
            self.query_one("#run-stderr-text", Static).update(Text(tail))
            # The last lines say what went wrong: keep them in view.
            scroll = self.query_one("#run-stderr", VerticalScroll)
            self.call_after_refresh(scroll.scroll_end, animate=False)

"""Size against mean KLD, one point per quant: the trade-off the leaderboard ranks, at a glance.

Drawn with a per-widget plotext figure (textual-plotext's `plt`), never the global plotext
module, so two plots cannot overwrite each other's state. The three kinds of point differ by
shape as well as colour (• other, ◆ Pareto front, ◉ selected) and the title says which is
which, so the plot reads the same under NO_COLOR or a monochrome theme.

Each point carries a vertical whisker of ± its mean KLD's standard error: two points whose
whiskers overlap are not told apart by their own bars (the Rank column's paired test is the
sharper judge). The noise floor, when measured, is a dashed horizontal line: KLD differences
below it are what the measurement itself moves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

from textual.app import ComposeResult, RenderResult
from textual.binding import Binding, BindingType
from textual.color import Color
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

from qtui.core.results.leaderboard import Row

MARK_OTHER, MARK_PARETO, MARK_SELECTED = "•", "◆", "◉"
MARK_WHISKER, MARK_FLOOR = "│", "╌"
# Room taken by plotext's y tick labels and frame, and by title + x ticks: used only to
# guess where labels would land, so that overlapping ones can be dropped.
_Y_AXIS_COLS, _X_AXIS_ROWS = 9, 4
_MIN_WIDTH_FOR_FRONT_LABELS = 50
_TICK_STEPS = (1.0, 2.0, 2.5, 5.0)  # tick steps: these times a power of ten
X_AXES: tuple[tuple[str, str], ...] = (("size_gib", "GiB"), ("pp_ts", "pp t/s"), ("tg_ts", "tg t/s"))
"""The scatter's x axis choices, (Row field, label): size (what the score trades KLD against),
or a speed measured by llama-bench (`qtui run --speed`)."""


def axis_ticks(lo: float, hi: float, rows: int, steps: Sequence[float] = _TICK_STEPS,
               ) -> tuple[float, float, list[float], int]:
    """Round ticks for data from `lo` to `hi` on an axis drawn over `rows` canvas rows.

    Returns the axis limits to set, the tick values and the decimals to print them with. The
    ticks are multiples of one round step (1, 2, 2.5 or 5 times a power of ten) and the limits
    are chosen so that every tick falls on a row of its own, the same number of rows apart:
    plotext rounds each tick to the nearest row, so ticks that are not a whole number of rows
    apart land unevenly, and two that land on one row lose a label (0.43, then 0.22 with 0.32
    missing). Of the steps that fit, the one leaving the least empty room wins, with a few
    ticks rather than one or a crowd. A short plot (8 rows or less) may label every row.
    """
    if rows < 3 or not hi > lo or not (math.isfinite(lo) and math.isfinite(hi)):
        return lo, hi, [], 0
    ideal = min(9.0, max(3.0, (rows - 1) / 5 + 1))  # about one label every five rows
    need = 3 if rows >= 5 else 2  # two labels alone say little about the scale
    best: tuple[float, float, float, float, int] | None = None  # (score, step, low, high, ticks)
    power = math.floor(math.log10(hi - lo)) - 2
    for p in range(power, power + 4):
        for mantissa in steps:
            step = mantissa * 10.0**p
            low = min(lo, math.floor(lo / step + 1e-9) * step)  # min: not above lo by a rounding error
            for gap in range(1 if rows <= 8 else 2, rows):  # rows from one tick to the next
                high = low + step * (rows - 1) / gap
                n = (rows - 1) // gap + 1
                if high < hi or n < need:
                    break  # a wider gap only shrinks the axis and thins the ticks further
                score = (hi - lo) / (high - low) * (1 - 0.3 * min(1.0, abs(n - ideal) / ideal)) + n * 1e-6
                if best is None or score > best[0]:  # a tie goes to more ticks (the term in n)
                    best = (score, step, low, high, n)
    if best is None:
        return lo, hi, [], 0
    _, step, low, high, n = best
    mantissa = step / 10.0 ** math.floor(math.log10(step) + 1e-9)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (1 if abs(mantissa - 2.5) < 1e-6 else 0)
    return low, high, [round(low + i * step, decimals + 3) for i in range(n)], decimals


def sizeless_note(rows: Sequence[Row], words: int = 2) -> str | None:
    """'4 rows without a size: not plotted or scored' (a published sweep often gives few sizes):
    a plot of 1 point out of 5 must say where the other 4 are. Shorter with fewer `words`."""
    n = sum(1 for r in rows if r.size_gib is None)
    if not n:
        return None
    return (f"{n} without a size", f"{n} row{'s' if n != 1 else ''} without a size: not plotted",
            f"{n} row{'s' if n != 1 else ''} without a size: not plotted or scored")[words]


def speedless_note(rows: Sequence[Row], x: str, words: int = 2) -> str | None:
    """'3 rows without a pp t/s: not plotted (qtui run --speed)', shorter with fewer `words`."""
    label = dict(X_AXES)[x]
    n = sum(1 for r in rows if getattr(r, x) is None)
    if not n:
        return None
    return (f"{n} without {label}", f"{n} row{'s' if n != 1 else ''} without {label}: not plotted",
            f"{n} row{'s' if n != 1 else ''} without {label}: not plotted (qtui run --speed)")[words]


def titled(title: str, rows: Sequence[Row], room: int, x: str = "size_gib") -> str:
    """The plot's title line with the note on rows without an x value (a size, or a speed), as
    much of it as fits in `room` cells. In the title, not on a line of its own: the plot keeps
    every row of the widget."""
    for words in (2, 1, 0):
        note = sizeless_note(rows, words) if x == "size_gib" else speedless_note(rows, x, words)
        if note is None:
            break
        if len(title) + 3 + len(note) <= room:
            return f"{title}   {note}"
    return title


def plottable(rows: Sequence[Row], log: bool, x: str = "size_gib") -> list[Row]:
    """Rows with both an x value (size, or a speed) and a KLD (a positive one on a log axis)."""
    return [r for r in rows if getattr(r, x) is not None and r.kld is not None and (r.kld > 0 or not log)]


class _FreshPlot(PlotextPlot):
    """A PlotextPlot whose figure is drawn afresh before each build.

    plotext's build changes the figure it builds (a log axis takes the log of the data in
    place), so building one figure twice, as a second render does (the plot taking focus),
    took the log of a log and failed with a math domain error.
    """

    def __init__(self, draw: Callable[[], None]) -> None:
        super().__init__()
        self._draw_figure = draw

    def render(self) -> RenderResult:
        self._draw_figure()
        return super().render()


class Scatter(Widget, can_focus=True):
    """Size (GiB), or a speed, vs mean KLD, with the Pareto front and the selected row highlighted."""

    DEFAULT_CSS = """
    Scatter {
        height: 1fr;
        min-height: 8;
        layout: vertical;
    }
    Scatter > PlotextPlot { height: 1fr; }
    Scatter > .scatter--empty {
        height: 1fr;
        content-align: center middle;
        color: $text-muted;
        display: none;
    }
    Scatter.-empty > PlotextPlot { display: none; }
    Scatter.-empty > .scatter--empty { display: block; }
    Scatter:focus > PlotextPlot { background: $boost; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "toggle_log", "Log KLD", tooltip="Toggle a log scale for the KLD axis"),
        Binding("x", "next_x_axis", "Axis", tooltip="X axis: size, prompt speed (pp t/s) or generation speed (tg t/s)"),
    ]

    log_scale: reactive[bool] = reactive(True)
    x_axis: reactive[str] = reactive("size_gib")
    """a Row field of X_AXES"""

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Textual's name
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._rows: list[Row] = []
        self._selected_id: str | None = None
        self._floor: float | None = None

    # -- public API ------------------------------------------------------------------------
    @property
    def plt(self) -> Plot:
        """This widget's own plotext figure."""
        return self.query_one(PlotextPlot).plt

    @property
    def selected_id(self) -> str | None:
        return self._selected_id

    @property
    def plotted(self) -> list[Row]:
        """The rows that have a point on the plot now."""
        return plottable(self._rows, self.log_scale, self.x_axis)

    @property
    def floor(self) -> float | None:
        """The noise floor drawn as a line (None: not measured)."""
        return self._floor

    def set_rows(self, rows: Sequence[Row], selected_id: str | None = None, floor: float | None = None) -> None:
        self._rows = list(rows)
        self._selected_id = selected_id
        self._floor = floor
        self._draw()

    def select(self, row_id: str | None) -> None:
        if row_id != self._selected_id:
            self._selected_id = row_id
            self._draw()

    def toggle_log(self) -> None:
        self.log_scale = not self.log_scale

    def action_toggle_log(self) -> None:
        self.toggle_log()

    def next_x_axis(self) -> str:
        """Size, then pp t/s, then tg t/s, then size again; returns the new axis's label."""
        keys = [k for k, _ in X_AXES]
        self.x_axis = keys[(keys.index(self.x_axis) + 1) % len(keys)] if self.x_axis in keys else keys[0]
        return dict(X_AXES)[self.x_axis]

    def action_next_x_axis(self) -> None:
        self.next_x_axis()

    # -- Textual plumbing ------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield _FreshPlot(self._figure)
        yield Static("", classes="scatter--empty")

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._draw())
        self._draw()

    def on_resize(self) -> None:
        # label placement depends on the size: redo it
        self._draw()

    def watch_log_scale(self) -> None:
        self._draw()

    def watch_x_axis(self) -> None:
        self._draw()

    def _xv(self, r: Row) -> float:
        value = getattr(r, self.x_axis)
        assert value is not None  # plotted rows have one
        return float(value)

    # -- drawing ---------------------------------------------------------------------------
    def _colour(self, variable: str, fallback: str) -> tuple[int, int, int]:
        value = self.app.theme_variables.get(variable, fallback)
        try:
            return Color.parse(value).rgb
        except Exception:  # noqa: BLE001 - a theme variable that is not a plain colour
            return Color.parse(fallback).rgb

    def _empty_message(self) -> str:
        if not self._rows:
            return "No results yet: finished runs appear here as size vs mean KLD."
        if self.x_axis != "size_gib" and all(getattr(r, self.x_axis) is None for r in self._rows):
            return (f"No row has a {dict(X_AXES)[self.x_axis]} yet: P starts a run that measures speed "
                    "(`qtui run --speed`); x: next x axis.")
        if self.log_scale and any(r.kld == 0 for r in self._rows):
            return "No row has both a size and a KLD above 0 (press l for a linear scale)."
        return f"{len(self._rows)} row(s), none with both a size and a mean KLD yet."

    def _draw(self) -> None:
        if not self.is_mounted:
            return
        pts = self.plotted
        self.set_class(not pts, "-empty")
        if not pts:
            self.query_one(".scatter--empty", Static).update(self._empty_message())
            return
        self.query_one(PlotextPlot).refresh()  # its render draws the figure (_figure)

    def _figure(self) -> None:
        pts = self.plotted
        if not pts:
            return
        plt = self.plt
        plt.clear_figure()
        log = self.log_scale
        other = self._colour("foreground-muted", "#888888")
        front_colour = self._colour("success", "#4EBF71")
        chosen = self._colour("accent", "#ffa62b")

        x0, x1, y0, y1 = self._bounds(pts)
        # Round ticks, evenly spaced and each labelled; the limits move out to fit them.
        ys = [self._y(r.kld) for r in pts if r.kld is not None]
        if max(ys) > min(ys):
            # No padding needed: the round limits leave room, and a point on the top or bottom
            # row is still inside the frame.
            y0, y1 = min(ys), max(ys)
        # On a log axis the step is in decades: 0.25 of one would print as ×1.78.
        y0, y1, yticks, decimals = axis_ticks(y0, y1, self.size.height - _X_AXIS_ROWS,
                                              (1.0, 2.0, 5.0) if log else _TICK_STEPS)
        bounds = x0, x1, y0, y1
        self._whiskers(plt, pts, bounds, other)
        floor = self._floor
        if floor is not None and (floor > 0 or not log) and y0 <= self._y(floor) <= y1:
            plt.plot([x0, x1], [floor, floor], marker=MARK_FLOOR, color=self._colour("warning", "#ffa62b"))

        front = sorted((r for r in pts if r.pareto), key=lambda r: (self._xv(r), r.kld))
        if len(front) > 1 and self.x_axis == "size_gib":  # the size/KLD front is a line on the size axis only
            # The front as a line under the points, joined in size order as in the SVG export.
            plt.plot([self._xv(r) for r in front], [r.kld for r in front], marker="braille", color=front_colour)
        rest = [r for r in pts if not r.pareto and r.id != self._selected_id]
        if rest:
            plt.scatter([self._xv(r) for r in rest], [r.kld for r in rest], marker=MARK_OTHER, color=other)
        on_front = [r for r in front if r.id != self._selected_id]
        if on_front:
            plt.scatter([self._xv(r) for r in on_front], [r.kld for r in on_front], marker=MARK_PARETO, color=front_colour)
        selected = next((r for r in pts if r.id == self._selected_id), None)
        if selected is not None:
            plt.scatter([self._xv(selected)], [selected.kld], marker=MARK_SELECTED, color=chosen)

        plt.xlim(x0, x1)
        if log:
            plt.yscale("log")
        # With a log y axis plotext takes its limits as log10 values (found by trying: real
        # values give an axis around 1.0). Padding keeps edge points off the frame and gives
        # one point, or equal values, a readable axis instead of a degenerate one.
        plt.ylim(y0, y1)
        if yticks:
            values = [10.0**t for t in yticks] if log else yticks
            # A log axis steps in fractions of a decade: two significant digits name those.
            plt.yticks(values, [f"{v:.2g}" if log else f"{v:.{decimals}f}" for v in values])
        width = self.size.width
        legend = f"{MARK_PARETO} Pareto  {MARK_SELECTED} selected" if width >= 56 else f"{MARK_PARETO}front {MARK_SELECTED}sel"
        if self._floor is not None and width >= 72:
            legend += f"  {MARK_FLOOR} floor"
        # plotext centres the title on the canvas, right of the y labels, and drops one that overflows
        room = self.query_one(PlotextPlot).size.width - _Y_AXIS_COLS
        x_label = dict(X_AXES).get(self.x_axis, self.x_axis)
        plt.title(titled(f"mean KLD{' (log)' if log else ''} vs {x_label}   {legend}", self._rows, room, self.x_axis))
        self._labels(plt, pts, bounds, selected, front, chosen, front_colour, self._colour("surface", "#1e1e1e"))

    def _labels(
        self,
        plt: Plot,
        pts: list[Row],
        bounds: tuple[float, float, float, float],
        selected: Row | None,
        front: list[Row],
        chosen: tuple[int, int, int],
        front_colour: tuple[int, int, int],
        canvas: tuple[int, int, int],
    ) -> None:
        """Quant labels where they fit: the selected point first, then the front (wide plots
        only). A label that would cover a point or another label, or run off the plot, is
        dropped. Cells are estimated from the axis limits, so the margins allow one cell."""
        width, height = self.size.width - _Y_AXIS_COLS, self.size.height - _X_AXIS_ROWS
        if width < 10 or height < 3:
            return
        x0, x1, y0, y1 = bounds
        xr, yr = x1 - x0, y1 - y0

        def cell(r: Row) -> tuple[int, int]:
            col = round((self._xv(r) - x0) / xr * (width - 1))
            line = round((y1 - self._y(r.kld)) / yr * (height - 1))  # type: ignore[arg-type]
            return line, col

        taken: list[tuple[int, int, int]] = []  # (row, first col, last col) in plot cells
        for r in pts:
            line, col = cell(r)
            taken.append((line, col - 1, col + 1))
        candidates = ([(selected, chosen)] if selected is not None else []) + (
            [(r, front_colour) for r in front if r is not selected] if width >= _MIN_WIDTH_FOR_FRONT_LABELS else []
        )
        for row, colour in candidates:
            label = row.quant or row.model
            line, col = cell(row)
            align: Literal["left", "right"]
            if col + 2 + len(label) <= width:
                first, last, align, dx = col + 2, col + 1 + len(label), "left", 2
            elif col - 1 - len(label) >= 0:
                first, last, align, dx = col - 1 - len(label), col - 2, "right", -2
            else:
                continue
            if any(line == r and not (last < a or first > b) for r, a, b in taken):
                continue
            taken.append((line, first - 1, last + 1))
            x = self._xv(row) + dx * xr / max(width - 1, 1)
            # plotext gives text a white box unless told the canvas colour (textual-plotext paints
            # the canvas with the theme's surface)
            plt.text(label, x, row.kld, color=colour, background=canvas, alignment=align)

    def _whiskers(self, plt: Plot, pts: list[Row], bounds: tuple[float, float, float, float],
                  colour: tuple[int, int, int]) -> None:
        """± the standard error of each mean KLD, drawn before the points so a point stays on
        top of its bar. Clipped to the axis: a bar that runs below 0 on a log axis, or off the
        plot, ends at the frame instead of moving the axis for everyone."""
        _, _, y0, y1 = bounds
        lo_axis, hi_axis = (10.0**y0, 10.0**y1) if self.log_scale else (y0, y1)
        for r in pts:
            if r.kld_err is None or r.kld_err <= 0 or r.kld is None:
                continue
            lo, hi = max(r.kld - r.kld_err, lo_axis), min(r.kld + r.kld_err, hi_axis)
            if hi > lo:
                plt.plot([self._xv(r), self._xv(r)], [lo, hi], marker=MARK_WHISKER, color=colour)

    def _bounds(self, pts: list[Row]) -> tuple[float, float, float, float]:
        """Axis limits (y in log10 units on a log axis), padded around the points."""
        xs = [self._xv(r) for r in pts]
        ys = [self._y(r.kld) for r in pts if r.kld is not None]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        px = (x1 - x0) * 0.04 if x1 > x0 else max(0.5, abs(x0) * 0.05)
        if y1 > y0:
            py = (y1 - y0) * 0.08
        else:
            py = 0.3 if self.log_scale else max(abs(y0) * 0.5, 1e-3)
        low = y0 - py
        if not self.log_scale and y0 >= 0:
            low = max(low, 0.0)  # a KLD is never negative
        return x0 - px, x1 + px, low, y1 + py

    def _y(self, kld: float) -> float:
        return math.log10(kld) if self.log_scale and kld > 0 else kld

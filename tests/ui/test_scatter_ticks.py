"""The scatter's y axis: round ticks, evenly spaced, every one labelled (a linear axis at some
heights printed 0.43 then 0.22, its 0.32 tick lost); the plot survives taking focus on a log
axis; and at 160x48 the board's table and the plot are kept apart (the table's last number ran
into the plot's labels: `0.0102000.04`)."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from qtui.core.results.store import load_records
from qtui.ui.messages import RecordsChanged
from qtui.ui.widgets.leaderboard import Leaderboard
from qtui.ui.widgets.scatter import Scatter, axis_ticks
from tests.ui.test_snapshots import scan_done, snap_app, tab_shown  # noqa: F401 - snap_app is a fixture
from tests.ui.test_widget_snapshots import BoardAndPlot, sample

ROOT = Path(__file__).resolve().parents[2]
TICK = re.compile(r"^\s*(\S+)┤")


def screen_lines(app: Any) -> list[str]:
    return [strip.text for strip in app.screen._compositor.render_strips()]


def y_labels(app: Any) -> list[tuple[int, str]]:
    """(screen row, label) of each labelled y tick of the plot, top down."""
    r = app.query_one(Scatter).region
    out = []
    for y, line in enumerate(screen_lines(app)[r.y:r.bottom]):
        m = TICK.match(line[r.x:r.right].lstrip("│"))
        if m:
            out.append((y, m.group(1)))
    return out


def assert_even(labels: list[tuple[int, str]], log: bool, where: str) -> None:
    assert len(labels) >= 3, f"{where}: too few y labels: {labels}"
    rows = [y for y, _ in labels]
    gaps = {b - a for a, b in zip(rows, rows[1:])}
    assert len(gaps) == 1, f"{where}: y ticks unevenly spaced (rows {rows}): {labels}"
    if log:
        # two significant digits of each power: the ratios agree to those digits
        logs = [math.log10(float(t)) for _, t in labels]
        steps = [a - b for a, b in zip(logs, logs[1:])]
        assert max(steps) - min(steps) < 0.05, f"{where}: log ticks not evenly spaced: {labels}"
    else:
        values = [Decimal(t) for _, t in labels]
        steps = {a - b for a, b in zip(values, values[1:])}
        assert len(steps) == 1, f"{where}: a tick is missing or uneven: {labels}"


@pytest.mark.parametrize("size", [(80, 24), (80, 30), (100, 36), (120, 44)])
@pytest.mark.parametrize("name", ["gemma-3-270m-qtui.json", "qwen3.5-27b-q4-published.json"])
@pytest.mark.parametrize("log", [False, True])
async def test_y_ticks_even_and_all_labelled(size: tuple[int, int], name: str, log: bool) -> None:
    app = BoardAndPlot(sample(name))
    async with app.run_test(size=size) as pilot:
        scatter = app.query_one(Scatter)
        await pilot.pause()
        # Focus moves to the plot: it is drawn again, unchanged (building a log figure twice
        # took the log of a log and failed)...
        await pilot.press("tab")
        await pilot.pause()
        assert scatter.has_focus
        if not log:
            await pilot.press("l")  # ... and the plot's own key for a linear KLD axis
            await pilot.pause()
            assert not scatter.log_scale
        assert_even(y_labels(app), log, f"{name} {size} {'log' if log else 'linear'}")


@pytest.mark.parametrize("rows", range(3, 45))
def test_axis_ticks_fit_the_rows(rows: int) -> None:
    for lo, hi in [(0.0, 0.59), (0.0032, 0.5896), (0.00503, 0.0079), (-2.49, -0.23), (3.0, 3.0001)]:
        low, high, ticks, decimals = axis_ticks(lo, hi, rows)
        assert low <= lo and high >= hi, (lo, hi, rows, low, high)
        assert len(ticks) >= (3 if rows >= 5 else 2)
        # each tick on a row of its own, the same number of rows apart (plotext's own rounding)
        at = [math.floor(round(0.5 + (rows - 1) * (t - low) / (high - low), 8)) for t in ticks]
        assert len(set(at)) == len(at) and len({b - a for a, b in zip(at, at[1:])}) == 1, (rows, ticks, at)
        assert at[-1] <= rows - 1
        labels = [f"{t:.{decimals}f}" for t in ticks]
        assert len(set(labels)) == len(labels), labels


async def test_board_table_and_plot_apart_at_160x48(snap_app: Any) -> None:  # noqa: F811
    records = load_records(ROOT / "sample_results" / "gemma-3-270m-qtui.json").records
    app = snap_app([RecordsChanged(records, [])])
    async with app.run_test(size=(160, 48)) as pilot:
        await scan_done("3", until=tab_shown("board"))(pilot)
        await pilot.pause()
        board, scatter = app.screen.query_one(Leaderboard), app.screen.query_one(Scatter)
        assert board.region.right <= scatter.region.x
        lines = screen_lines(app)
        x = scatter.region.x
        for y in range(scatter.region.y, scatter.region.bottom):
            line = lines[y]
            # a rule, then a blank column, between the table's last cell and the plot's labels
            assert line[x] == "│" and line[x + 1] == " ", f"row {y}: {line[x - 12:x + 12]!r}"
        assert_even(y_labels(app), True, "main screen 160x48")

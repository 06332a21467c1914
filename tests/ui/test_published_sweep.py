"""A published sweep opened as a newcomer opens it (`qtui --results
sample_results/qwen3.5-35b-a3b-q4-published.json`), at 80x24 and 160x48: which file a row is
(Model, By, Quant) and its Mean KLD ± are on screen from the start, the two IQ4_XS rows read
differently, the post's own score, finding and note are shown, and the rows without a size are
counted where the plot shows one point of five."""

from __future__ import annotations

from pathlib import Path

import pytest

from qtui.core.results.fit import ESSENTIAL, PRIORITY, fit_columns
from qtui.core.results.leaderboard import COLUMNS, PUBLISHED_SCORE, build_rows
from qtui.core.results.store import load_records
from qtui.ui.screens.details import InfoScreen
from qtui.ui.widgets.leaderboard import Leaderboard
from qtui.ui.widgets.scatter import Scatter
from tests.ui.conftest import ready, rich_text, screen_text, wait_for

SAMPLES = Path(__file__).resolve().parents[2] / "sample_results"
Q35 = SAMPLES / "qwen3.5-35b-a3b-q4-published.json"
NOTE = "4 rows without a size: not plotted or scored"


def line_of(text: str, *words: str) -> str:
    return next((ln for ln in text.splitlines() if all(w in ln for w in words)), "")


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_published_sweep_opens_with_which_file_and_its_kld_on_screen(app_factory, size: tuple[int, int]) -> None:
    app = app_factory(results=Q35)
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        board = app.screen.query_one(Leaderboard)
        await wait_for(pilot, lambda: len(board.rows) == 5 and "0.024300" in screen_text(app), what="the sample rows")
        await pilot.pause()  # the caption follows the rows
        shown = screen_text(app)
        header = line_of(shown, "Model")
        for title in ("Model", "By", "Quant", "Mean KLD", "±"):
            assert title in header, shown
        assert board.table.scroll_x == 0  # opened scrolled to the left
        # the two IQ4_XS rows: told apart by who quantized them, each with its KLD
        assert "AesSedai" in line_of(shown, "IQ4_XS", "0.024000"), shown
        assert "bartowski" in line_of(shown, "IQ4_XS", "0.024300"), shown
        # the post's own score beside the row that has one; the score computed here is not the post's
        assert "0.327" in line_of(shown, "AesSedai", "IQ4_XS"), shown
        assert "Published" in header
        # the caption says why the plot has one point of five
        assert NOTE in shown
        # Model, By and Quant stay when the table is scrolled sideways
        assert board.table.fixed_columns == 3


async def test_the_plot_says_how_many_rows_it_cannot_place(app_factory) -> None:
    app = app_factory(results=Q35)
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(pilot)
        scatter = app.screen.query_one(Scatter)
        await wait_for(pilot, lambda: len(scatter.plotted) == 1, what="the one point")
        await wait_for(pilot, lambda: NOTE in line_of(screen_text(app), "vs GiB"), 10, "the plot's note")


async def test_details_of_a_published_row_show_what_the_post_said(app_factory) -> None:
    app = app_factory(results=Q35)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        board = app.screen.query_one(Leaderboard)
        await wait_for(pilot, lambda: len(board.rows) == 5, what="the sample rows")
        await pilot.press("down", "i")  # AesSedai IQ4_XS, second by mean KLD
        await wait_for(pilot, lambda: isinstance(app.screen, InfoScreen), 5, "the details")
        words = " ".join(rich_text(app.screen.body, 200).split())
        assert "Published score 0.327" in words, words
        assert "finding smallest file; best efficiency score" in words
        assert "normalised over all 17 quants" in words  # the post's note on reading the score
        # seen without scrolling at 80x24
        assert "0.327" in screen_text(app)


def test_fit_columns_keeps_the_essentials_and_gives_up_by_priority() -> None:
    rows = build_rows(load_records(Q35).records)
    keep = (*ESSENTIAL, "kld", "kld_err")
    for width in (10, 60, 80, 120):
        keys = [c.key for c in fit_columns(rows, width, keep=keep)]
        assert set(keep) <= set(keys)
        assert keys == [c.key for c in COLUMNS if c.key in keys]  # in the table's order
        given_up = [k for k in PRIORITY if k not in keys and k in {c.key for c in COLUMNS}]
        taken = [k for k in PRIORITY if k in keys and k not in keep]
        if given_up and taken:  # strictly by priority: nothing taken after the first given up
            assert max(PRIORITY.index(k) for k in taken) < min(PRIORITY.index(k) for k in given_up)
    everything = fit_columns(rows, 10_000, columns=[*COLUMNS, PUBLISHED_SCORE])
    assert [c.key for c in everything] == [*(c.key for c in COLUMNS), "published_score"]
    # the CLI's choice at 80 columns (its # column takes 4 cells): the essentials first
    cli = [c.key for c in fit_columns(rows, 76)]
    assert cli == ["model", "quantizer", "quant", "size_gib", "kld", "rank"]

"""The keys a first-time user tripped over, pressed as they pressed them: space says it moves down,
the marks are explained where the table is (and `qtui scan` uses the app's), `t t t` walks three
themes instead of typing "ttt" into a picker, Home/End/g/G reach the first and last row of every
table, Esc clears a filter kept with Enter, and the command palette shows keys as the footer does
and only the actions of the tab shown."""

from __future__ import annotations

import re
from pathlib import Path

from textual.command import CommandPalette

from qtui.core.config import load_config
from qtui.ui.commands import commands
from qtui.ui.screens.help import HelpScreen
from qtui.ui.widgets.leaderboard import Leaderboard
from qtui.ui.widgets.model_list import ModelList
from qtui.ui.widgets.queue import QueueView
from tests.ui.conftest import add_model, ready, rich_text, screen_text, wait_for
from tests.unit.test_cli_narrow import qtui

SAMPLE = Path(__file__).resolve().parents[2] / "sample_results" / "qwen3.5-27b-q4-published.json"


async def scanned(pilot) -> ModelList:
    await ready(pilot)
    ml = pilot.app.screen.query_one(ModelList)
    await wait_for(pilot, lambda: not ml.scanning, what="the model scan")
    return ml


async def test_space_says_it_moves_down_in_the_footer_tooltip_and_the_help(app_factory, models_dir: Path) -> None:
    app = app_factory([models_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        ml = await scanned(pilot)
        await pilot.press("space")
        assert ml.table.cursor_row == 1  # what the words must say
        space = next(b for b in app.screen.active_bindings.values() if b.binding.key == "space")
        assert "move down" in (space.binding.tooltip or "")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), 5, "the help")
        words = " ".join(rich_text(app.screen.body, 300).split())
        assert "space: adds or removes the row and moves down" in words, words
        assert re.search(r"space +Add or remove the model under the cursor as a variant, then move down", words), words


async def test_the_marks_are_explained_under_the_models_table(app_factory, models_dir: Path) -> None:
    app = app_factory([models_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        await scanned(pilot)
        shown = screen_text(app)
        assert "B base · ✓ chosen variant · b could be the base" in shown, shown


async def test_qtui_scan_marks_a_possible_base_as_the_app_does(app_factory, models_dir: Path, tmp_path: Path) -> None:
    out = qtui("scan", str(models_dir), tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    row = next(ln for ln in out.stdout.splitlines() if "tiny-F16.gguf" in ln)
    cli_mark = row.split()[0]
    assert "b = could be the base (F32/F16/BF16)" in out.stdout, out.stdout
    app = app_factory([models_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        ml = await scanned(pilot)
        ml.choose(None, [])
        key = next(k for k in ml.table.rows if str(k.value).endswith("tiny-F16.gguf"))
        assert str(ml.table.get_cell(key, "mark")) == cli_mark == "b"


async def test_t_t_t_walks_three_themes_and_capital_t_opens_the_picker(app_factory, qtui_dirs) -> None:
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        names = sorted(app.available_themes)
        start = names.index(app.theme)
        await pilot.press("t", "t", "t")
        expected = names[(start + 3) % len(names)]
        await wait_for(pilot, lambda: app.theme == expected, 5, "the third theme")
        assert not isinstance(app.screen, CommandPalette)  # no picker swallowing the t's
        await wait_for(pilot, lambda: load_config()[0].theme == expected, 10, "the theme saved")
        await pilot.press("T")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), 5, "the theme picker")


async def first_last(pilot, table) -> None:
    """G/end to the last row, g/home back to the first, as each table's cursor shows."""
    assert table.row_count >= 3
    for last, first in (("G", "g"), ("end", "home")):
        await pilot.press(last)
        await wait_for(pilot, lambda: table.cursor_row == table.row_count - 1, 5, f"{last}: the last row")
        await pilot.press(first)
        await wait_for(pilot, lambda: table.cursor_row == 0, 5, f"{first}: the first row")


async def test_home_end_g_G_in_the_models_and_runs_tables(app_factory, models_dir: Path) -> None:
    for name in ("tiny-SLOW-Q4_0.gguf", "tiny-SLOW-Q4_1.gguf"):
        add_model(models_dir, name)
    app = app_factory([models_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        ml = await scanned(pilot)
        await first_last(pilot, ml.table)
        ml.choose(ml.base, [m.path for m in ml.models if "SLOW" in m.path.name])
        await pilot.press("s")
        queue = app.screen.query_one(QueueView)
        await wait_for(pilot, lambda: len(queue.jobs) == 3, what="base + 2 jobs queued")
        await pilot.press("2")
        await wait_for(pilot, lambda: app.focused is queue.table, 5, "the Runs table focused")
        await first_last(pilot, queue.table)


async def test_home_end_g_G_on_the_leaderboard(app_factory) -> None:
    app = app_factory(results=SAMPLE)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        board = app.screen.query_one(Leaderboard)
        await wait_for(pilot, lambda: board.table.row_count >= 3, what="the sample rows")
        await first_last(pilot, board.table)
        assert board.selected_id == board.rows[0].id


async def test_esc_in_the_table_clears_a_filter_kept_with_enter(app_factory, models_dir: Path) -> None:
    app = app_factory([models_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        ml = await scanned(pilot)
        await pilot.press("slash", *"q8", "enter")
        await wait_for(pilot, lambda: app.focused is ml.table and len(ml.visible_models()) == 1, 5, "the filter kept")
        await pilot.press("escape")
        await wait_for(pilot, lambda: ml.filter_text == "" and ml.table.row_count == 3, 5, "the filter cleared")
        assert app.focused is ml.table
        assert "filter:" not in screen_text(app)


def palette_lines(app) -> list[str]:
    return [ln for ln in screen_text(app).splitlines() if "key:" in ln]


async def test_palette_shows_keys_as_the_footer_and_only_the_tab_shown(app_factory, models_dir: Path) -> None:
    app = app_factory([models_dir])
    async with app.run_test(size=(100, 30)) as pilot:
        await scanned(pilot)
        await pilot.press("ctrl+p", *"skipped")
        await wait_for(pilot, lambda: "Files that were skipped" in screen_text(app), 10, "the palette hit")
        shown = screen_text(app)
        assert "key: !" in shown and "exclamation_mark" not in shown, shown
        await pilot.press("escape")
        await pilot.press("ctrl+p", *"filter")
        await wait_for(pilot, lambda: "Filter the model list" in screen_text(app), 10, "the palette hit")
        assert "key: /" in screen_text(app) and "key: slash" not in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, CommandPalette), 5, "the palette closed")

        await pilot.press("3")  # the Leaderboard: "model" matches Models-tab actions and a tab switch
        await pilot.press("ctrl+p", *"model")
        await wait_for(pilot, lambda: "Show the Models tab" in screen_text(app), 10, "the palette hit")
        shown = screen_text(app)
        assert "Use the model under the cursor as the base" not in shown, shown
        assert "Tensor-type breakdown" not in shown and "as a variant" not in shown, shown
        for line in palette_lines(app):
            assert not re.search(r"key: [a-z]+_[a-z]+", line), line  # no key names such as question_mark


def test_each_tab_lists_its_own_actions_and_the_global_ones() -> None:
    board = {c.action for c in commands("board")}
    models = {c.action for c in commands("models")}
    assert {"choose_base", "toggle_variant", "skipped"} <= models and not {"choose_base", "toggle_variant", "skipped"} & board
    assert {"next_sort", "screen.export", "help", "next_theme"} <= board and "next_sort" not in models
    assert {c.action for c in commands()} >= board | models

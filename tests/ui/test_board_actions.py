"""The leaderboard pane's actions reach the records the main screen holds, by key and by the
command palette: export (the rows as shown, with their records) and a result's details."""

from __future__ import annotations

from pathlib import Path

from qtui.core.results.store import load_records
from qtui.ui.screens.details import InfoScreen
from qtui.ui.screens.export import ExportScreen
from qtui.ui.widgets.leaderboard import Leaderboard
from tests.ui.conftest import ready, screen_text, statics_text, wait_for

SAMPLE = Path(__file__).resolve().parents[2] / "sample_results" / "qwen3.5-27b-q4-published.json"


async def test_export_from_the_palette_gets_the_rows_shown_and_their_records(app_factory) -> None:
    records = load_records(SAMPLE).records
    app = app_factory(results=SAMPLE)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        board = app.screen.query_one(Leaderboard)
        await wait_for(pilot, lambda: len(board.rows) > 0, what="the sample records")
        await pilot.press("O")  # another order than the default: the export must follow the screen
        shown = [r.id for r in board.rows if r.status == "done"]
        await pilot.press("ctrl+p")
        await pilot.press(*"export the leaderboard")
        await wait_for(pilot, lambda: "Export the leaderboard" in screen_text(app), 10, "the palette hit")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen), 10, "the export dialog")
        dialog = app.screen
        assert isinstance(dialog, ExportScreen)
        rows, recs = dialog.source()  # what Export would write if pressed now
        assert [r.id for r in rows] == shown
        assert {r.id for r in recs} == {r.id for r in records}


async def test_details_of_the_selected_result(app_factory) -> None:
    app = app_factory(results=SAMPLE)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        board = app.screen.query_one(Leaderboard)
        await wait_for(pilot, lambda: len(board.rows) > 0, what="the sample records")
        selected = next(r for r in board.rows if r.id == board.selected_id)
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, InfoScreen), 10, "the details")
        assert selected.model in statics_text(app.screen)

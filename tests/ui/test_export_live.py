"""The export dialog writes what the board shows when Export is pressed: a run that finishes while
the dialog is open is in the file, and the Markdown footer counts only the runs in its table."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from textual.widgets import Input

from qtui.core.results.store import ResultStore, load_records
from qtui.ui.screens.export import ExportScreen
from qtui.ui.widgets.leaderboard import Leaderboard
from tests.ui.conftest import ready, wait_for

SAMPLE = Path(__file__).resolve().parents[2] / "sample_results" / "qwen3.5-27b-q4-published.json"


async def test_export_writes_the_board_as_it_is_when_pressed(app_factory, qtui_dirs, tmp_path: Path) -> None:
    store = ResultStore(qtui_dirs["data"])
    records = [r for r in load_records(SAMPLE).records if r.kind == "kld"]
    for rec in records:
        store.save(rec)
    # a cancelled run of the same setup: not ranked, so neither in the table nor in its footer
    template = records[0]
    store.save(dataclasses.replace(template, id="cancelled-run", status="cancelled", stats={},
                                   model={**template.model, "label": "CANCELLED-RUN"},
                                   failure={"reason": "cancelled by the user"}))
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("3")
        board = app.screen.query_one(Leaderboard)
        await wait_for(pilot, lambda: sum(r.status == "done" for r in board.rows) == len(records), what="the board")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen), 5, "the export dialog")
        # a run finishes while the dialog is open
        store.save(dataclasses.replace(template, id="late-run", model={**template.model, "label": "LATE-RUN"}))
        await wait_for(pilot, lambda: any(r.id == "late-run" for r in board.rows), what="the late run on the board")
        target = tmp_path / "board.md"
        box = app.screen.query_one("#path", Input)
        box.value = ""
        await pilot.press(*str(target), "enter")
        await wait_for(pilot, lambda: target.exists() and not isinstance(app.screen, ExportScreen), 5, "the export")
        text = target.read_text()
        body = [ln for ln in text.splitlines() if ln[:3].strip("| ").isdigit()]
        assert len(body) == len(records) + 1 and "LATE-RUN" in text
        assert "CANCELLED-RUN" not in text
        footer = [ln for ln in text.splitlines() if "run(s):" in ln]
        assert sum(int(ln.split("run(s)")[0].strip("- ")) for ln in footer) == len(body), footer

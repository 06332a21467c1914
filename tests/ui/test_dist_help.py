"""The help says what the leaderboard's Dist. column is (issue 8, bug 8: "Eff." read as
higher-is-better and is the opposite), and the board titles the column Dist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtui.core.results.store import load_records
from qtui.ui.messages import RecordsChanged
from qtui.ui.screens.help import HelpScreen
from qtui.ui.widgets.leaderboard import Leaderboard
from tests.ui.conftest import screen_text
from tests.ui.test_snapshots import on_top, scan_done, snap_app, tab_shown  # noqa: F401 - snap_app is a fixture

DEMO = Path(__file__).resolve().parents[2] / "sample_results" / "gemma-3-270m-qtui.json"


async def test_help_and_board_say_dist_lower_is_better(snap_app: Any) -> None:  # noqa: F811
    app = snap_app([RecordsChanged(load_records(DEMO).records, [])])
    async with app.run_test(size=(160, 48)) as pilot:
        await scan_done("3", until=tab_shown("board"))(pilot)
        await pilot.press("v")  # the table alone, the whole width: every column shown
        await pilot.pause()
        table = app.screen.query_one(Leaderboard).table
        titles = [str(c.label) for c in table.columns.values()]
        assert any(t.startswith("Dist.") for t in titles), titles
        assert not any(t.startswith("Eff") for t in titles), titles
        assert "Dist." in screen_text(app) and "1.000" in screen_text(app)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        # the dialog's lines, its frame taken off, joined as one would read them
        inside = [line.split("│")[-2] for line in screen_text(app).splitlines() if line.count("│") >= 2]
        text = " ".join(" ".join(inside).split())
        assert "Dist. = distance to the ideal: 0 = smallest and most faithful; lower is better." in text
        assert "both score 1.000" in text

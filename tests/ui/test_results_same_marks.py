"""`qtui results --json` and the app's leaderboard mark the same rows the same way (one core
function behind both): checked on one store, row by row."""

from __future__ import annotations

import json
from pathlib import Path

from qtui.core.results.store import ResultStore
from qtui.ui.widgets.leaderboard import Leaderboard
from tests.helpers import run_qtui
from tests.ui.test_widgets import BoardApp
from tests.unit.test_results_marks import demo_like


async def test_the_cli_and_the_board_show_the_same_marks(tmp_path: Path) -> None:
    data = tmp_path / "store"
    demo_like(data)
    records = ResultStore(data).load().records
    out = run_qtui("results", "--json", tmp=tmp_path, data=data)
    assert out.returncode == 0, out.stderr
    cli = {r["id"]: r.get("mark", "") for r in json.loads(out.stdout)["setups"][0]["rows"]}
    app = BoardApp()
    async with app.run_test(size=(200, 30)) as pilot:
        board = app.query_one(Leaderboard)
        board.set_records(records)
        await pilot.pause()
        shown = {}
        for rid in cli:
            cell = str(board.table.get_cell(rid, "model"))
            shown[rid] = cell.rsplit(" ", 1)[1] if cell.endswith(("≈", "≡")) else ""
    assert shown == cli and sorted(cli.values()) == ["", "≈", "≡", "≡"], (shown, cli)

"""Pilot test of the leaderboard's Rank column: neighbours that the paired comparison cannot
separate share a rank range, the others get their own place; the column sorts as numbers."""

from __future__ import annotations

import random
from typing import Any

from textual.app import App, ComposeResult

from qtui.core.results.store import ResultRecord
from qtui.ui.widgets.leaderboard import Leaderboard


def rec(rid: str, chunk_means: list[float] | None) -> ResultRecord:
    """A finished run whose mean KLD is the mean of its (exact) chunk means."""
    stats: dict[str, Any] = {}
    field = None
    if chunk_means is not None:
        stats["kld_mean"] = sum(chunk_means) / len(chunk_means)
        field = {"kind": "exact", "rows": [[i + 1, m] for i, m in enumerate(chunk_means)]}
    else:
        stats["kld_mean"] = 0.5
    return ResultRecord(id=rid, kind="kld", status="done", model={"label": rid, "quant": rid.upper(), "size_gib": 1.0},
                        stats=stats, chunk_kld=field)


def ladder() -> list[ResultRecord]:
    rng = random.Random(9)
    hard = [rng.lognormvariate(-2.5, 0.5) for _ in range(60)]

    def variant(shift: float) -> list[float]:
        return [h + shift + rng.gauss(0, 0.001) for h in hard]

    # q8 clearly best; q6a and q6b the same quality (a tie); q4 clearly worse; "pub" without chunk data
    return [rec("q4", variant(0.03)), rec("q6a", variant(0.01)), rec("q8", variant(0.0)), rec("q6b", variant(0.01)),
            rec("pub", None)]


class BoardApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Leaderboard()


def cell(board: Leaderboard, row_id: str, key: str) -> str:
    return str(board.table.get_cell(row_id, key).plain)


async def test_rank_column_groups_ties_into_ranges() -> None:
    app = BoardApp()
    async with app.run_test(size=(160, 20)) as pilot:
        board = app.query_one(Leaderboard)
        board.set_records(ladder())
        await pilot.pause()
        ranks = {rid: cell(board, rid, "rank") for rid in ("q8", "q6a", "q6b", "q4", "pub")}
        assert ranks["q8"] == "1"
        assert ranks["q6a"] == ranks["q6b"] == "2-3"  # not separated: one range
        # q4 vs the row below it (no per-chunk data) cannot be called separated
        assert ranks["q4"] == ranks["pub"] == "4-5"
        assert "Rank" in board.table.columns["rank"].label.plain  # type: ignore[index]
        board.sort_by("rank", reverse=True)
        await pilot.pause()
        shown = [cell(board, str(r.key.value), "rank") for r in board.table.ordered_rows]
        assert shown == ["4-5", "4-5", "2-3", "2-3", "1"]

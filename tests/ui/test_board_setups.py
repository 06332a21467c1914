"""The leaderboard ranks one setup at a time: a key switches setups, the header says where the
other results are, and failed or cancelled runs are shown below the ranking, never in it."""

from __future__ import annotations

from pathlib import Path

from qtui.core.fsutil import atomic_write_json
from qtui.core.results.leaderboard import build_rows
from qtui.core.results.store import ResultRecord
from qtui.ui.screens.main import BoardPane
from qtui.ui.widgets.leaderboard import SEPARATOR, Leaderboard
from tests.ui.conftest import notified, ready, screen_text, wait_for

SHA = "1a2b3c" + "0" * 58


def run(name: str, kld: float | None, size: float, *, chunks: int | None = 30, fork: str = "llama.cpp",
        status: str = "done", base_file: str = "f16.n30.kld") -> ResultRecord:
    return ResultRecord(
        id=f"20260101-000000-{name}", kind="kld", status=status,  # type: ignore[arg-type]
        model={"path": f"/m/{name}.gguf", "label": name, "quant": name, "size_bytes": int(size * 1024**3)},
        stats={} if kld is None else {"kld_mean": kld},
        base={"label": "m-F16", "file": base_file, "key": base_file}, corpus={"sha256": SHA}, ctx=512, chunks=chunks,
        llama={"fork": fork}, ended_at=1.0, failure=None if status == "done" else {"reason": "stopped"})


def three_setups() -> list[ResultRecord]:
    return [run("full-Q8_0", 0.01, 8.0), run("full-Q6_K", 0.02, 6.0), run("full-Q4_K_M", 0.05, 4.0),
            run("short-Q4_0", 0.03, 4.0, chunks=4, base_file="f16.n4.kld"),
            run("short-Q2_K", 0.3, 2.0, chunks=4, base_file="f16.n4.kld"),
            run("ik-IQ4_XS", 0.04, 3.5, fork="ik_llama.cpp")]


def save(folder: Path, records: list[ResultRecord]) -> Path:
    atomic_write_json(folder / "results.json", {"records": [r.to_dict() for r in records]})
    return folder / "results.json"


def names(board: Leaderboard) -> set[str]:
    return {r.model for r in board.rows}


async def test_u_switches_setups_and_the_header_says_where_the_rest_is(app_factory, tmp_path: Path) -> None:
    app = app_factory(results=save(tmp_path, three_setups()))
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        board = app.screen.query_one(Leaderboard)
        await wait_for(pilot, lambda: len(board.rows) > 0, what="the records")
        # the default: the setup with the most results
        assert names(board) == {"full-Q8_0", "full-Q6_K", "full-Q4_K_M"}
        await wait_for(pilot, lambda: "Setup 1/3" in screen_text(app), what="the setup line")
        text = " ".join(screen_text(app).split())
        assert "m-F16 · corpus 1a2b3c · -c 512 · 30 chunks · llama.cpp" in text
        assert "3 results in 2 other setups (u: next)" in text
        await pilot.press("u")
        await wait_for(pilot, lambda: names(board) == {"short-Q4_0", "short-Q2_K"}, what="the 4-chunk setup")
        await wait_for(pilot, lambda: "Setup 2/3" in screen_text(app), what="the header to follow")
        assert "4 results in 2 other setups" in " ".join(screen_text(app).split())
        # the plot shows the setup on the board, nothing of the others
        scatter = app.screen.query_one(BoardPane).scatter
        assert scatter is not None
        await wait_for(pilot, lambda: {r.model for r in scatter._rows} == {"short-Q4_0", "short-Q2_K"}, what="the plot")
        await pilot.press("u")
        await wait_for(pilot, lambda: names(board) == {"ik-IQ4_XS"}, what="the ik_llama.cpp setup")
        await pilot.press("u")  # round again to the first
        await wait_for(pilot, lambda: names(board) == {"full-Q8_0", "full-Q6_K", "full-Q4_K_M"}, what="setup 1 again")
        await pilot.press("U")  # and back
        await wait_for(pilot, lambda: names(board) == {"ik-IQ4_XS"}, what="the previous setup")


async def test_one_setup_has_no_setup_line_and_u_says_so(app_factory, tmp_path: Path) -> None:
    app = app_factory(results=save(tmp_path, three_setups()[:3]))
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        board = app.screen.query_one(Leaderboard)
        await wait_for(pilot, lambda: len(board.rows) == 3, what="the records")
        assert not board.has_class("-setups") and "Setup 1/" not in screen_text(app)
        await pilot.press("u")
        await notified(pilot, "every result on the board is from one setup")
        assert len(board.rows) == 3


async def test_failed_and_cancelled_rows_are_shown_apart_and_never_ranked(app_factory, tmp_path: Path) -> None:
    ranked = [run("full-Q8_0", 0.01, 8.0), run("full-Q6_K", 0.02, 6.0), run("full-Q4_K_M", 0.05, 4.0)]
    # partial figures that would top the ranking and the Pareto front if they were ranked
    cancelled = run("stopped-Q2_K", 0.001, 1.0, chunks=7, status="cancelled")
    failed = run("broken-Q3_K", None, 0.5, chunks=None, status="failed")
    app = app_factory(results=save(tmp_path, [*ranked, cancelled, failed]))
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        board = app.screen.query_one(Leaderboard)
        await wait_for(pilot, lambda: len(board.rows) == 5, what="the records")
        assert [r.status for r in board.rows] == ["done", "done", "done", "cancelled", "failed"]
        apart = [r for r in board.rows if r.status != "done"]
        assert all(r.score is None and not r.pareto for r in apart)
        alone = {r.id: (r.score, r.pareto) for r in build_rows(ranked)}
        assert {r.id: (r.score, r.pareto) for r in board.rows if r.status == "done"} == alone
        table = board.table
        assert table.get_row_index(SEPARATOR) == 3
        assert [str(table.get_row_at(i)[0]).split()[0] for i in (4, 5)] == ["CANCELLED", "FAILED"]
        assert "2 not ranked: failed or cancelled" in screen_text(app)
        for keys in (["O"], ["o"], ["o"]):  # any order, any direction: the ranking stays above the line
            await pilot.press(*keys)
            assert [r.status for r in board.rows][3:] == ["cancelled", "failed"]
            assert table.get_row_index(SEPARATOR) == 3
        # the separator is no result: details and the plot have nothing selected on it
        table.move_cursor(row=3)
        await wait_for(pilot, lambda: board.selected_id is None, what="no selection on the separator")
        scatter = app.screen.query_one(BoardPane).scatter
        assert scatter is not None and all(r.status == "done" for r in scatter._rows)

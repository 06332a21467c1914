"""Speed beside faithfulness in the app: the pp t/s and tg t/s columns where a row has a speed
run of its file (empty where not), and `x` switching the scatter's x axis between size, pp t/s
and tg t/s, saying which rows it cannot place."""

from __future__ import annotations

import re
from pathlib import Path

from qtui.core.fsutil import atomic_write_json
from qtui.core.results.store import ResultRecord
from qtui.ui.screens.main import BoardPane
from qtui.ui.widgets.leaderboard import Leaderboard
from qtui.ui.widgets.scatter import Scatter
from tests.ui.conftest import ready, screen_text, wait_for


def model(name: str, size: float) -> dict[str, object]:
    return {"path": f"/m/{name}.gguf", "label": name, "quant": name, "size_bytes": int(size * 1024**3), "mtime": 50.0}


def kld(name: str, value: float, size: float) -> ResultRecord:
    return ResultRecord(id=f"k-{name}", kind="kld", status="done", model=model(name, size), stats={"kld_mean": value},
                        base={"label": "m-F16", "file": "f16.kld", "key": "f16"}, ctx=512, chunks=30, ended_at=1.0)


def speed(name: str, size: float, pp: float, tg: float) -> ResultRecord:
    return ResultRecord(id=f"s-{name}", kind="speed", status="done", model=model(name, size),
                        stats={"pp_ts": pp, "tg_ts": tg}, ended_at=2.0)


def records() -> list[ResultRecord]:
    return [kld("Q8_0", 0.002, 8.0), kld("Q4_K_M", 0.02, 4.5), kld("Q2_K", 0.3, 2.5),
            speed("Q8_0", 8.0, 1234.5, 41.25), speed("Q4_K_M", 4.5, 1876.0, 72.5)]


async def test_speed_columns_show_and_x_switches_the_scatter_axis(app_factory, tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "results.json", {"records": [r.to_dict() for r in records()]})
    app = app_factory(results=tmp_path / "results.json")
    async with app.run_test(size=(200, 40)) as pilot:
        await ready(pilot)
        board = app.screen.query_one(Leaderboard)
        await wait_for(pilot, lambda: len(board.rows) == 3, what="the records")
        speeds = {r.model: (r.pp_ts, r.tg_ts) for r in board.rows}
        assert speeds == {"Q8_0": (1234.5, 41.25), "Q4_K_M": (1876.0, 72.5), "Q2_K": (None, None)}
        await wait_for(pilot, lambda: "pp t/s" in screen_text(app) and "tg t/s" in screen_text(app), what="the columns")
        lines = screen_text(app).splitlines()
        q8 = next(line for line in lines if "Q8_0" in line and "1234" in line)
        assert "41.2" in q8  # the row's own speeds, side by side
        # Q2_K has no speed run: its speed cells are empty (BPW's "?", then straight on to PPL ratio's "?")
        assert any(re.search(r"Q2_K\s+\?\s+Q2_K\s+2\.500\s+\?\s+\?\s+0\.300000", line) for line in lines)

        pane = app.screen.query_one(BoardPane)
        scatter = pane.scatter
        assert scatter is not None and scatter.x_axis == "size_gib"
        assert {r.model for r in scatter.plotted} == {"Q8_0", "Q4_K_M", "Q2_K"}
        await pilot.press("x")
        await wait_for(pilot, lambda: scatter.x_axis == "pp_ts", what="the pp axis")
        assert {r.model for r in scatter.plotted} == {"Q8_0", "Q4_K_M"}  # Q2_K has no speed run
        await wait_for(pilot, lambda: "vs pp t/s" in screen_text(app), what="the plot's title")
        assert "1 without pp t/s" in screen_text(app)  # the rows it cannot place, as it fits
        await pilot.press("x")
        await wait_for(pilot, lambda: "vs tg t/s" in screen_text(app), what="the tg axis")
        await pilot.press("x")
        await wait_for(pilot, lambda: "vs GiB" in screen_text(app), what="size again")
        assert scatter.x_axis == "size_gib" and len(scatter.plotted) == 3


async def test_no_speed_no_columns_and_an_empty_speed_axis_says_how(app_factory, tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "results.json", {"records": [r.to_dict() for r in records()[:3]]})
    app = app_factory(results=tmp_path / "results.json")
    async with app.run_test(size=(200, 40)) as pilot:
        await ready(pilot)
        board = app.screen.query_one(Leaderboard)
        await wait_for(pilot, lambda: len(board.rows) == 3, what="the records")
        assert "pp t/s" not in screen_text(app)
        await pilot.press("x")
        await wait_for(pilot, lambda: "No row has a pp t/s yet: P starts a run that measures speed" in screen_text(app),
                       what="the empty plot's words")
        # the whole sentence (the panel shows as much of it as fits)
        assert "(`qtui run --speed`); x: next x axis." in app.screen.query_one(Scatter)._empty_message()


def test_run_panel_words_for_a_speed_job(tmp_path: Path) -> None:
    from qtui.core.jobs.queue import Job, JobSpec, JobState
    from qtui.ui.widgets.run_panel import _speed_text

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "llama" / "b0336" / "bench-jsonl.out"
    job = Job(JobSpec(kind="speed", argv=["llama-bench"]), JobState(status="running"), tmp_path)
    assert _speed_text(job) == "llama-bench is measuring prompt and generation speed…"
    (tmp_path / "stdout").write_bytes(fixture.read_bytes())
    job.state.status = "done"
    # the recorded run: pp64 31406.573162 ± 1294.712711, tg16 1644.657994 ± 107.564312
    assert _speed_text(job) == "pp 31406.6 ± 1294.7 t/s · tg 1644.7 ± 107.6 t/s"

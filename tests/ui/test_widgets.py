"""Pilot tests of the leaderboard, scatter and GPU panel widgets, each mounted in a small app
and driven by keys and clicks (memray style: press sort keys, read the rows as ordered)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable
from textual_plotext import PlotextPlot

from qtui.core.gpu import GpuProcess, GpuSample, GpuSnapshot
from qtui.core.results.leaderboard import COLUMN_KEYS, build_rows, efficiency_scores
from qtui.core.results.store import ResultRecord, load_records
from qtui.ui.widgets.gpu_panel import GpuPanel, bar
from qtui.ui.widgets.leaderboard import ASC, DESC, Leaderboard
from qtui.ui.widgets.scatter import MARK_OTHER, MARK_PARETO, MARK_SELECTED, Scatter

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_results"
Q27 = SAMPLES / "qwen3.5-27b-q4-published.json"
Q35 = SAMPLES / "qwen3.5-35b-a3b-q4-published.json"
GIB = 1024**3


def records(path: Path) -> list[ResultRecord]:
    res = load_records(path)
    assert res.problems == []
    return res.records


def rec(rid: str, size_gib: float | None, kld: float | None, status: str = "done", **stats: float) -> ResultRecord:
    model: dict[str, Any] = {"label": rid, "quant": rid.upper()}
    if size_gib is not None:
        model["size_gib"] = size_gib
    s: dict[str, Any] = dict(stats)
    if kld is not None:
        s["kld_mean"] = kld
    return ResultRecord(id=rid, kind="kld", status=status, model=model, stats=s)  # type: ignore[arg-type]


class BoardApp(App[None]):
    def __init__(self, **kw: Any) -> None:
        super().__init__()
        self.kw = kw
        self.selected: list[str | None] = []

    def compose(self) -> ComposeResult:
        yield Leaderboard(**self.kw)

    def on_mount(self) -> None:
        self.query_one(Leaderboard).focus()

    def on_leaderboard_selected(self, message: Leaderboard.Selected) -> None:
        self.selected.append(message.row_id)


def shown_ids(board: Leaderboard) -> list[str]:
    """The row ids in the order the DataTable displays them (not the widget's own list)."""
    return [str(r.key.value) for r in board.table.ordered_rows]


def header(board: Leaderboard, key: str) -> str:
    return board.table.columns[key].label.plain  # type: ignore[index]


# -- sample results ------------------------------------------------------------------------
def test_sample_results_load_with_their_source() -> None:
    res = load_records(SAMPLES)
    assert res.problems == []
    published = [r for r in res.records if r.source.get("type") == "published"]
    assert len(published) == 17  # 12 (27B) + 5 (35B-A3B); the rest are qtui's own measurements
    assert all(r.source.get("type") == "qtui" for r in res.records if r not in published)
    for r in published:
        assert r.source["type"] == "published"
        assert r.source["url"].startswith("https://www.reddit.com/r/LocalLLaMA/comments/")
        assert r.model["quantized_by"] and r.model["quant"]


def test_27b_sample_ranks_as_published() -> None:
    rows = build_rows(records(Q27))
    by_kld = sorted(rows, key=lambda r: r.kld)  # type: ignore[arg-type, return-value]
    ranks = {r.id: r for r in records(Q27)}
    assert [ranks[r.id].source["rank"] for r in by_kld] == list(range(1, 13))
    # Pareto front worked out by hand from the post's sizes and KLDs: every row that no other
    # row beats on both size and KLD.
    front = {(r.quantizer, r.quant) for r in rows if r.pareto}
    assert front == {
        ("mradermacher", "i1-IQ4_XS"), ("bartowski", "IQ4_XS"), ("bartowski", "Q4_K_S"),
        ("mradermacher", "i1-Q4_K_M"), ("ubergarm", "smol-IQ4_NL"), ("unsloth", "Q4_K_M"),
        ("bartowski", "Q4_K_M"), ("unsloth", "UD-Q4_K_XL"),
    }
    smallest = min(rows, key=lambda r: r.size_gib)  # type: ignore[arg-type, return-value]
    assert smallest.quant == "i1-IQ4_XS"


def test_35b_sample_keeps_unknowns_unknown() -> None:
    recs = records(Q35)
    rows = build_rows(recs)
    by = {(r.quantizer, r.quant): r for r in rows}
    assert [(r.quantizer, r.quant) for r in sorted(rows, key=lambda r: r.kld)] == [  # type: ignore[arg-type, return-value]
        ("AesSedai", "Q4_K_M"), ("AesSedai", "IQ4_XS"), ("bartowski", "IQ4_XS"),
        ("unsloth", "MXFP4_MOE"), ("unsloth", "UD-Q4_K_XL"),
    ]
    # only AesSedai IQ4_XS has a published size; nothing was filled in with 0
    assert [k for k, r in by.items() if r.size_gib is not None] == [("AesSedai", "IQ4_XS")]
    assert by[("AesSedai", "Q4_K_M")].ppl_q is None and by[("unsloth", "UD-Q4_K_XL")].ppl_q is None
    assert all(r.kld_p99 is None and r.duration_s is None for r in rows)
    # a score needs size and KLD, and another row to be relative to: the other four have no
    # size, so none is scored (not even AesSedai IQ4_XS, which alone would get a meaningless 0)
    assert [k for k, r in by.items() if r.score is not None] == []
    # What is derivable: the post's 0.327 is sqrt(0² + kld_n²) for the smallest file, and
    # kld_n over these five published KLDs (they include the post's min and max) gives it back.
    klds = [r.kld for r in rows]
    kld_n = (by[("AesSedai", "IQ4_XS")].kld - min(klds)) / (max(klds) - min(klds))  # type: ignore[operator, type-var]
    published = next(r for r in recs if r.id.endswith("AesSedai-IQ4_XS")).source["published"]["efficiency"]
    assert round(kld_n, 3) == published == 0.327


def test_efficiency_over_the_27b_set() -> None:
    rows = build_rows(records(Q27))
    scores = dict(zip((f"{r.quantizer} {r.quant}" for r in rows), efficiency_scores(rows)))
    # By hand: sizes 13.680..16.411 GiB, KLD 0.005087..0.007677. bartowski IQ4_XS:
    # hypot(0.450/2.731, 0.001975/0.002590) = hypot(0.1648, 0.7625) = 0.780, the best;
    # the smallest file (mradermacher i1-IQ4_XS) pays for its KLD: hypot(0, 0.9583).
    assert min(scores, key=lambda k: scores[k]) == "bartowski IQ4_XS"  # type: ignore[arg-type, return-value]
    assert scores["bartowski IQ4_XS"] == pytest.approx(0.780, abs=5e-4)
    assert scores["mradermacher i1-IQ4_XS"] == pytest.approx(0.958, abs=5e-4)
    assert scores["unsloth UD-Q4_K_XL"] == pytest.approx(1.0)  # largest file, lowest KLD


# -- leaderboard ---------------------------------------------------------------------------
async def test_rows_shown_sorted_by_mean_kld_with_indicator() -> None:
    app = BoardApp()
    async with app.run_test(size=(260, 30)) as pilot:  # wide enough for every column
        board = app.query_one(Leaderboard)
        board.set_records(records(Q27))
        await pilot.pause()
        assert board.sort_key == "kld" and board.sort_reverse is False
        klds = [r.kld for r in board.rows]
        assert klds == sorted(klds)  # type: ignore[type-var]
        assert shown_ids(board) == [r.id for r in board.rows]
        assert header(board, "kld").endswith(ASC)
        assert not header(board, "size_gib").endswith((ASC, DESC))
        assert list(board.table.columns) == list(COLUMN_KEYS)
        # the first row is announced as selected
        assert app.selected == [board.rows[0].id] and board.selected_id == board.rows[0].id


async def test_sort_keys_cycle_and_reverse_with_unknowns_last() -> None:
    app = BoardApp()
    async with app.run_test(size=(260, 30)) as pilot:  # wide enough for every column
        board = app.query_one(Leaderboard)
        board.set_records(records(Q35))  # one setup: the board ranks one at a time
        await pilot.pause()
        # from Mean KLD, "<" twice: PPL ratio, then PPL(Q)
        await pilot.press("less_than_sign", "less_than_sign")
        assert board.sort_key == "ppl_q"
        ppl = [r.ppl_q for r in board.rows]
        known = [p for p in ppl if p is not None]
        assert known == sorted(known) and ppl[len(known):] == [None, None]
        assert shown_ids(board) == [r.id for r in board.rows]
        assert header(board, "ppl_q").endswith(ASC) and not header(board, "kld").endswith((ASC, DESC))
        await pilot.press("O")
        assert board.sort_reverse is True and header(board, "ppl_q").endswith(DESC)
        ppl = [r.ppl_q for r in board.rows]
        assert ppl[: len(known)] == sorted(known, reverse=True) and ppl[len(known):] == [None, None]
        assert shown_ids(board) == [r.id for r in board.rows]
        # "o" moves on to the next column, in its natural direction
        await pilot.press("o")
        assert board.sort_key == "ppl_ratio" and board.sort_reverse is False


async def test_size_sort_puts_unknown_sizes_last_in_both_directions() -> None:
    app = BoardApp()
    async with app.run_test(size=(100, 30)) as pilot:
        board = app.query_one(Leaderboard)
        board.set_records(records(Q35))
        await pilot.pause()
        for reverse in (False, True):
            board.sort_by("size_gib", reverse)
            await pilot.pause()
            order = shown_ids(board)
            assert order[0].endswith("AesSedai-IQ4_XS")
            assert all(board.rows[i].size_gib is None for i in range(1, 5))
        # the reactive itself re-sorts too (a parent may bind it)
        board.sort_key = "kld"
        await pilot.pause()
        assert shown_ids(board)[0].endswith("unsloth-UD-Q4_K_XL") and board.sort_reverse is True  # worst first


async def test_bigger_is_better_columns_start_descending() -> None:
    app = BoardApp()
    async with app.run_test(size=(100, 30)) as pilot:
        board = app.query_one(Leaderboard)
        board.set_records([rec("a", 1, 0.1, same_top=90.0), rec("b", 2, 0.05, same_top=95.0), rec("c", 3, None)])
        await pilot.pause()
        board.sort_by("same_top")
        assert board.sort_reverse is True
        assert shown_ids(board) == ["b", "a", "c"]
        board.sort_by("pareto")
        assert [r.pareto for r in board.rows][:2] == [True, True]


async def test_header_click_sorts_and_click_again_reverses() -> None:
    app = BoardApp()
    async with app.run_test(size=(120, 30)) as pilot:
        board = app.query_one(Leaderboard)
        board.set_records(records(Q27))
        await pilot.pause()
        table = board.table
        model_width = table.columns["model"].get_render_width(table)  # type: ignore[index]
        by_width = table.columns["quantizer"].get_render_width(table)  # type: ignore[index]
        # the header row is y=0; "By" starts right after the (fixed) Model column
        await pilot.click(DataTable, offset=(model_width + 1, 0))
        await pilot.pause()
        assert board.sort_key == "quantizer" and board.sort_reverse is False
        names = [r.quantizer for r in board.rows]
        assert names == sorted(names, key=str.lower)  # type: ignore[arg-type]
        await pilot.click(DataTable, offset=(model_width + 1, 0))
        await pilot.pause()
        assert board.sort_key == "quantizer" and board.sort_reverse is True
        assert [r.quantizer for r in board.rows] == sorted(names, key=str.lower, reverse=True)  # type: ignore[arg-type]
        assert shown_ids(board) == [r.id for r in board.rows]
        await pilot.click(DataTable, offset=(model_width + by_width + 1, 0))
        await pilot.pause()
        assert board.sort_key == "quant" and header(board, "quant").endswith(ASC)


async def test_selection_stays_on_its_row_across_updates() -> None:
    app = BoardApp()
    async with app.run_test(size=(100, 30)) as pilot:
        board = app.query_one(Leaderboard)
        recs = [rec("a", 1.0, 0.30), rec("b", 2.0, 0.20), rec("c", 3.0, 0.10)]
        board.set_records(recs)
        await pilot.pause()
        assert shown_ids(board) == ["c", "b", "a"]
        await pilot.press("down")
        await pilot.pause()
        assert board.selected_id == "b" and app.selected == ["c", "b"]
        # a new best row arrives above the cursor, and "a" gets a new figure
        board.set_records([rec("a", 1.0, 0.25), recs[1], recs[2], rec("d", 0.5, 0.05)])
        await pilot.pause()
        assert shown_ids(board) == ["d", "c", "b", "a"]
        assert board.selected_id == "b" and board.table.cursor_row == 2
        assert app.selected == ["c", "b"]  # no spurious Selected for an update
        assert str(board.table.get_cell("a", "kld")) == "0.250000"
        # re-sorting keeps the cursor on "b" too
        await pilot.press("O")
        assert shown_ids(board) == ["a", "b", "c", "d"] and board.selected_id == "b"
        assert board.table.cursor_row == 1
        # the selected row disappears: the row now under the cursor is announced
        board.set_records([rec("a", 1.0, 0.25), recs[2], rec("d", 0.5, 0.05)])
        await pilot.pause()
        assert board.selected_id == "c" and app.selected[-1] == "c"
        board.set_records([])
        await pilot.pause()
        assert board.selected_id is None and app.selected[-1] is None and board.rows == []


async def test_select_moves_the_cursor() -> None:
    app = BoardApp()
    async with app.run_test(size=(100, 30)) as pilot:
        board = app.query_one(Leaderboard)
        board.set_records([rec("a", 1.0, 0.30), rec("b", 2.0, 0.20), rec("c", 3.0, 0.10)])
        await pilot.pause()
        assert board.select("a") and board.selected_id == "a" and board.table.cursor_row == 2
        assert not board.select("nope")


async def test_failed_rows_show_their_state_in_words_and_sort_last() -> None:
    app = BoardApp(include_failed=True)
    async with app.run_test(size=(100, 30)) as pilot:
        board = app.query_one(Leaderboard)
        board.set_records([rec("ok", 1.0, 0.2), rec("bad", 2.0, None, status="failed"), rec("gone", 3.0, None, status="cancelled")])
        await pilot.pause()
        assert shown_ids(board)[0] == "ok"
        assert str(board.table.get_cell("bad", "model")).startswith("FAILED ")
        assert str(board.table.get_cell("gone", "model")).startswith("CANCELLED ")
        await pilot.press("O")
        assert shown_ids(board)[0] == "ok"  # unknown KLD stays last when reversed
    app = BoardApp()
    async with app.run_test(size=(100, 30)) as pilot:
        board = app.query_one(Leaderboard)
        board.set_records([rec("ok", 1.0, 0.2), rec("bad", 2.0, None, status="failed")])
        await pilot.pause()
        assert shown_ids(board) == ["ok"]


async def test_records_set_before_mount_are_shown() -> None:
    board = Leaderboard()
    board.set_records(records(Q35))

    class Early(App[None]):
        def compose(self) -> ComposeResult:
            yield board

    async with Early().run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert len(shown_ids(board)) == 5 and board.selected_id is not None


def test_unknown_sort_column_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown column"):
        Leaderboard().sort_by("speed")
    with pytest.raises(ValueError, match="unknown leaderboard column"):
        Leaderboard(columns=["kld", "speed"])


async def test_a_chosen_column_set_keeps_model_first() -> None:
    app = BoardApp(columns=["quant", "size_gib", "kld"])
    async with app.run_test(size=(80, 24)) as pilot:
        board = app.query_one(Leaderboard)
        board.set_records(records(Q27))
        await pilot.pause()
        assert list(board.table.columns) == ["model", "quant", "size_gib", "kld"]
        await pilot.press("o")
        assert board.sort_key == "model"  # wraps around the shown columns


# -- scatter -------------------------------------------------------------------------------
class PlotApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Scatter()


def plot_text(scatter: Scatter) -> str:
    plot = scatter.query_one(PlotextPlot)
    return "\n".join("".join(s.text for s in plot.render_line(y)) for y in range(plot.size.height))


async def test_scatter_empty_state() -> None:
    app = PlotApp()
    async with app.run_test(size=(80, 24)) as pilot:
        scatter = app.query_one(Scatter)
        await pilot.pause()
        assert scatter.has_class("-empty")
        assert "No results yet" in str(scatter.query_one(".scatter--empty").render())
        scatter.set_rows(build_rows([rec("a", None, 0.1)]))
        await pilot.pause()
        assert scatter.has_class("-empty") and "none with both a size and a mean KLD" in str(
            scatter.query_one(".scatter--empty").render()
        )


async def test_scatter_draws_front_selection_and_labels() -> None:
    app = PlotApp()
    async with app.run_test(size=(100, 30)) as pilot:
        scatter = app.query_one(Scatter)
        rows = build_rows(records(Q27) + records(Q35))
        chosen = next(r for r in rows if r.quantizer == "unsloth" and r.quant == "Q4_K_S")
        scatter.set_rows(rows, chosen.id)
        await pilot.pause()
        assert not scatter.has_class("-empty")
        assert len(scatter.plotted) == 13  # 12 + the one 35B row with a size
        text = plot_text(scatter)
        assert "mean KLD (log) vs GiB" in text
        assert text.count(MARK_SELECTED) == 2  # the point and the legend
        assert MARK_PARETO in text and MARK_OTHER in text
        assert "Q4_K_S" in text  # the selected row is labelled
        scatter.select(None)
        await pilot.pause()
        assert plot_text(scatter).count(MARK_SELECTED) == 1  # legend only


async def test_scatter_log_toggle_by_key() -> None:
    app = PlotApp()
    async with app.run_test(size=(80, 24)) as pilot:
        scatter = app.query_one(Scatter)
        scatter.set_rows(build_rows(records(Q27)))
        scatter.focus()
        await pilot.pause()
        assert scatter.log_scale
        await pilot.press("l")
        await pilot.pause()
        assert not scatter.log_scale
        text = plot_text(scatter)
        assert "mean KLD vs GiB" in text and "(log)" not in text
        scatter.toggle_log()
        await pilot.pause()
        assert "(log)" in plot_text(scatter)


async def test_scatter_log_scale_skips_zero_kld() -> None:
    app = PlotApp()
    async with app.run_test(size=(80, 24)) as pilot:
        scatter = app.query_one(Scatter)
        scatter.set_rows(build_rows([rec("base-like", 2.0, 0.0), rec("q4", 1.0, 0.02)]))
        await pilot.pause()
        assert [r.id for r in scatter.plotted] == ["q4"]
        scatter.toggle_log()
        await pilot.pause()
        assert {r.id for r in scatter.plotted} == {"base-like", "q4"}


# -- GPU panel -----------------------------------------------------------------------------
def gpu(index: int, name: str, used: float | None, total: float | None, util: int | None = 50, temp: int | None = 60,
        power: float | None = 200.0, limit: float | None = 350.0, procs: tuple[GpuProcess, ...] = ()) -> GpuSample:
    return GpuSample(index, name, f"GPU-{index}", None if used is None else int(used * GIB),
                     None if total is None else int(total * GIB), util, None, temp, power, limit, procs)


def snapshot(*gpus: GpuSample) -> GpuSnapshot:
    return GpuSnapshot(True, None, "550.54.15", tuple(gpus), 0.0)


UNAVAILABLE = GpuSnapshot(False, "no NVIDIA GPU / NVML unavailable: libnvidia-ml.so.1 not found (no NVIDIA driver installed)",
                          None, (), 0.0)


class PanelApp(App[None]):
    def __init__(self, compact: bool | None = None) -> None:
        super().__init__()
        self.compact = compact

    def compose(self) -> ComposeResult:
        yield GpuPanel(compact=self.compact)


def panel_text(panel: GpuPanel) -> str:
    return "\n".join("".join(s.text for s in panel.render_line(y)).rstrip() for y in range(panel.size.height))


async def test_gpu_panel_several_gpus_with_job_and_na_fields() -> None:
    app = PanelApp(compact=False)
    async with app.run_test(size=(100, 30)) as pilot:
        panel = app.query_one(GpuPanel)
        assert "waiting for the first NVML sample" in panel_text(panel)
        panel.show(snapshot(
            gpu(0, "NVIDIA H100 80GB HBM3", 41.0, 80.0, procs=(GpuProcess(4242, int(38.5 * GIB)), GpuProcess(7, GIB))),
            gpu(1, "NVIDIA GeForce RTX 3060", 1.0, 12.0, util=None, temp=None, power=None, limit=None),
        ), {4242})
        await pilot.pause()
        text = panel_text(panel)
        lines = text.splitlines()
        assert len(lines) == 4  # two lines per GPU
        assert "GPU 0 NVIDIA H100 80GB HBM3" in lines[0] and "util 50%" in lines[0] and "60°C" in lines[0]
        assert "200/350 W" in lines[0]
        assert "41.0/80.0 GiB" in lines[1] and "job 38.5 GiB peak 38.5 GiB" in lines[1]
        assert "util n/a" in lines[2] and "temp n/a" in lines[2] and "power n/a" in lines[2]
        assert "job" not in lines[3]  # the job runs on GPU 0 only
        # the job's VRAM drops: the peak stays
        panel.show(snapshot(gpu(0, "NVIDIA H100 80GB HBM3", 20.0, 80.0, procs=(GpuProcess(4242, 10 * GIB),)),
                            gpu(1, "NVIDIA GeForce RTX 3060", 1.0, 12.0)), {4242})
        await pilot.pause()
        assert "job 10.0 GiB peak 38.5 GiB" in panel_text(panel)
        # a new job (other pid) starts its own peak
        panel.show(snapshot(gpu(0, "NVIDIA H100 80GB HBM3", 20.0, 80.0, procs=(GpuProcess(5151, 2 * GIB),))), {5151})
        await pilot.pause()
        assert "job 2.0 GiB peak 2.0 GiB" in panel_text(panel)
        # no job running: the last peak is still worth seeing
        panel.show(snapshot(gpu(0, "NVIDIA H100 80GB HBM3", 1.0, 80.0)), set())
        await pilot.pause()
        assert "last job peak 2.0 GiB" in panel_text(panel)


async def test_gpu_panel_job_not_visible_to_nvml_is_na() -> None:
    app = PanelApp(compact=False)
    async with app.run_test(size=(100, 30)) as pilot:
        panel = app.query_one(GpuPanel)
        # in a container NVML reports host pids: ours is not among them
        panel.show(snapshot(gpu(0, "NVIDIA A100-SXM4-40GB", 30.0, 40.0, procs=(GpuProcess(99999, 29 * GIB),))), {123})
        await pilot.pause()
        assert "job n/a" in panel_text(panel)


async def test_gpu_panel_compact_is_one_line_per_gpu() -> None:
    app = PanelApp()  # auto: an 80x24 terminal is compact
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(GpuPanel)
        panel.show(snapshot(
            gpu(0, "NVIDIA GeForce RTX 4090", 20.5, 24.0, procs=(GpuProcess(1, int(19.5 * GIB)),)),
            gpu(1, "NVIDIA GeForce RTX 3060", 0.5, 12.0, util=None),
            gpu(2, "NVIDIA GeForce RTX 3060", None, None, None, None, None, None),
        ), {1})
        await pilot.pause()
        lines = panel_text(panel).splitlines()
        assert len(lines) == 3
        assert lines[0].startswith("0 RTX 4090 ") and "20.5/24G" in lines[0] and "job 19.5G ↑19.5G" in lines[0]
        assert "util n/a" in lines[1]
        assert lines[2].count("n/a") >= 4
        assert all(len(line) <= 78 for line in lines)
        panel.compact = False
        await pilot.pause()
        assert len(panel_text(panel).splitlines()) == 6


async def test_gpu_panel_unavailable_state() -> None:
    app = PanelApp()
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(GpuPanel)
        panel.show(UNAVAILABLE, set())
        await pilot.pause()
        text = " ".join(panel_text(panel).split())
        assert text == "no NVIDIA GPU / NVML unavailable: libnvidia-ml.so.1 not found (no NVIDIA driver installed)"
        panel.show(GpuSnapshot(False, "driver gone", None, (), 0.0), set())
        assert panel.as_text() == "no NVIDIA GPU / NVML unavailable: driver gone"


def test_bar_shapes() -> None:
    assert bar(0.0, 4) == "░░░░" and bar(1.0, 4) == "████" and bar(0.5, 4) == "██░░"
    assert bar(None, 3) == "···" and bar(0.55, 4) == "██▎░"
    assert all(len(bar(f / 100, 7)) == 7 for f in range(101))


async def test_header_hover_explains_the_column() -> None:
    app = BoardApp()
    async with app.run_test(size=(100, 30)) as pilot:
        board = app.query_one(Leaderboard)
        board.set_records(records(Q27))
        await pilot.pause()
        await pilot.hover(DataTable, offset=(2, 0))
        assert board.table.tooltip == "Model: file or model name"
        await pilot.hover(DataTable, offset=(2, 3))
        assert board.table.tooltip is None

"""Snapshot tests of the widgets at 80x24 (the smallest terminal qtui supports).

Update after an intended change with `pytest tests/ui/test_widget_snapshots.py --snapshot-update`,
then look at the SVGs in __snapshots__/ before committing them. snap_compare must be called
from sync tests (pytest-textual-snapshot 1.1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import Footer

from qtui.core.gpu import GpuProcess, GpuSample, GpuSnapshot
from qtui.core.results.store import load_records
from qtui.ui.screens.export import ExportScreen
from qtui.ui.widgets.gpu_panel import GpuPanel
from qtui.ui.widgets.leaderboard import Leaderboard
from qtui.ui.widgets.scatter import Scatter

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_results"
GIB = 1024**3
SIZE = (80, 24)


def sample(name: str) -> list[Any]:
    return load_records(SAMPLES / name).records


class BoardAndPlot(App[None]):
    """The leaderboard over the scatter, as the results screen stacks them."""

    CSS = "Leaderboard { height: 11; } Scatter { height: 1fr; }"

    def __init__(self, records: list[Any]) -> None:
        super().__init__()
        self.records = records

    def compose(self) -> ComposeResult:
        yield Leaderboard()
        yield Scatter()
        yield Footer()

    def on_mount(self) -> None:
        board = self.query_one(Leaderboard)
        board.set_records(self.records)
        board.focus()

    def on_leaderboard_selected(self, message: Leaderboard.Selected) -> None:
        # as the main screen hands them: the board's rows and the noise floor of its setup
        board = self.query_one(Leaderboard)
        self.query_one(Scatter).set_rows(board.rows, message.row_id, board.floor)


class PanelApp(App[None]):
    def __init__(self, snapshot: GpuSnapshot, pids: set[int], compact: bool | None = None) -> None:
        super().__init__()
        self.snapshot, self.pids, self.compact = snapshot, pids, compact

    def compose(self) -> ComposeResult:
        yield GpuPanel(compact=self.compact)

    def on_mount(self) -> None:
        self.query_one(GpuPanel).show(self.snapshot, self.pids)


def three_gpus() -> GpuSnapshot:
    return GpuSnapshot(True, None, "550.54.15", (
        GpuSample(0, "NVIDIA H100 80GB HBM3", "GPU-0", int(41.2 * GIB), int(79.6 * GIB), 87, 40, 62, 312.4, 700.0,
                  (GpuProcess(4242, int(38.1 * GIB)), GpuProcess(7, 2 * GIB))),
        GpuSample(1, "NVIDIA GeForce RTX 3060", "GPU-1", int(11.5 * GIB), 12 * GIB, None, None, 88, None, None),
        GpuSample(2, "NVIDIA A100-SXM4-40GB", "GPU-2", int(0.4 * GIB), 40 * GIB, 0, 0, 31, 52.0, 400.0),
    ), 0.0)


NO_GPU = GpuSnapshot(False, "no NVIDIA GPU / NVML unavailable: libnvidia-ml.so.1 not found (no NVIDIA driver installed)",
                     None, (), 0.0)


def test_leaderboard_and_scatter_27b(snap_compare: Any) -> None:
    assert snap_compare(BoardAndPlot(sample("qwen3.5-27b-q4-published.json")), press=["down", "down", "down"],
                        terminal_size=SIZE)


def test_leaderboard_sorted_by_size_reversed_with_unknowns(snap_compare: Any) -> None:
    records = sample("qwen3.5-35b-a3b-q4-published.json")

    async def sort(pilot: Any) -> None:
        pilot.app.query_one(Leaderboard).sort_by("ppl_q", reverse=True)
        await pilot.pause()

    assert snap_compare(BoardAndPlot(records), run_before=sort, terminal_size=SIZE)


def test_scatter_empty(snap_compare: Any) -> None:
    assert snap_compare(BoardAndPlot([]), terminal_size=SIZE)


def test_scatter_linear_scale(snap_compare: Any) -> None:
    async def linear(pilot: Any) -> None:
        pilot.app.query_one(Scatter).focus()
        await pilot.press("l")
        await pilot.pause()

    assert snap_compare(BoardAndPlot(sample("qwen3.5-27b-q4-published.json")), run_before=linear, terminal_size=SIZE)


def test_gpu_panel_compact(snap_compare: Any) -> None:
    assert snap_compare(PanelApp(three_gpus(), {4242}), terminal_size=SIZE)


def test_gpu_panel_full(snap_compare: Any) -> None:
    assert snap_compare(PanelApp(three_gpus(), {4242}, compact=False), terminal_size=SIZE)


def test_gpu_panel_unavailable(snap_compare: Any) -> None:
    assert snap_compare(PanelApp(NO_GPU, set()), terminal_size=SIZE)


def test_export_dialog(snap_compare: Any) -> None:
    records = sample("qwen3.5-27b-q4-published.json")

    async def open_dialog(pilot: Any) -> None:
        board = pilot.app.query_one(Leaderboard)
        pilot.app.push_screen(ExportScreen(board.rows, records, Path("/results")))
        await pilot.pause()

    assert snap_compare(BoardAndPlot(records), run_before=open_dialog, terminal_size=SIZE)


def test_scatter_whiskers_and_noise_floor(snap_compare: Any) -> None:
    """Each point with ± its standard error (wide, as after a few chunks), the floor as a line."""
    from dataclasses import replace

    records = sample("gemma-3-270m-qtui.json")
    wide = [replace(r, stats={**r.stats, "kld_mean_err": r.stats["kld_mean"] * 0.35}) for r in records]
    first = records[0]
    floor = replace(first, id="floor", model={**first.model, "floor": True, "path": "/m/base.gguf", "label": "base"},
                    stats={"kld_mean": 0.02})
    assert snap_compare(BoardAndPlot([*wide, floor]), terminal_size=SIZE)

"""Snapshot of the leaderboard over results from two setups (as tests/ui/test_snapshots.py, at 100x40):
the setup line over the table, the ranking of the default setup, and a cancelled run below the
"not ranked" line. Update with --snapshot-update and look at the SVG."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from qtui.core.results.store import ResultRecord, load_records
from qtui.ui.messages import RecordsChanged
from tests.ui.test_snapshots import T0, scan_done, snap_app, tab_shown

__all__ = ["snap_app"]  # the fixture, shared with test_snapshots.py

GEMMA = Path(__file__).resolve().parents[2] / "sample_results" / "gemma-3-270m-qtui.json"


def two_setups() -> list[ResultRecord]:
    """The Gemma ladder at 24 chunks, three of it again at 4 chunks, and a run cancelled at chunk 7."""
    full = load_records(GEMMA).records
    short = []
    for i, rec in enumerate(full[:3]):
        base = {**rec.base, "file": rec.base["file"].replace(".n24.", ".n4."), "key": "short"}
        stats = {**rec.stats, "kld_mean": rec.stats["kld_mean"] * 1.3}
        short.append(replace(rec, id=f"short-{i}", base=base, chunks=4, stats=stats, ended_at=T0 - 10))
    model = {**full[-1].model, "path": "/models/gemma-3-270m-Q3_K_S.gguf", "label": "gemma-3-270m-Q3_K_S",
             "quant": "Q3_K_S"}
    cancelled = replace(full[-1], id="cancelled", status="cancelled", model=model, stats={}, chunks=7,
                        failure={"reason": "cancelled by the user"}, ended_at=T0 - 5)
    return [*full, cancelled, *short]


def test_board_with_two_setups(snap_compare: Any, snap_app: Any) -> None:
    app = snap_app([RecordsChanged(two_setups())])
    assert snap_compare(app, run_before=scan_done("3", until=tab_shown("board")), terminal_size=(100, 40))

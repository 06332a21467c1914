"""Pilot test of screening progress: a batch after its first stage, run by the REAL scheduler with
the fake llama-perplexity writing per-token data. The queue says each job's stage and window,
the leaderboard one row per variant with its state and the chunks it ran."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from textual.app import App, ComposeResult

from qtui.core.jobs import screening
from qtui.core.jobs.queue import JobQueue
from qtui.core.jobs.scheduler import Scheduler
from qtui.core.results.leaderboard import board_records
from qtui.core.results.store import ResultStore
from qtui.ui.widgets.leaderboard import Leaderboard
from qtui.ui.widgets.queue import QueueView

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from test_screening_jobs import base_spec, queue_batch  # noqa: E402


class ProgressApp(App[None]):
    def compose(self) -> ComposeResult:
        yield QueueView()
        yield Leaderboard()


def first_stage(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> JobQueue:
    """Stage 1 run, stage 2 decided and queued but not started."""
    q = JobQueue(tmp)
    base = q.add(base_spec(tmp))
    queue_batch(q, tmp, base.id)
    with monkeypatch.context() as m:
        m.setattr("qtui.core.jobs.scheduler.after_job", lambda *a: False)
        m.setattr("qtui.core.jobs.scheduler.resume", lambda *a: [])
        Scheduler(tmp).run()
    done = [j for j in q.jobs() if j.spec.screen]
    assert screening.after_job(q, done[0].id)
    return q


async def test_queue_and_board_show_the_screening_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    q = first_stage(tmp_path, monkeypatch)
    app = ProgressApp()
    async with app.run_test(size=(200, 30)) as pilot:
        view = app.query_one(QueueView)
        view.set_jobs(q.jobs())
        board = app.query_one(Leaderboard)
        board.set_records(board_records(ResultStore(tmp_path).load().records))
        await pilot.pause()
        labels = {str(view.table.get_cell(j.id, "job")): str(view.table.get_cell(j.id, "state").plain)  # type: ignore[union-attr]
                  for j in q.jobs() if j.spec.screen}
        assert labels == {
            "A.gguf · screen 1 · chunks 1-8": "done", "B.gguf · screen 1 · chunks 1-8": "done",
            "C.gguf · screen 1 · chunks 1-8": "done",
            "B.gguf · screen 2 · chunks 9-40": "waiting", "C.gguf · screen 2 · chunks 9-40": "waiting",
        }
        ranks = {str(board.table.get_cell(r.id, "model").plain): str(board.table.get_cell(r.id, "rank").plain)
                 for r in board.rows}
        assert set(ranks) == {"A.gguf", "B.gguf", "C.gguf"}  # one row per variant, never one per window
        assert ranks["A.gguf"].endswith("settled · 8/40 chunks")
        assert ranks["B.gguf"].endswith("open · 8/40 chunks") and ranks["C.gguf"].endswith("open · 8/40 chunks")

"""Screening from the app: S starts the chosen showdown with screening (as `qtui run --screen`),
the run panel says each job's stage and window, and F on a leaderboard row queues a full run of
its model on its setup. The REAL scheduler runs the jobs; the fake llama-perplexity writes a
40-chunk base file and per-token data whose means differ by variant (Q8_0 far below Q4_K_M)."""

from __future__ import annotations

import stat
from pathlib import Path

from qtui.core.jobs.queue import JobQueue
from qtui.core.llama.tools import LlamaTools
from qtui.ui.widgets.leaderboard import Leaderboard
from qtui.ui.widgets.queue import QueueView
from qtui.ui.widgets.run_panel import RunPanel
from tests.ui.conftest import ready, statics_text, wait_for

# per-token KLD mean and noise of each variant, as the fake computes them (tests/fakes)
TOKENS = {"Q8_0": "0.05,0.2", "Q4_K_M": "0.30,1.5"}


def screening_tools(fake_tools: LlamaTools, tmp_path: Path) -> LlamaTools:
    """The conftest's fake, behind a wrapper that sets the base file's length and each
    variant's per-token data by its file name."""
    bin_dir = tmp_path / "screen-bin"
    bin_dir.mkdir()
    script = bin_dir / "llama-perplexity"
    script.write_text(f"""#!/bin/sh
export FAKE_LLAMA_BASE_CHUNKS=40
case "$*" in
  *Q8_0*) export FAKE_LLAMA_TOKENS={TOKENS['Q8_0']} ;;
  *Q4_K_M*) export FAKE_LLAMA_TOKENS={TOKENS['Q4_K_M']} ;;
esac
exec {fake_tools.perplexity} "$@"
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return LlamaTools(perplexity=script, quantize=None, bench=None, bin_dir=bin_dir, source="test")


def jobs(app) -> list:
    return app.screen.query_one(QueueView).jobs


async def screened_showdown(pilot) -> None:
    """Scan, choose every variant (a) and start with screening (S); wait for the batch's end."""
    from qtui.ui.widgets.model_list import ModelList

    app = pilot.app
    await ready(pilot)
    ml = app.screen.query_one(ModelList)
    await wait_for(pilot, lambda: not ml.scanning, what="the model scan")
    await pilot.press("a", "S")
    await wait_for(pilot, lambda: len(jobs(app)) == 3, what="the base and 2 screening jobs")
    await wait_for(pilot, lambda: app.screen.query_one("#tabs").active == "runs", 10, "the Runs tab")
    board = app.screen.query_one(Leaderboard)
    await wait_for(pilot, lambda: all(j.state.status == "done" for j in jobs(app)) and len(board.rows) == 2
                   and all(r.screen and not r.screen.startswith("open") for r in board.rows), 60,
                   "the screening batch to be decided and on the board")


async def test_S_starts_a_screened_showdown_and_the_run_panel_says_the_stage(app_factory, models_dir: Path,
                                                                             fake_tools: LlamaTools, tmp_path: Path) -> None:
    app = app_factory([models_dir], tools=screening_tools(fake_tools, tmp_path))
    async with app.run_test(size=(160, 40)) as pilot:
        await screened_showdown(pilot)
        kld = [j for j in jobs(app) if j.spec.kind == "kld"]
        assert all(j.spec.screen and j.spec.screen.get("stage") == 1 for j in kld)
        assert sorted(j.spec.label for j in kld) == ["tiny-Q4_K_M.gguf · screen 1 · chunks 1-16",
                                                     "tiny-Q8_0.gguf · screen 1 · chunks 1-16"]
        # the run panel follows the highlighted job and names its stage and window
        queue = app.screen.query_one(QueueView)
        row = next(i for i, j in enumerate(queue.jobs) if "Q8_0" in (j.spec.label or ""))
        queue.table.focus()
        queue.table.move_cursor(row=row)
        panel = app.screen.query_one(RunPanel)
        await wait_for(pilot, lambda: "tiny-Q8_0.gguf · screen 1 · chunks 1-16" in statics_text(panel), 10,
                       "the run panel to show the screening job")
        # two variants far apart: decided on the first window (16 chunks: one pass of the default -b 2048 at -c 128), 16 of 40 each
        board = app.screen.query_one(Leaderboard)
        cells = {r.model: str(board.table.get_cell(r.id, "rank").plain) for r in board.rows}  # type: ignore[union-attr]
        assert cells == {"tiny-Q8_0": "1 · settled · 16/40 chunks", "tiny-Q4_K_M": "2 · settled · 16/40 chunks"}


async def test_F_runs_the_selected_screened_variant_in_full(app_factory, models_dir: Path, fake_tools: LlamaTools,
                                                           tmp_path: Path) -> None:
    app = app_factory([models_dir], tools=screening_tools(fake_tools, tmp_path))
    async with app.run_test(size=(160, 40)) as pilot:
        await screened_showdown(pilot)
        base_file = next(j.spec.output for j in jobs(app) if j.spec.kind == "base")
        await pilot.press("3")
        board = app.screen.query_one(Leaderboard)
        target = next(i for i, r in enumerate(board.rows) if r.model == "tiny-Q4_K_M")
        board.table.focus()
        board.table.move_cursor(row=target)
        await pilot.pause()
        await pilot.press("F")
        await wait_for(pilot, lambda: len(jobs(app)) == 4, 20, "the full run to be queued")
        full = next(j for j in jobs(app) if j.spec.kind == "kld" and not j.spec.screen)
        assert full.spec.label == "tiny-Q4_K_M.gguf" and full.spec.window is None
        assert full.spec.argv[full.spec.argv.index("--kl-divergence-base") + 1] == base_file  # its setup's base file
        await wait_for(pilot, lambda: full.id in {j.id for j in jobs(app)}
                       and next(j for j in jobs(app) if j.id == full.id).state.status == "done", 60, "the full run")
        # the full run is the variant's row now: every chunk, no screening state
        await wait_for(pilot, lambda: any(r.model == "tiny-Q4_K_M" and r.screen is None for r in board.rows), 20,
                       "the board to show the full run")
        assert len(JobQueue(app.ctx.data_dir).jobs()) == 4
        # F again on a variant with a full run measures it once more, on purpose (again)
        board.table.focus()
        board.table.move_cursor(row=next(i for i, r in enumerate(board.rows) if r.model == "tiny-Q4_K_M"))
        await pilot.pause()
        await pilot.press("F")
        await wait_for(pilot, lambda: len(jobs(app)) == 5, 20, "a second full run to be queued")

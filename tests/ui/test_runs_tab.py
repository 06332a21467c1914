"""The Runs tab as a first-time user met it (issue 8, bug 4): at 160 columns the table stayed
~64 wide and cut the KLD (`0.00492 ±0.00`); at 80 the state read `cancell`; ± was written two
ways (`±8e-05` beside `±0.00016`); a waiting job's panel said "waiting for the first chunk…";
reopening qtui while jobs ran landed on Models.

Jobs and live runs come through the app's own Message path (a ScriptedSource), as in the
snapshot tests, so the states are fixed and the picture is the same on every machine."""

from __future__ import annotations

import re
from typing import Any

import pytest
from textual.widgets import Static, TabbedContent

from qtui.core.jobs.live import LiveRun
from qtui.core.llama.events import Progress
from qtui.ui.messages import JobsChanged, RunProgress
from qtui.ui.widgets.queue import QueueView
from tests.ui.conftest import wait_for
from tests.ui.test_snapshots import T0, job, scan_done, snap_app, tab_shown  # noqa: F401 - snap_app is a fixture

LONG = "Qwen3.5-35B-A3B-UD-Q4_K_XL-00001-of-00002.gguf"


def live(j: Any, kld: float, err: float, chunk: int = 20, total: int = 40) -> RunProgress:
    p = Progress(chunk=chunk, n_chunks=total, kld=kld, kld_err=err, ppl=18.9, ppl_err=0.2, same_top=95.1,
                 same_top_err=0.3)
    return RunProgress(LiveRun(j.id, None, p, (p,), "", (), j.state.started_at))


def sweep() -> list[Any]:
    """A base, two finished KLD runs (one with an error under 1e-4), a cancelled one with a long
    name, one running and three waiting."""
    base = job("base gemma-3-270m-F16.gguf", "base", "done", started=T0 - 90, ended=T0 - 80, seq=1)
    q8 = job("gemma-3-270m-Q8_0.gguf", "kld", "done", started=T0 - 80, ended=T0 - 70, seq=2)
    q6 = job("gemma-3-270m-Q6_K.gguf", "kld", "done", started=T0 - 70, ended=T0 - 60, seq=3)
    gone = job(LONG, "kld", "cancelled", started=T0 - 60, ended=T0 - 50, seq=4, reason="cancelled by the user")
    run = job("gemma-3-270m-Q4_K_M.gguf", "kld", "running", started=T0 - 30, pid=4242, seq=5)
    waiting = [job(f"gemma-3-270m-{q}.gguf", "kld", "queued", seq=6 + i) for i, q in enumerate(("Q4_0", "Q3_K_M", "Q2_K"))]
    return [JobsChanged([base, q8, q6, gone, run, *waiting]),
            live(q8, 0.003202, 8.0e-05, 40), live(q6, 0.008922, 0.000224, 40), live(run, 0.00492, 0.000158)]


def lines(app: Any) -> list[str]:
    return [strip.text for strip in app.screen._compositor.render_strips()]


def queue_lines(app: Any) -> list[str]:
    table = app.screen.query_one(QueueView).table
    r = table.region
    return [line[r.x:r.right] for line in lines(app)[r.y:r.bottom]]


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_runs_table_shows_every_state_and_kld_whole(snap_app: Any, size: tuple[int, int]) -> None:  # noqa: F811
    app = snap_app(sweep())
    async with app.run_test(size=size) as pilot:
        await scan_done("2", until=tab_shown("runs"))(pilot)
        table = app.screen.query_one(QueueView).table
        await wait_for(pilot, lambda: "0.00492" in "\n".join(queue_lines(app)), 10, "the running job's KLD")
        await pilot.pause()
        text = "\n".join(queue_lines(app))
        # states in full, never cut to 'cancell'
        for word in ("done", "cancelled", "running", "waiting"):
            assert re.search(rf"\b{word}\b", text), f"{word!r} not whole in:\n{text}"
        # each KLD whole, ± written one way: the error to two significant digits, fixed notation
        assert "0.00492 ±0.00016" in text, text
        assert "0.003202 ±0.000080" in text and "e-0" not in text, text
        assert "0.008922 ±0.000224" in text or "0.00892 ±0.00022" in text, text
        # nothing sideways: the whole table is in view
        assert table.virtual_size.width <= table.scrollable_content_region.width, (table.virtual_size, table.region)
        if size[0] >= 160:
            # half the width (it had ~64 columns of 160): room for whole names of a usual length
            assert table.region.width >= 76
            assert all(j.spec.label in text for j in app.screen.query_one(QueueView).jobs if j.spec.label != LONG), text
        assert "…" in text and "00002.gguf" in text  # a long name is cut in the middle, its end kept


async def test_waiting_job_says_how_many_are_ahead(snap_app: Any) -> None:  # noqa: F811
    app = snap_app(sweep())
    async with app.run_test(size=(80, 24)) as pilot:
        await scan_done("2", until=tab_shown("runs"))(pilot)
        view = app.screen.query_one(QueueView)
        values = app.screen.query_one("#run-values", Static)

        async def select(label: str) -> str:
            row = next(i for i, j in enumerate(view.jobs) if j.spec.label == label)
            while view.table.cursor_row != row:
                await pilot.press("down" if view.table.cursor_row < row else "up")
            await pilot.pause()
            return str(values.render())

        assert await select("gemma-3-270m-Q2_K.gguf") == "queued, 2 ahead"
        assert await select("gemma-3-270m-Q3_K_M.gguf") == "queued, 1 ahead"
        assert await select("gemma-3-270m-Q4_0.gguf") == "queued, 0 ahead: next to start"
        running = await select("gemma-3-270m-Q4_K_M.gguf")
        assert running.startswith("KLD 0.00492 ± 0.00016"), running


async def test_reopening_while_jobs_run_lands_on_runs(snap_app: Any) -> None:  # noqa: F811
    app = snap_app(sweep())
    async with app.run_test(size=(80, 24)) as pilot:
        await scan_done()(pilot)  # no key pressed
        tabs = app.screen.query_one(TabbedContent)
        await wait_for(pilot, lambda: tab_shown("runs")(app), 5, "the Runs tab")
        assert "Runs (1 running, 3 waiting)" in str(tabs.get_tab("runs").label)


async def test_reopening_with_nothing_to_run_lands_on_models(snap_app: Any) -> None:  # noqa: F811
    finished = [m for m in sweep() if isinstance(m, JobsChanged)][0].jobs
    done = [j for j in finished if j.state.status in ("done", "cancelled")]
    app = snap_app([JobsChanged(done)])
    async with app.run_test(size=(80, 24)) as pilot:
        await scan_done()(pilot)
        await pilot.pause()
        assert app.screen.query_one(TabbedContent).active == "models"
        assert len(app.screen.query_one(QueueView).jobs) == len(done)

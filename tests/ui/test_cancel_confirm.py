"""`c c` on the Runs tab must not cancel two jobs: a run that has made progress is cancelled only
after a yes, and the cursor stays on the job it was on (by id) when the next job starts."""

from __future__ import annotations

from pathlib import Path

from qtui.core.jobs.queue import JobQueue
from qtui.ui.screens.confirm import ConfirmScreen
from qtui.ui.widgets.queue import QueueView
from tests.ui.conftest import add_model, notified, ready, statics_text, wait_for

FIRST, SECOND = "tiny-SLOW-Q4_0.gguf", "tiny-SLOW-Q4_1.gguf"


def job(app, label: str):
    return next(j for j in app.screen.query_one(QueueView).jobs if j.spec.label == label)


async def test_c_c_asks_then_keeps_the_cursor_on_the_cancelled_job(app_factory, models_dir: Path) -> None:
    add_model(models_dir, FIRST)
    add_model(models_dir, SECOND)
    app = app_factory([models_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        from qtui.ui.widgets.model_list import ModelList

        await ready(pilot)
        ml = app.screen.query_one(ModelList)
        await wait_for(pilot, lambda: not ml.scanning, what="the model scan")
        for name in (FIRST, SECOND):
            ml.table.move_cursor(row=[m.path.name for m in ml.visible_models()].index(name))
            await pilot.press("space")
        await pilot.press("s")
        queue = app.screen.query_one(QueueView)
        await wait_for(pilot, lambda: len(queue.jobs) == 3, what="base + 2 jobs queued")
        first = job(app, FIRST)
        # the first slow run is running and has measured at least one chunk
        await wait_for(pilot, lambda: job(app, FIRST).state.status == "running"
                       and (live := queue.live.get(first.id)) is not None and live.done >= 1, what="progress")
        await pilot.press("2")
        await wait_for(pilot, lambda: queue.selected_job() is not None and queue.selected_job().id == first.id,
                       5, "the cursor on the running job")

        await pilot.press("c")  # asks: chunks would be lost
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the confirm dialog")
        said = statics_text(app.screen)
        assert f"Cancel {FIRST}?" in said and "chunks done will be lost" in said, said
        total = queue.live[first.id].n_chunks
        assert f" of {total} chunks done" in said
        await pilot.press("enter")  # Enter is no
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen), 5, "the dialog to close")
        q = JobQueue(app.ctx.data_dir)
        assert q.get(first.id).state.status == "running" and q.get(first.id).state.cancel_requested_at is None

        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the confirm dialog again")
        await pilot.press("y")
        await wait_for(pilot, lambda: job(app, FIRST).state.status == "cancelled"
                       and job(app, SECOND).state.status == "running", what="the cancel and the next run")
        # the next job started: the cursor did not follow it
        assert queue.selected_job() is not None and queue.selected_job().id == first.id

        await pilot.press("c")  # the same, cancelled job: nothing else is touched
        await notified(pilot, f"{FIRST} is already cancelled")
        assert not isinstance(app.screen, ConfirmScreen)
        second = q.get(job(app, SECOND).id)
        assert second.state.status == "running" and second.state.cancel_requested_at is None


async def test_a_waiting_job_is_cancelled_at_once(app_factory, models_dir: Path) -> None:
    add_model(models_dir, FIRST)
    add_model(models_dir, SECOND)
    app = app_factory([models_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        from qtui.ui.widgets.model_list import ModelList

        await ready(pilot)
        ml = app.screen.query_one(ModelList)
        await wait_for(pilot, lambda: not ml.scanning, what="the model scan")
        for name in (FIRST, SECOND):
            ml.table.move_cursor(row=[m.path.name for m in ml.visible_models()].index(name))
            await pilot.press("space")
        await pilot.press("s")
        queue = app.screen.query_one(QueueView)
        await wait_for(pilot, lambda: len(queue.jobs) == 3, what="base + 2 jobs queued")
        await pilot.press("2")
        second = job(app, SECOND)
        while queue.selected_job() is None or queue.selected_job().id != second.id:
            await pilot.press("down")
        assert job(app, SECOND).state.status == "queued"  # the first slow run takes ~20 s
        await pilot.press("c")
        await wait_for(pilot, lambda: job(app, SECOND).state.status == "cancelled", 10, "the waiting job cancelled")
        assert not isinstance(app.screen, ConfirmScreen)

"""Starting the same showdown twice: the showdown service decides what is worth running (as for
`qtui run`) and the app says what it skipped, instead of filtering variants itself."""

from __future__ import annotations

from pathlib import Path

from qtui.core.jobs.queue import JobQueue
from qtui.ui.widgets.model_list import ModelList
from qtui.ui.widgets.queue import QueueView
from tests.ui.conftest import notified, ready, wait_for


async def test_a_second_start_of_measured_variants_queues_nothing_and_says_why(app_factory, models_dir: Path) -> None:
    app = app_factory([models_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        ml = app.screen.query_one(ModelList)
        await wait_for(pilot, lambda: not ml.scanning, what="the model scan")
        await pilot.press("a", "s")
        queue = app.screen.query_one(QueueView)
        await wait_for(pilot, lambda: len(queue.jobs) == 3 and all(j.state.status == "done" for j in queue.jobs),
                       what="the first showdown to finish")
        await pilot.press("1", "s")  # the same choice again
        await notified(pilot, "nothing new to run")
        await notified(pilot, "already measured on this setup")
        assert len(JobQueue(app.ctx.data_dir).jobs()) == 3
        assert app.screen.query_one("#tabs").active == "models"  # nothing to follow on the Runs tab

"""Pilot tests: every key flow of the app, driven by key presses, with real queue/scheduler runs
of the fake llama-perplexity replaying recorded transcripts (see conftest.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from qtui.core.jobs.queue import JobQueue
from qtui.ui.screens.details import InfoScreen
from qtui.ui.widgets.model_list import ModelList
from tests.helpers import wait_until
from tests.ui.conftest import add_model, notified, ready, rich_text, screen_text, statics_text, wait_for


def marks(app) -> dict[str, str]:
    ml = app.screen.query_one(ModelList)
    table = ml.table
    out = {}
    for row_key in table.rows:
        out[Path(str(row_key.value)).name] = str(table.get_cell(row_key, "mark"))
    return out


async def scanned(pilot) -> ModelList:
    await ready(pilot)
    ml = pilot.app.screen.query_one(ModelList)
    await wait_for(pilot, lambda: not ml.scanning, what="the model scan")
    return ml


async def start_one(pilot, name: str) -> None:
    """Scan, put the cursor on the file called name, choose it (space) and start (s)."""
    ml = await scanned(pilot)
    ml.table.move_cursor(row=[m.path.name for m in ml.visible_models()].index(name))
    await pilot.press("space", "s")


async def test_choose_base_toggle_all_none(app_factory, models_dir: Path) -> None:
    app = app_factory([models_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        ml = await scanned(pilot)
        # the only F16 file is chosen as the base on its own
        assert marks(app) == {"tiny-F16.gguf": "B", "tiny-Q4_K_M.gguf": "", "tiny-Q8_0.gguf": ""}
        await pilot.press("down", "space")  # toggling moves down a row
        assert marks(app)["tiny-Q4_K_M.gguf"] == "✓"
        assert ml.table.cursor_row == 2
        await pilot.press("space")
        assert ml.choice().variants == [models_dir / "tiny-Q4_K_M.gguf", models_dir / "tiny-Q8_0.gguf"]
        await pilot.press("n")
        assert ml.choice().variants == []
        await pilot.press("a")
        assert {p.name for p in ml.choice().variants} == {"tiny-Q4_K_M.gguf", "tiny-Q8_0.gguf"}
        # b on a quant makes it the base (with a warning) and drops it from the variants
        await pilot.press("up", "b")
        assert ml.choice().base == models_dir / "tiny-Q4_K_M.gguf"
        assert marks(app) == {"tiny-F16.gguf": "b", "tiny-Q4_K_M.gguf": "B", "tiny-Q8_0.gguf": "✓"}
        assert "1 skipped (!)" in str(app.screen.query_one("#models-status").render())



async def test_filter_keeps_and_clears(app_factory, models_dir: Path) -> None:
    app = app_factory([models_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        ml = await scanned(pilot)
        await pilot.press("slash", "q", "8", "enter")
        assert [m.path.name for m in ml.visible_models()] == ["tiny-Q8_0.gguf"]
        assert ml.table.row_count == 1 and ml.table.has_focus
        await pilot.press("a")  # select all acts on the shown rows only
        assert [p.name for p in ml.choice().variants] == ["tiny-Q8_0.gguf"]
        await pilot.press("slash", "escape")
        assert ml.table.row_count == 3 and ml.filter_text == ""


async def test_details_and_skipped_screens(app_factory, models_dir: Path) -> None:
    app = app_factory([models_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        await scanned(pilot)
        await pilot.press("down", "i")
        assert isinstance(app.screen, InfoScreen)
        assert app.screen.title_text == "Model: tiny-Q4_K_M.gguf"
        text = rich_text(app.screen.body)
        for want in ("Tensor types (all tensors)", "Q4_K", "attention", "ffn_dense", "embed_output", "vocab"):
            assert want in text
        await pilot.press("escape")
        await pilot.press("enter")  # enter on a row opens the same details
        assert isinstance(app.screen, InfoScreen)
        await pilot.press("q")
        await pilot.press("exclamation_mark")
        assert app.screen.title_text == "1 skipped file(s)"
        await pilot.press("escape")
        assert not isinstance(app.screen, InfoScreen)


def board_rows(app):
    from qtui.ui.widgets.leaderboard import Leaderboard

    return app.screen.query_one(Leaderboard).rows


async def test_start_runs_and_leaderboard_fills(app_factory, models_dir: Path) -> None:
    from qtui.ui.widgets.queue import QueueView

    app = app_factory([models_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        await scanned(pilot)
        await pilot.press("a", "s")
        queue = app.screen.query_one(QueueView)
        await wait_for(pilot, lambda: len(queue.jobs) == 3, what="3 jobs queued")
        await wait_for(pilot, lambda: app.screen.query_one("#tabs").active == "runs", 10, "the Runs tab")
        assert [j.spec.kind for j in queue.jobs] == ["base", "kld", "kld"]
        await wait_for(pilot, lambda: all(j.state.status == "done" for j in queue.jobs) and len(board_rows(app)) == 2,
                       what="all runs done and on the leaderboard")
        rows = {r.model: r for r in board_rows(app)}
        # the numbers are the recorded llama.cpp runs' own final blocks
        assert rows["tiny-Q4_K_M"].kld > rows["tiny-Q8_0"].kld > 0
        states = [str(queue.table.get_cell(j.id, "state")) for j in queue.jobs]
        assert states == ["done", "done", "done"]
        await pilot.press("3")
        text = screen_text(app)
        assert "tiny-Q8_0" in text and "tiny-Q4_K_M" in text


def job_by_label(app, label: str):
    from qtui.ui.widgets.queue import QueueView

    return next((j for j in app.screen.query_one(QueueView).jobs if j.spec.label == label), None)


def status_of(app, label: str) -> str | None:
    j = job_by_label(app, label)
    return j.state.status if j else None


async def focus_job(pilot, label: str) -> None:
    from qtui.ui.widgets.queue import QueueView

    queue = pilot.app.screen.query_one(QueueView)
    await pilot.press("2")
    row = next(i for i, j in enumerate(queue.jobs) if j.spec.label == label)
    while queue.table.cursor_row != row:
        await pilot.press("down" if queue.table.cursor_row < row else "up")


async def press_cancel(pilot) -> None:
    """`c`, and `y` if it asks (a run that has measured chunks asks before they are lost)."""
    from qtui.ui.screens.confirm import ConfirmScreen

    await pilot.press("c")
    await pilot.pause()
    if isinstance(pilot.app.screen, ConfirmScreen):
        await pilot.press("y")


async def test_cancel_retry_remove(app_factory, models_dir: Path) -> None:
    add_model(models_dir, "tiny-SLOW-Q4_0.gguf")
    app = app_factory([models_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        await start_one(pilot, "tiny-SLOW-Q4_0.gguf")
        await wait_for(pilot, lambda: status_of(app, "tiny-SLOW-Q4_0.gguf") == "running", what="the slow run to start")
        await focus_job(pilot, "tiny-SLOW-Q4_0.gguf")
        await press_cancel(pilot)
        await wait_for(pilot, lambda: status_of(app, "tiny-SLOW-Q4_0.gguf") == "cancelled", what="the cancel")
        assert "cancelled by the user" in screen_text(app)
        await pilot.press("r")
        await wait_for(pilot, lambda: status_of(app, "tiny-SLOW-Q4_0.gguf") in ("queued", "running"),
                       what="the retried job to be queued")
        await press_cancel(pilot)  # cancel again (queued: at once; running: stopped after a yes)
        await wait_for(pilot, lambda: status_of(app, "tiny-SLOW-Q4_0.gguf") == "cancelled", what="the second cancel")
        await pilot.press("x")
        await wait_for(pilot, lambda: job_by_label(app, "tiny-SLOW-Q4_0.gguf") is None, what="the removal")
        assert all(j.spec.label != "tiny-SLOW-Q4_0.gguf" for j in JobQueue(app.ctx.data_dir).jobs())


@contextlib.contextmanager
def scheduler_busy_elsewhere(data_dir: Path) -> Iterator[None]:
    """Hold the scheduler's singleton lock, as a scheduler at work would: nothing starts one."""
    from qtui.core.fsutil import file_lock
    from qtui.core.jobs.procs import lock_path

    with file_lock(lock_path(data_dir)):
        yield


async def test_opening_the_app_restarts_a_dead_scheduler(app_factory, qtui_dirs) -> None:
    """Jobs left queued with no scheduler (it was killed, or the machine rebooted) run as soon
    as the app opens: opening qtui re-attaches."""
    import sys

    from qtui.core.jobs.queue import JobSpec
    from tests.ui.conftest import FAKE, FIXTURES

    argv = [sys.executable, str(FAKE), "-m", "x.gguf", "--kl-divergence-base", "b.kld", "--kl-divergence"]
    q = JobQueue(qtui_dirs["data"])
    jobs = q.add_many([JobSpec(kind="kld", argv=argv, env={"FAKE_LLAMA_CASE": str(FIXTURES / "llama" / "b0336" / "kld-q8_0")},
                               label=name) for name in "AB"])
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await wait_for(pilot, lambda: all(status_of(app, j.spec.label) == "done" for j in jobs), what="the left jobs to run")


async def test_a_scheduler_that_dies_while_the_app_is_open_comes_back(app_factory, qtui_dirs) -> None:
    """Jobs that wait with no scheduler while the app is open (it was killed mid-run: here
    they are queued by hand, which starts none) run without a key pressed."""
    import sys

    from qtui.core.jobs.queue import JobSpec
    from tests.ui.conftest import FAKE, FIXTURES

    app = app_factory(keep_going_interval=0.3)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        argv = [sys.executable, str(FAKE), "-m", "x.gguf", "--kl-divergence-base", "b.kld", "--kl-divergence"]
        jobs = JobQueue(qtui_dirs["data"]).add_many(
            [JobSpec(kind="kld", argv=argv, env={"FAKE_LLAMA_CASE": str(FIXTURES / "llama" / "b0336" / "kld-q8_0")}, label=name)
             for name in "CD"])
        await wait_for(pilot, lambda: all(status_of(app, j.spec.label) == "done" for j in jobs), what="the waiting jobs to run")


async def test_reorder_waiting_jobs(app_factory, qtui_dirs) -> None:
    from qtui.core.jobs.queue import JobSpec

    q = JobQueue(qtui_dirs["data"])
    # queued by hand while a scheduler is busy elsewhere: they stay waiting while the keys reorder them
    q.add_many([JobSpec(kind="kld", argv=["true"], label=name, seq=i) for i, name in enumerate("ABC")])
    app = app_factory()
    with scheduler_busy_elsewhere(qtui_dirs["data"]):
        await _reorder(app, q)


async def _reorder(app, q: JobQueue) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("2")
        await wait_for(pilot, lambda: job_by_label(app, "C") is not None, what="the queue")
        assert "waiting" in screen_text(app)
        await focus_job(pilot, "C")
        await pilot.press("K")
        await wait_for(pilot, lambda: [j.spec.label for j in q.jobs()] == ["A", "C", "B"], what="C moved up")
        await pilot.press("ctrl+up")
        await wait_for(pilot, lambda: [j.spec.label for j in q.jobs()] == ["C", "A", "B"], what="C moved first")
        await pilot.press("J", "ctrl+down")
        await wait_for(pilot, lambda: [j.spec.label for j in q.jobs()] == ["A", "B", "C"], what="C moved back last")
        # the cursor follows the moved job, and the table shows the new order
        from qtui.ui.widgets.queue import QueueView

        queue = app.screen.query_one(QueueView)
        await wait_for(pilot, lambda: [j.spec.label for j in queue.jobs] == ["A", "B", "C"], what="the table order")
        assert queue.selected_job() is not None and queue.selected_job().spec.label == "C"


async def test_failed_run_shows_reason_and_stderr(app_factory, models_dir: Path) -> None:
    add_model(models_dir, "tiny-TRUNC-Q4_0.gguf")
    app = app_factory([models_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        await start_one(pilot, "tiny-TRUNC-Q4_0.gguf")
        await wait_for(pilot, lambda: status_of(app, "tiny-TRUNC-Q4_0.gguf") == "failed", what="the failure")
        await notified(pilot, "✗ tiny-TRUNC-Q4_0.gguf failed: ")
        await focus_job(pilot, "tiny-TRUNC-Q4_0.gguf")
        await wait_for(pilot, lambda: "✗ failed:" in screen_text(app), 10, "the failed run's panel")
        text = screen_text(app)
        assert "failed" in text
        reason = job_by_label(app, "tiny-TRUNC-Q4_0.gguf").state.reason
        assert reason and "truncated" in reason  # explained in words, not an exit code
        assert "✗ failed:" in text
        await pilot.press("ctrl+t")
        # the end of llama-perplexity's stderr, in its own words
        await wait_for(pilot, lambda: "failed reading log-probs for chunk 39" in screen_text(app), 5, "the stderr tail")
        await pilot.press("3")
        await wait_for(pilot, lambda: any(r.status == "failed" for r in board_rows(app)), what="the failed row")
        assert "FAILED" in screen_text(app)


async def test_a_run_that_ended_before_qtui_looked_is_still_announced(app_factory, qtui_dirs) -> None:
    """History is not announced; a job that appears already failed after start is (a run that
    fails at once on a busy machine can end between two looks at the queue)."""
    from qtui.core.jobs.queue import JobSpec

    q = JobQueue(qtui_dirs["data"])
    old = q.add(JobSpec(kind="kld", argv=["true"], label="OLD"))
    q.update(old.id, status="failed", reason="old news")
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("2")
        await wait_for(pilot, lambda: status_of(app, "OLD") == "failed", what="the history")
        new = q.add(JobSpec(kind="kld", argv=["true"], label="NEW"))
        q.update(new.id, status="failed", reason="the model file is truncated")
        await notified(pilot, "✗ NEW failed: the model file is truncated")
        assert not any("OLD" in str(n.message) for n in app._notifications)


async def test_quit_while_running_then_reattach(app_factory, models_dir: Path) -> None:
    from qtui.ui.screens.quit import QuitScreen

    add_model(models_dir, "tiny-SLOW-Q4_0.gguf")
    app = app_factory([models_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        await start_one(pilot, "tiny-SLOW-Q4_0.gguf")
        await wait_for(pilot, lambda: status_of(app, "tiny-SLOW-Q4_0.gguf") == "running", what="the slow run")
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await wait_for(pilot, lambda: "go on in the background" in screen_text(app), 5, "the quit dialog")
        said = statics_text(app.screen)
        assert "1 running job(s) will go on in the background" in said and "qtui jobs --watch" in said
        await pilot.press("escape")  # stay
        assert not isinstance(app.screen, QuitScreen) and app.is_running
        job = job_by_label(app, "tiny-SLOW-Q4_0.gguf")
        await pilot.press("q", "q")  # quit for real: the run goes on
    assert not app.is_running
    assert JobQueue(app.ctx.data_dir).get(job.id).state.status == "running"

    # a new qtui on the same data dir shows the run live, with the chunks done so far replayed
    app2 = app_factory([models_dir])
    async with app2.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("2")
        await wait_for(pilot, lambda: job.id in app2.screen.live and app2.screen.live[job.id].history,
                       what="the re-attached run's progress")
        await wait_for(pilot, lambda: "running" in screen_text(app2) and "chunks" in screen_text(app2), 5,
                       "the live run panel")
        first = len(app2.screen.live[job.id].history)
        await wait_for(pilot, lambda: len(app2.screen.live[job.id].history) > first, what="new chunks arriving")
        await pilot.press("q")
        await pilot.press("c")  # cancel the runs and quit
    q = JobQueue(app.ctx.data_dir)
    wait_until(lambda: q.get(job.id).state.status != "running", 20, "the cancelled run to stop")
    assert q.get(job.id).state.status == "cancelled"


async def test_results_read_only(app_factory) -> None:
    sample = Path(__file__).resolve().parents[2] / "sample_results" / "qwen3.5-27b-q4-published.json"
    app = app_factory(results=sample)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await wait_for(pilot, lambda: len(board_rows(app)) > 0, what="the sample records")
        assert app.screen.query_one("#tabs").active == "board"
        n = len(board_rows(app))
        await pilot.press("s")
        await notified(pilot, "read-only")
        await pilot.press("1")  # the Models tab is not there in read-only mode
        assert app.screen.query_one("#tabs").active == "board"
        from qtui.ui.widgets.leaderboard import Leaderboard
        from qtui.ui.widgets.scatter import Scatter

        board = app.screen.query_one(Leaderboard)
        before = board.sort_key
        await pilot.press("o")  # sorting still works
        assert board.sort_key != before and len(board_rows(app)) == n
        await pilot.press("O")
        key = board.sort_key
        vals = [getattr(r, key) for r in board_rows(app) if getattr(r, key) is not None]
        assert vals == sorted(vals, reverse=board.sort_reverse)
        await wait_for(pilot, lambda: bool(app.screen.query(Scatter)), 10, "the scatter plot")
        scatter = app.screen.query_one(Scatter)
        log = scatter.log_scale
        await pilot.press("l")
        assert scatter.log_scale != log
        await pilot.press("v")  # table only
        assert not scatter.display or scatter.region.height == 0 or app.screen.query_one("#board-pane").has_class("-table")
        await pilot.press("v", "v")  # plot only, then both again
        assert app.screen.query_one("#board-pane").has_class("-both")
        await pilot.press("q")  # nothing runs: quits at once
    assert not app.is_running


async def test_help_lists_every_key(app_factory, models_dir: Path) -> None:
    from textual.binding import Binding

    from qtui.ui.commands import key_groups
    from qtui.ui.screens.help import HelpScreen, key_display

    app = app_factory([models_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        await scanned(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = rich_text(app.screen.body, width=120)
        n = 0
        for _title, bindings in key_groups():
            texts: dict[str, list[str]] = {}
            for b in Binding.make_bindings(bindings):
                assert key_display(b) in text, b
                texts.setdefault(b.action, []).append(b.tooltip or b.description)
                n += 1
            flat = " ".join(text.split())  # a long tooltip wraps onto the next line
            for action, said in texts.items():  # keys of one action share a line
                assert any(" ".join(t.split()) in flat for t in said), action
        assert n >= 25
        for word in ("start", "cancel", "retry", "filter", "sort", "export", "theme", "settings", "quit"):
            assert word in text.lower()
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_command_palette_runs_actions(app_factory, models_dir: Path) -> None:
    app = app_factory([models_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        ml = await scanned(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"choose every")
        await wait_for(pilot, lambda: "Choose every shown model" in screen_text(app), 10, "the palette hit")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(ml.choice().variants) == 2, 10, "select all through the palette")
        await pilot.press("ctrl+p")
        await pilot.press(*"leaderboard tab")
        await wait_for(pilot, lambda: "Show the Leaderboard tab" in screen_text(app), 10, "the palette hit")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.query_one("#tabs").active == "board", 10, "the tab switch")


async def test_theme_is_chosen_and_saved(app_factory, qtui_dirs) -> None:
    from qtui.core.config import load_config

    app = app_factory(theme_dirs=None)  # the shipped TOML themes too
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        assert "qtui-mono" in app.available_themes
        await pilot.press("T")  # the searchable picker (t steps to the next theme)
        await pilot.press(*"qtui-mono")
        await wait_for(pilot, lambda: "qtui-mono" in screen_text(app), 10, "the theme list")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.theme == "qtui-mono", 10, "the theme change")
        await wait_for(pilot, lambda: load_config()[0].theme == "qtui-mono", 10, "the saved theme")


async def test_bad_theme_file_is_a_notification(app_factory, qtui_dirs, tmp_path: Path) -> None:
    themes = tmp_path / "themes"
    themes.mkdir()
    (themes / "broken.toml").write_text("name = 'broken'\nprimary = 'not-a-colour'\n")
    app = app_factory(theme_dirs=[themes])
    async with app.run_test(size=(80, 24)) as pilot:
        await notified(pilot, "broken.toml")
        assert app.theme == "textual-dark"


async def test_settings_are_saved(app_factory, qtui_dirs) -> None:
    from textual.widgets import Input

    from qtui.core.config import load_config
    from qtui.ui.screens.settings import SettingsScreen

    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("comma")
        assert isinstance(app.screen, SettingsScreen)
        screen = app.screen
        screen.query_one("#set-ctx", Input).value = "abc"
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, SettingsScreen)  # refused, stays open, says why
        assert "Context must be a positive whole number" in statics_text(screen)
        assert load_config()[0].ctx == 128
        screen.query_one("#set-ctx", Input).value = "256"
        screen.query_one("#set-chunks", Input).value = "12"
        screen.query_one("#set-llama_args", Input).value = "-ngl 99 -fa on"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, SettingsScreen), 5, "the dialog to close")
        cfg = load_config()[0]
        assert (cfg.ctx, cfg.chunks, cfg.llama_args) == (256, 12, ["-ngl", "99", "-fa", "on"])
        assert app.ctx.cfg.ctx == 256
        await pilot.press("f2", "escape")  # f2 opens the same dialog; escape leaves it unchanged
        assert load_config()[0].ctx == 256


async def test_changing_parallel_runs_while_a_scheduler_works_says_when_it_applies(app_factory, qtui_dirs) -> None:
    from textual.widgets import Input

    app = app_factory()
    with scheduler_busy_elsewhere(Path(qtui_dirs["data"])):  # a scheduler at work, as far as qtui can tell
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            await pilot.press("comma")
            app.screen.query_one("#set-slots", Input).value = "2"
            await pilot.press("ctrl+s")
            await notified(pilot, "parallel runs: 1 until the queue is empty, then 2")
            assert app.ctx.cfg.slots == 2


async def test_builtin_corpus_from_the_settings(app_factory, models_dir: Path, qtui_dirs) -> None:
    from qtui.core.config import Config
    from qtui.ui.widgets.queue import QueueView

    app = app_factory([models_dir], cfg=Config(corpus="builtin", ctx=128))
    async with app.run_test(size=(80, 24)) as pilot:
        await scanned(pilot)
        await pilot.press("a", "s")
        queue = app.screen.query_one(QueueView)
        await wait_for(pilot, lambda: len(queue.jobs) == 3, what="3 jobs queued")
        argv = queue.jobs[0].spec.argv
        corpus = Path(argv[argv.index("-f") + 1])
        assert corpus.is_relative_to(qtui_dirs["cache"]) and corpus.stat().st_size > 200_000


async def test_refused_start_lists_every_problem(app_factory, models_dir: Path) -> None:
    add_model(models_dir, "other-vocab-Q4_0.gguf", n_vocab=96)
    app = app_factory([models_dir])
    async with app.run_test(size=(80, 24)) as pilot:
        ml = await scanned(pilot)
        await pilot.press("s")  # no variants yet: says what to do
        await notified(pilot, "space toggles")
        await pilot.press("a", "s")
        await wait_for(pilot, lambda: isinstance(app.screen, InfoScreen), 20, "the refusal")
        assert app.screen.title_text == "Cannot start the showdown"
        said = rich_text(app.screen.body)
        assert "other-vocab-Q4_0.gguf: vocabulary of 96 tokens" in said
        await pilot.press("escape")
        assert JobQueue(app.ctx.data_dir).jobs() == []
        assert len(ml.choice().variants) == 3  # nothing was lost: fix the problem, press s again


async def test_missing_llama_says_how_to_fix(app_factory, models_dir: Path, tmp_path: Path) -> None:
    app = app_factory([models_dir], tools=None, llama_bin=str(tmp_path / "nowhere"))
    async with app.run_test(size=(80, 24)) as pilot:
        await scanned(pilot)
        await pilot.press("a", "s")
        await wait_for(pilot, lambda: isinstance(app.screen, InfoScreen), 20, "the message")
        said = rich_text(app.screen.body)
        assert "llama-perplexity not found" in said and "qtui setup-llama" in said
        assert "Settings" in said


async def test_no_models_says_so(app_factory, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    app = app_factory([empty])
    async with app.run_test(size=(80, 24)) as pilot:
        ml = await scanned(pilot)
        assert ml.models == [] and ml.table.has_focus  # the keys still work on an empty list
        assert "No GGUF models found under" in screen_text(app) and "qtui demo" in screen_text(app)
        await pilot.press("s")
        await notified(pilot, "base model first")


SAMPLE = Path(__file__).resolve().parents[2] / "sample_results" / "qwen3.5-27b-q4-published.json"


async def test_export_markdown_from_the_board(app_factory, qtui_dirs, tmp_path: Path) -> None:
    from textual.widgets import Input

    from qtui.core.results.store import ResultStore, load_records
    from qtui.ui.screens.export import ExportScreen

    store = ResultStore(qtui_dirs["data"])
    records = load_records(SAMPLE).records
    for rec in records:
        store.save(rec)
    app = app_factory()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("3")
        await wait_for(pilot, lambda: len(board_rows(app)) == len([r for r in records if r.kind == "kld"]),
                       what="the stored records")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen), 5, "the export dialog")
        target = tmp_path / "board.md"
        app.screen.query_one("#path", Input).value = str(target)
        await pilot.press("enter")
        await wait_for(pilot, lambda: target.exists() and not isinstance(app.screen, ExportScreen), 5, "the export")
        text = target.read_text()
        # rows in the order shown on the board (mean KLD, ascending by default)
        shown = [(r.model, r.quantizer) for r in board_rows(app) if r.status == "done"]
        lines = [ln.split("|") for ln in text.splitlines() if ln[:3].strip("| ").isdigit()]
        assert [(c[2].strip(), c[3].strip()) for c in lines] == shown
        await notified(pilot, f"exported to {target}")


async def test_demo_autostart_chooses_and_runs(app_factory, models_dir: Path) -> None:
    from qtui.ui.app import Autostart

    auto = Autostart(models_dir / "tiny-F16.gguf", [models_dir / "tiny-Q8_0.gguf"], ctx=128, chunks=4,
                     llama_args=("-b", "128"))
    app = app_factory([models_dir], autostart=auto)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: status_of(app, "tiny-Q8_0.gguf") == "done", what="the demo run")
        assert marks(app)["tiny-Q8_0.gguf"] == "✓"
        base_job = next(j for j in JobQueue(app.ctx.data_dir).jobs() if j.spec.kind == "base")
        assert base_job.spec.chunks == 4 and "--chunks" in base_job.spec.argv
        kld_job = next(j for j in JobQueue(app.ctx.data_dir).jobs() if j.spec.kind == "kld")
        assert kld_job.spec.argv[-2:] == ["-b", "128"]  # the demo's own llama arguments reach the run


@pytest.mark.integration
async def test_real_llama_perplexity_through_the_app(llama_tools, qtui_dirs, tmp_path: Path) -> None:
    """The real binary (qtui setup-llama's build) on the tiny model: keys in, numbers out."""
    from qtui.core.config import Config, save_config
    from qtui.core.llama import assets
    from qtui.ui.app import make_app
    from tests.ui.conftest import NoGpu

    tools = llama_tools  # session-scoped: found before qtui_dirs points the cache dir elsewhere
    models = tmp_path / "models"
    corpus = assets.stdlib_corpus(tmp_path / "corpus.txt")
    base = assets.tiny_model(models, corpus=corpus)
    assets.ladder(tools, base, ["Q8_0", "Q4_0"], models)
    save_config(Config(corpus=str(corpus), ctx=128, chunks=8))
    app = make_app(dirs=[models], data_dir=qtui_dirs["data"], tools=tools, gpu=NoGpu(), poll_interval=0.1,
                   theme_dirs=[])
    async with app.run_test(size=(80, 24)) as pilot:
        await scanned(pilot)
        await pilot.press("a", "s")
        await wait_for(pilot, lambda: len([r for r in board_rows(app) if r.status == "done"]) == 2, 120,
                       "both real KLD runs on the leaderboard")
        rows = {r.quant: r for r in board_rows(app)}
        assert 0 < rows["Q8_0"].kld < rows["Q4_0"].kld  # fewer bits, further from the base
        assert rows["Q8_0"].same_top > rows["Q4_0"].same_top


def test_board_hides_failures_that_were_retried_with_success() -> None:
    from qtui.core.results.store import ResultRecord
    from qtui.ui.screens.main import board_records

    def rec(i: str, model: str, status: str, ended: float) -> ResultRecord:
        return ResultRecord(id=i, kind="kld", status=status, model={"path": model}, base={"file": "b.kld"},  # type: ignore[arg-type]
                            ended_at=ended)

    records = [rec("1", "a.gguf", "cancelled", 1), rec("2", "a.gguf", "done", 2), rec("3", "b.gguf", "failed", 1),
               rec("4", "b.gguf", "failed", 3), rec("5", "c.gguf", "done", 1)]
    assert [r.id for r in board_records(records)] == ["2", "4", "5"]


async def test_second_start_reuses_the_pending_base_job(app_factory, tmp_path: Path) -> None:
    from gguf_builders import F16, dense_tensors, write_model

    from qtui.ui.widgets.queue import QueueView
    from tests.ui.conftest import N_VOCAB

    d = tmp_path / "slow-base"
    # a base whose generation streams for ~20 s: still pending when the second start comes
    write_model(d / "tiny-SLOW-F16.gguf", tensors=dense_tensors(n_vocab=N_VOCAB, weight_type=F16, embd_type=F16),
                n_vocab=N_VOCAB, file_type=1)
    add_model(d, "tiny-Q4_0.gguf")
    add_model(d, "tiny-Q8_0.gguf")
    app = app_factory([d])
    async with app.run_test(size=(80, 24)) as pilot:
        ml = await scanned(pilot)
        names = [m.path.name for m in ml.visible_models()]
        ml.table.move_cursor(row=names.index("tiny-Q4_0.gguf"))
        await pilot.press("space", "s")
        await wait_for(pilot, lambda: status_of(app, "tiny-Q4_0.gguf") is not None, what="the first start")
        # The start moves to the Runs tab once it is queued: wait for that, as a person sees it,
        # before going back (else the move can come after "1" and take the keys meant for Models).
        await wait_for(pilot, lambda: app.screen.query_one("#tabs").active == "runs"
                       and app.focused is app.screen.query_one(QueueView).table, 10, "the Runs tab after the start")
        await pilot.press("1")
        ml.table.move_cursor(row=names.index("tiny-Q8_0.gguf"))
        await pilot.press("space", "s")
        await wait_for(pilot, lambda: status_of(app, "tiny-Q8_0.gguf") is not None, what="the second start")
        jobs = JobQueue(app.ctx.data_dir).jobs()
        bases = [j for j in jobs if j.spec.kind == "base"]
        assert len(bases) == 1 and bases[0].state.status in ("queued", "running")
        assert job_by_label(app, "tiny-Q8_0.gguf").spec.depends_on == bases[0].id


def test_job_cache_sees_every_change_jobqueue_makes(tmp_path: Path) -> None:
    from qtui.core.jobs.queue import JobSpec
    from qtui.ui.source import JobCache

    q = JobQueue(tmp_path)
    q.add_many([JobSpec(kind="kld", argv=["x"], label=f"m{i}", seq=i) for i in range(5)])
    cache = JobCache(q)

    def same() -> bool:
        def view(jobs: list) -> list:
            return [(j.id, j.state.status, j.spec.seq) for j in jobs]

        return view(cache.jobs()) == view(q.jobs())

    assert same()
    jobs = q.jobs()
    q.update(jobs[1].id, status="running", pid=123)
    assert same()
    q.move(jobs[4].id, -1)
    assert same()
    q.cancel(jobs[0].id)
    q.remove(jobs[0].id)
    assert same() and len(cache.jobs()) == 4
    q.retry(jobs[0].id)  # gone: nothing to retry, nothing changes
    assert same()


async def test_split_set_is_one_row(app_factory, tmp_path: Path) -> None:
    from gguf_builders import dense_tensors, write_model

    d = tmp_path / "split"
    first = write_model(d / "big-Q4_K_M.gguf", tensors=dense_tensors(n_vocab=64), n_vocab=64, file_type=15,
                        split_max_tensors=8)
    assert len(list(d.glob("*.gguf"))) > 1
    app = app_factory([d])
    async with app.run_test(size=(80, 24)) as pilot:
        ml = await scanned(pilot)
        assert [m.path for m in ml.models] == [first] and ml.table.row_count == 1
        n = len(ml.models[0].shards)
        assert f"({n} parts)" in str(ml.table.get_cell(str(first), "file"))

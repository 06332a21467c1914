"""Settings: the base run's own llama args and the cache (its size, its place), as a user sets
them: `,` opens the dialog, ctrl+s saves, a showdown started with `a` `s` then uses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qtui.core import paths
from qtui.core.config import load_config
from qtui.core.fsutil import human_bytes
from qtui.ui.screens.settings import SettingsScreen
from qtui.ui.widgets.queue import QueueView
from tests.helpers import flag, write_synthetic_base_file
from tests.ui.conftest import ready, statics_text, wait_for


async def open_settings(pilot) -> SettingsScreen:
    await pilot.press("comma")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, SettingsScreen), 5, "the settings")
    return pilot.app.screen


async def save(pilot) -> None:
    await pilot.press("ctrl+s")
    await wait_for(pilot, lambda: not isinstance(pilot.app.screen, SettingsScreen), 5, "the dialog to close")


async def test_base_args_from_the_settings_reach_the_base_job_only(app_factory, models_dir: Path) -> None:
    from textual.widgets import Input

    app = app_factory([models_dir])
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        screen = await open_settings(pilot)
        screen.query_one("#set-llama_args", Input).value = "-ngl 99"
        # context and batch must stay those of the KLD runs: refused in the dialog, with why
        screen.query_one("#set-base_args", Input).value = "-ngl 20 -c 4096"
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, SettingsScreen)
        assert "the base args set -c 4096 where the KLD runs use -c 128" in statics_text(screen)
        assert load_config()[0].base_args == []
        screen.query_one("#set-base_args", Input).value = "-ngl 20 -ot exps=CPU"
        await save(pilot)
        assert load_config()[0].base_args == ["-ngl", "20", "-ot", "exps=CPU"]
        assert app.ctx.cfg.base_args == ["-ngl", "20", "-ot", "exps=CPU"]
        await pilot.press("a", "s")  # every file, start
        queue = app.screen.query_one(QueueView)
        await wait_for(pilot, lambda: len(queue.jobs) == 3, what="3 jobs queued")
        kinds = {j.spec.kind for j in queue.jobs}
        assert kinds == {"base", "kld"}
        for job in queue.jobs:
            argv = list(job.spec.argv)
            if job.spec.kind == "base":
                assert flag(argv, "-ngl") == "20" and flag(argv, "-ot") == "exps=CPU", argv
            else:
                assert flag(argv, "-ngl") == "99" and "-ot" not in argv, argv
        # reopened, the dialog shows what was saved
        screen = await open_settings(pilot)
        assert screen.query_one("#set-base_args", Input).value == "-ngl 20 -ot exps=CPU"
        await pilot.press("escape")


def cached_base(folder: Path, name: str) -> int:
    """A finished base file (and its metadata) in `folder`; the bytes both take."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.c16.n3.abcd.kld"
    write_synthetic_base_file(path, 16, 8, 3)
    meta = Path(str(path) + ".json")
    meta.write_text(json.dumps({"base": {"path": f"/m/{name}.gguf"}, "ctx": 16, "n_chunk": 3}))
    return path.stat().st_size + meta.stat().st_size


async def test_the_cache_size_shows_and_its_place_can_be_set(app_factory, tmp_path: Path, qtui_dirs,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from textual.widgets import Input

    size = cached_base(qtui_dirs["cache"] / "bases", "tiny-F16")
    elsewhere = tmp_path / "big-disk" / "qtui-cache"
    other = cached_base(elsewhere / "bases", "a-BF16") + cached_base(elsewhere / "bases", "b-BF16")
    app = app_factory()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        screen = await open_settings(pilot)
        said = statics_text(screen)
        assert f"Base files: {human_bytes(size)} in 1 base file in {qtui_dirs['cache'] / 'bases'}" in said, said
        assert "QTUI_CACHE_DIR is set: it wins over Cache dir" in said  # the test's env
        screen.query_one("#set-cache_dir", Input).value = str(elsewhere)
        await save(pilot)
        assert load_config()[0].cache_dir == str(elsewhere)
        assert paths.bases_dir() == qtui_dirs["cache"] / "bases"  # the environment still wins
        monkeypatch.delenv("QTUI_CACHE_DIR")
        assert paths.bases_dir() == elsewhere / "bases"  # without it, the setting is where the cache is
        screen = await open_settings(pilot)
        said = statics_text(screen)
        assert f"Base files: {human_bytes(other)} in 2 base files in {elsewhere / 'bases'}" in said, said
        assert "QTUI_CACHE_DIR" not in said
        # a file is not a folder: refused, with why
        (tmp_path / "a-file").write_text("x")
        screen.query_one("#set-cache_dir", Input).value = str(tmp_path / "a-file")
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, SettingsScreen)
        assert f"cache dir {tmp_path / 'a-file'} is not a folder" in statics_text(screen)
        await pilot.press("escape")


async def test_gpus_per_run_is_set_in_the_settings(app_factory, qtui_dirs) -> None:
    from textual.widgets import Input

    app = app_factory()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        screen = await open_settings(pilot)
        field = screen.query_one("#set-gpus_per_run", Input)
        assert field.value == "auto"  # the default: the fewest GPUs that hold the run
        field.value = "2"
        await save(pilot)
        assert load_config()[0].gpus_per_run == 2
        screen = await open_settings(pilot)
        screen.query_one("#set-gpus_per_run", Input).value = "two"
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, SettingsScreen)
        assert "GPUs per run must be auto or a number of GPUs from 1 to 64, not 'two'" in statics_text(screen)
        await pilot.press("escape")
        assert load_config()[0].gpus_per_run == 2

"""The export dialog writes every format (each read back and parsed), shoots the screen
behind it, and reports unwritable paths inside the dialog."""

from __future__ import annotations

import csv
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Input, Static

from qtui.core.results.store import load_records
from qtui.ui.screens.export import FORMATS, ExportError, ExportScreen, resolve_target
from qtui.ui.widgets.leaderboard import Leaderboard
from qtui.ui.widgets.scatter import Scatter

ROOT = Path(__file__).resolve().parents[2]
RECORDS = load_records(ROOT / "sample_results" / "qwen3.5-27b-q4-published.json").records


class BoardApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.results: list[Path | None] = []

    def compose(self) -> ComposeResult:
        yield Leaderboard()
        yield Scatter()

    def on_mount(self) -> None:
        board = self.query_one(Leaderboard)
        board.set_records(RECORDS)
        board.sort_by("size_gib")
        self.query_one(Scatter).set_rows(board.rows)

    def open_export(self, default_dir: Path | None, fmt: str | None = None) -> ExportScreen:
        board = self.query_one(Leaderboard)
        screen = ExportScreen(board.rows, RECORDS, default_dir, fmt=fmt)
        self.push_screen(screen, self.results.append)
        return screen


async def choose(pilot: Any, key: str) -> None:
    await pilot.click(f"#fmt-{key}")
    await pilot.pause()


def error_text(screen: ExportScreen) -> str:
    return str(screen.query_one("#error", Static).render())


async def test_prefilled_path_follows_the_format(tmp_path: Path) -> None:
    app = BoardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.open_export(tmp_path)
        await pilot.pause()
        box = screen.query_one("#path", Input)
        assert box.value == str(tmp_path / "qtui-leaderboard.md")
        await choose(pilot, "csv")
        assert box.value == str(tmp_path / "qtui-leaderboard.csv")
        await choose(pilot, "screenshot")
        assert box.value == str(tmp_path / "qtui-leaderboard.svg")
        box.value = str(tmp_path / "mine.txt")
        await choose(pilot, "json")
        assert box.value == str(tmp_path / "mine.txt")  # a suffix of the user's own is kept
        await pilot.press("escape")
        await pilot.pause()
        assert app.results == [None] and not isinstance(app.screen, ExportScreen)


async def test_default_prefill_is_relative_to_the_working_folder() -> None:
    app = BoardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.open_export(None)
        await pilot.pause()
        assert screen.query_one("#path", Input).value == "./qtui-leaderboard.md"


@pytest.mark.parametrize("key", ["csv", "json", "md", "svg"])
async def test_each_format_is_written_and_reads_back(tmp_path: Path, key: str) -> None:
    app = BoardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        board = app.query_one(Leaderboard)
        app.open_export(tmp_path)
        await pilot.pause()
        await choose(pilot, key)
        await pilot.click("#export")
        await pilot.pause()
        suffix = next(f.suffix for f in FORMATS if f.key == key)
        target = tmp_path / f"qtui-leaderboard{suffix}"
        assert app.results == [target] and not isinstance(app.screen, ExportScreen)
        text = target.read_text(encoding="utf-8")
        shown = [r.id for r in board.rows]  # sorted by size: the export keeps that order
        if key == "csv":
            table = list(csv.reader(text.splitlines()))
            assert table[0][:4] == ["model", "quantizer", "quant", "size_gib"]
            assert len(table) == 13
            sizes = [float(r[3]) for r in table[1:]]
            assert sizes == sorted(sizes)
        elif key == "json":
            data = json.loads(text)
            assert [r["id"] for r in data["rows"]] == shown
            assert len(data["records"]) == 12 and data["records"][0]["source"]["type"] == "published"
        elif key == "md":
            lines = text.splitlines()
            assert lines[2].startswith("| # | Model | By | Quant | GiB |")
            assert lines[3].startswith("|---|")
            assert sum(1 for line in lines if line.startswith("| ") and line[2].isdigit()) == 12
        else:
            root = ET.fromstring(text)
            assert root.tag.endswith("svg")
            assert len([e for e in root.iter() if e.tag.endswith("circle")]) == 12


async def test_svg_screenshot_is_the_screen_behind_the_dialog(tmp_path: Path) -> None:
    app = BoardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_export(tmp_path, fmt="screenshot")
        await pilot.pause()
        target = tmp_path / "shot.svg"
        app.screen.query_one("#path", Input).value = str(target)
        await pilot.press("enter")
        # the shot is taken after the next refresh: wait for it (a loaded machine is slow)
        deadline = time.monotonic() + 10
        while not app.results and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert app.results == [target]
        svg = target.read_text(encoding="utf-8")
        ET.fromstring(svg)
        plain = svg.replace("&#160;", " ")
        assert "Model" in plain and "mean KLD (log) vs GiB" in plain
        assert "Export the leaderboard" not in plain  # the dialog is not in the picture


async def test_a_failed_screenshot_brings_the_dialog_back(tmp_path: Path) -> None:
    app = BoardApp()

    def full_disk(**_: Any) -> None:
        raise OSError(28, "No space left on device")

    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.open_export(tmp_path, fmt="screenshot")
        await pilot.pause()
        app.save_screenshot = full_disk  # type: ignore[method-assign]
        await pilot.press("enter")
        deadline = time.monotonic() + 10
        while "No space left" not in error_text(screen) and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert "Cannot write" in error_text(screen) and "No space left on device" in error_text(screen)
        assert app.screen is screen and app.results == []
        await pilot.pause()
        assert screen.query_one("#dialog").region  # the dialog is shown again, with the reason


async def test_missing_folder_is_reported_in_the_dialog(tmp_path: Path) -> None:
    app = BoardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.open_export(tmp_path)
        await pilot.pause()
        screen.query_one("#path", Input).value = str(tmp_path / "nope" / "x.md")
        await pilot.click("#export")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen) and app.results == []
        assert f"The folder {tmp_path / 'nope'} does not exist." in error_text(screen)


async def test_write_failure_is_reported_in_the_dialog(tmp_path: Path) -> None:
    app = BoardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        for key in ("md", "screenshot"):
            screen = app.open_export(tmp_path, fmt=key)
            await pilot.pause()
            # /proc takes no new files, even for root (for whom permission bits do not apply)
            screen.query_one("#path", Input).value = "/proc/qtui-export-test.svg"
            await pilot.click("#export")
            await pilot.pause()
            assert isinstance(app.screen, ExportScreen) and app.results == []
            assert error_text(screen).startswith("Cannot write /proc/qtui-export-test.svg")
            await pilot.press("escape")
            await pilot.pause()
            app.results.clear()


async def test_existing_file_needs_a_second_press(tmp_path: Path) -> None:
    target = tmp_path / "qtui-leaderboard.md"
    target.write_text("old\n")
    app = BoardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.open_export(tmp_path)
        await pilot.pause()
        await pilot.click("#export")
        for _ in range(50):
            if "exists" in error_text(screen):
                break
            await pilot.pause(0.05)
        assert "exists. Press Export again to replace it." in error_text(screen)
        assert target.read_text() == "old\n" and app.results == []
        button = screen.query_one("#export")
        for _ in range(50):  # a Button ignores clicks during its 0.2 s press effect: a person's second press comes later
            if not button.has_class("-active"):
                break
            await pilot.pause(0.05)
        await pilot.click("#export")
        for _ in range(50):  # the dialog dismisses after its callback chain; wait for it, not a fixed time
            if app.results:
                break
            await pilot.pause(0.05)
        assert app.results == [target] and target.read_text().startswith("### KLD leaderboard")


def test_resolve_target(tmp_path: Path) -> None:
    md = FORMATS[0]
    assert resolve_target(str(tmp_path), md) == tmp_path / "qtui-leaderboard.md"
    assert resolve_target(f"  {tmp_path}/a.md ", md) == tmp_path / "a.md"
    with pytest.raises(ExportError, match="Type a file name"):
        resolve_target("   ", md)
    with pytest.raises(ExportError, match="does not exist"):
        resolve_target(str(tmp_path / "x" / "y.md"), md)


# -- issue 8: the keys a first-time user pressed ---------------------------------------------
async def test_typed_path_survives_tab_and_its_extension_picks_the_format(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Type `…/lb.svg`, Tab to the button, Enter: an SVG chart in the typed folder, nothing in the
    working folder (it used to be Markdown written into lb.svg)."""
    from textual.widgets import RadioButton

    models, out = tmp_path / "models", tmp_path / "out"
    models.mkdir()
    out.mkdir()
    monkeypatch.chdir(models)
    app = BoardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.open_export(None)
        await pilot.pause()
        assert app.focused is screen.query_one("#path", Input)
        await pilot.press(*f"{out}/lb.svg")
        await pilot.press("tab")
        await pilot.pause()
        assert app.focused is screen.query_one("#export")
        assert screen.query_one("#path", Input).value == f"{out}/lb.svg"
        assert screen.query_one("#fmt-svg", RadioButton).value  # the radio follows the name
        assert f"→ {out / 'lb.svg'} (SVG chart)" in str(screen.query_one("#target", Static).render())
        await pilot.press("enter")
        await pilot.pause()
        assert app.results == [out / "lb.svg"]
        root = ET.fromstring((out / "lb.svg").read_text(encoding="utf-8"))
        assert root.tag.endswith("svg")
        assert list(models.iterdir()) == []


async def test_a_folder_that_does_not_exist_is_not_a_file_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = BoardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.open_export(None)
        await pilot.pause()
        await pilot.press(*"exports/", "enter")
        await pilot.pause()
        assert "The folder exports does not exist." in error_text(screen)
        assert app.results == [] and list(tmp_path.iterdir()) == []


async def test_last_folder_and_format_are_remembered(tmp_path: Path) -> None:
    from textual.widgets import RadioButton

    app = BoardApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.open_export(None)
        await pilot.pause()
        await pilot.press(*f"{tmp_path}/board.csv", "enter")
        await pilot.pause()
        assert app.results == [tmp_path / "board.csv"]
        assert (tmp_path / "board.csv").read_text().startswith("model,")
        screen = app.open_export(None)  # opened again: where and how the last one went
        await pilot.pause()
        assert screen.query_one("#path", Input).value == str(tmp_path / "qtui-leaderboard.csv")
        assert screen.query_one("#fmt-csv", RadioButton).value

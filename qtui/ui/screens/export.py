"""The export dialog: the leaderboard as CSV, JSON, a Markdown table, an SVG chart, or an SVG
screenshot of the screen behind the dialog.

Files are written by qtui.core.results.export from the rows as shown (same order, same score set),
read from the board when Export is pressed, so what is exported is what the user is looking at then
(a run that finished while the dialog was open included). Anything that goes wrong (a folder that
does not exist, no permission, a full disk) is said inside the dialog, which stays open.

The file name decides the format: typing `lb.csv` selects CSV (the radio follows), and choosing a
format gives the name that format's extension; a name with another extension keeps the chosen
format. The line under the name says where the file goes, as an absolute path. The last folder
and format are remembered while qtui runs.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Static

from qtui.core.fsutil import atomic_write_text
from qtui.core.results.export import export
from qtui.core.results.leaderboard import Row
from qtui.core.results.store import ResultRecord

DEFAULT_STEM = "qtui-leaderboard"


@dataclass(frozen=True)
class Format:
    key: str  # qtui.core.results.export format, or "screenshot"
    label: str
    suffix: str
    hint: str


FORMATS: tuple[Format, ...] = (
    Format("md", "Markdown", ".md", "a table ready to paste into a post or an issue"),
    Format("csv", "CSV", ".csv", "for spreadsheets and pandas"),
    Format("json", "JSON", ".json", "rows plus the full records: nothing measured is lost"),
    Format("svg", "SVG chart", ".svg", "size vs mean KLD (log), Pareto front joined"),
    Format("screenshot", "SVG screenshot", ".svg", "the screen behind this dialog, as you see it"),
)
_SUFFIXES = {f.suffix for f in FORMATS}
# What the board shows now: its rows in order, and the records behind them.
BoardSource = Callable[[], tuple[Sequence[Row], Sequence[ResultRecord]]]


@dataclass
class Remembered:
    folder: Path | None = None
    fmt: str | None = None


# The last folder and format, per running app: the next export starts where the last one went.
_REMEMBERED: weakref.WeakKeyDictionary[App[object], Remembered] = weakref.WeakKeyDictionary()


def format_for(text: str, current: Format) -> Format:
    """The format a file name asks for: its extension wins; an unknown one keeps `current`.
    `.svg` is the chart unless the screenshot (also SVG) is chosen."""
    suffix = os.path.splitext(text.strip())[1].lower()
    if suffix == current.suffix or suffix not in _SUFFIXES:
        return current
    return next(f for f in FORMATS if f.suffix == suffix)
_SHOT_TRIES = 50  # refreshes to wait for the dialog to leave the picture


class ExportError(Exception):
    """A path the export cannot be written to, phrased for the dialog."""


def resolve_target(text: str, fmt: Format) -> Path:
    """The file to write for what was typed: ~ expanded, a folder gets the default name."""
    text = text.strip()
    if not text:
        raise ExportError("Type a file name.")
    path = Path(text).expanduser()
    if text.endswith(("/", os.sep)) and not path.is_dir():
        # "out/" names a folder: never write a file called "out" into the current folder instead
        raise ExportError(f"The folder {path} does not exist.")
    if path.is_dir():
        path = path / (DEFAULT_STEM + fmt.suffix)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ExportError(f"The folder {parent} does not exist.")
    if not os.access(parent, os.W_OK):
        raise ExportError(f"No permission to write in {parent}.")
    return path


class ExportScreen(ModalScreen[Path | None]):
    """Choose a format and a file; dismisses with the written path, or None if cancelled."""

    DEFAULT_CSS = """
    ExportScreen { align: center middle; }
    ExportScreen #dialog {
        width: 72;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $primary 80%;
        background: $surface;
        padding: 0 1;
    }
    ExportScreen #title { text-style: bold; width: 100%; margin-bottom: 0; }
    ExportScreen .hint { color: $text-muted; }
    /* RadioSet keeps its own border: a border that appears on focus would move the buttons
       between mouse down and up, and the click would be lost */
    ExportScreen RadioSet { width: 100%; height: auto; }
    ExportScreen #format-hint { height: 1; }
    ExportScreen #target { height: 1; color: $text-muted; text-overflow: ellipsis; text-wrap: nowrap; }
    ExportScreen #error { color: $error; height: auto; display: none; }
    ExportScreen #error.-shown { display: block; }
    ExportScreen #error.-warning { color: $warning; }
    ExportScreen #buttons { height: auto; align-horizontal: right; }
    ExportScreen #buttons Button { margin-left: 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(
        self,
        rows: Sequence[Row] | BoardSource,
        records: Sequence[ResultRecord] = (),
        default_dir: Path | None = None,
        fmt: str | None = None,
    ) -> None:
        """`rows` is either the rows to write, or a function that reads the board's rows and
        records at the moment Export is pressed. Without `default_dir` or `fmt` the dialog starts
        from the last export's folder and format (this session), else `./` and Markdown."""
        super().__init__()
        if callable(rows):
            self.source: BoardSource = rows
        else:
            fixed = (list(rows), list(records))
            self.source = lambda: fixed
        self.default_dir = default_dir
        self._fmt_asked = fmt
        self.format = FORMATS[0]
        self._confirm_overwrite: Path | None = None
        self._confirm_text = ""

    def _remembered(self) -> Remembered:
        return _REMEMBERED.setdefault(self.app, Remembered())

    def compose(self) -> ComposeResult:
        last = self._remembered()
        key = self._fmt_asked or last.fmt or "md"
        self.format = next((f for f in FORMATS if f.key == key), FORMATS[0])
        folder = self.default_dir if self.default_dir is not None else last.folder
        name = DEFAULT_STEM + self.format.suffix
        prefilled = str(folder / name) if folder is not None else f"./{name}"
        with Vertical(id="dialog"):
            # Kept to 19 rows at most, so that at 80x24 an error line is never scrolled away.
            yield Label(self._title(), id="title")
            with RadioSet(id="format"):
                for f in FORMATS:
                    yield RadioButton(f.label, value=f is self.format, id=f"fmt-{f.key}")
            yield Static(self.format.hint, id="format-hint", classes="hint")
            path_box = Input(prefilled, id="path", placeholder="where to write it")
            path_box.border_title = "File"
            yield path_box
            yield Static(self._target_line(prefilled), id="target", markup=False)
            yield Static("", id="error")
            with Horizontal(id="buttons"):
                yield Button("Export", variant="primary", id="export")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()
        # The board can change under the dialog (a run finishes): keep the count honest.
        self.set_interval(1.0, self._refresh_title)

    def _title(self) -> str:
        n = len(self.source()[0])
        return f"Export the leaderboard: {n} row{'s' if n != 1 else ''}, in the order shown"

    def _refresh_title(self) -> None:
        self.query_one("#title", Label).update(self._title())

    def _target_line(self, text: str) -> str:
        """Where the file goes, in full: a relative name lands in qtui's working folder."""
        text = text.strip()
        if not text:
            return ""
        path = Path(text).expanduser()
        if path.is_dir():
            path = path / (DEFAULT_STEM + self.format.suffix)
        return f"→ {path.absolute()} ({self.format.label})"

    # -- events ----------------------------------------------------------------------------
    @on(RadioSet.Changed, "#format")
    def _format_changed(self, event: RadioSet.Changed) -> None:
        key = (event.pressed.id or "").removeprefix("fmt-")
        self.format = next(f for f in FORMATS if f.key == key)
        self.query_one("#format-hint", Static).update(self.format.hint)
        box = self.query_one("#path", Input)
        stem, suffix = os.path.splitext(box.value)
        # The suffix follows the format, unless the user typed one of their own (or a folder).
        if stem and not box.value.endswith(("/", os.sep)) and (suffix in _SUFFIXES or not suffix):
            box.value = stem + self.format.suffix
        self.query_one("#target", Static).update(self._target_line(box.value))
        self._say("")

    @on(Input.Changed, "#path")
    def _path_changed(self, event: Input.Changed) -> None:
        # Only a real edit withdraws the overwrite confirmation: Input also reports its initial
        # value, and that message can arrive after the first press.
        if self._confirm_overwrite is not None and event.value.strip() != self._confirm_text:
            self._confirm_overwrite = None
        # The extension typed chooses the format, and the radio shows it.
        wanted = format_for(event.value, self.format)
        if wanted is not self.format:
            self.format = wanted
            self.query_one(f"#fmt-{wanted.key}", RadioButton).value = True
            self.query_one("#format-hint", Static).update(wanted.hint)
        self.query_one("#target", Static).update(self._target_line(event.value))

    @on(Input.Submitted, "#path")
    @on(Button.Pressed, "#export")
    def _export_pressed(self) -> None:
        self.run_export()

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    # -- the work --------------------------------------------------------------------------
    def run_export(self) -> None:
        """Write the chosen format to the typed path; on success dismiss with the path."""
        typed = self.query_one("#path", Input).value
        # The name's extension, not a radio change still in flight, decides.
        fmt = self.format = format_for(typed, self.format)
        try:
            path = resolve_target(typed, fmt).absolute()
        except ExportError as exc:
            self._say(str(exc))
            return
        if path.exists() and self._confirm_overwrite != path:
            self._confirm_overwrite = path
            self._confirm_text = self.query_one("#path", Input).value.strip()
            self._say(f"{path} exists. Press Export again to replace it.", warning=True)
            return
        if fmt.key == "screenshot":
            self._shoot(path)
            return
        # What the board shows now, not when the dialog opened; the records of those rows only
        # (a Markdown footer counts the runs it describes: none that is not in the table).
        rows, records = self.source()
        ids = {r.id for r in rows}
        try:
            text = export(fmt.key, rows, [r for r in records if r.id in ids])
            atomic_write_text(path, text)
        except OSError as exc:
            self._say(f"Cannot write {path}: {exc.strerror or exc}")
            return
        except ValueError as exc:
            self._say(f"Cannot export: {exc}")
            return
        self._done(path, f"{fmt.label}: {len(rows)} rows")

    def _shoot(self, path: Path) -> None:
        # Probe first, so a path that cannot be written is reported here, in the open dialog.
        existed = path.exists()
        try:
            with open(path, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            self._say(f"Cannot write {path}: {exc.strerror or exc}")
            return
        finally:
            if not existed and path.exists() and path.stat().st_size == 0:
                path.unlink()
        # Inline styles, not a CSS class: they take effect at once, where a class waits for
        # the next stylesheet pass (on a loaded machine that came after the shot).
        self.styles.background = "transparent"
        self.query_one("#dialog").display = False
        self.call_after_refresh(self._shoot_now, path, _SHOT_TRIES)

    def _shoot_now(self, path: Path, tries: int) -> None:
        # The dialog must be out of the compositor's map before the shot; a refresh can still
        # be pending on a slow machine, so wait for it a few more times.
        if self.query_one("#dialog").region and tries > 0:
            self.call_after_refresh(self._shoot_now, path, tries - 1)
            return
        try:
            self.app.save_screenshot(filename=path.name, path=str(path.parent))
        except OSError as exc:
            self.styles.clear_rule("background")
            self.query_one("#dialog").display = True
            self._say(f"Cannot write {path}: {exc.strerror or exc}")
            return
        self._done(path, "screenshot")

    def _done(self, path: Path, what: str) -> None:
        last = self._remembered()
        last.folder, last.fmt = path.parent, self.format.key
        self.app.notify(f"Exported {what} to {path}", title="Export")
        self.dismiss(path)

    def _say(self, message: str, warning: bool = False) -> None:
        box = self.query_one("#error", Static)
        box.set_class(warning, "-warning")
        box.set_class(bool(message), "-shown")
        box.update(message)

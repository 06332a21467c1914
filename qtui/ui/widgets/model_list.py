"""The model list: every GGUF found under the model folders, the base and the variants to run.

Scanning reads only headers but can still take seconds on a slow disk full of split sets, so it
runs in a thread worker that reports each file; the table fills when the scan ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Static
from textual.worker import get_current_worker

from qtui.core.fsutil import human_bytes
from qtui.core.gguf.discovery import ScanResult, Skipped, scan
from qtui.core.gguf.model_info import ModelInfo
from qtui.core.gguf.sameness import info_mix_key, same_tensors
from qtui.core.results.measured import measured_files
from qtui.core.results.store import ResultRecord
from qtui.ui.messages import ScanFinished, ScanProgress
from qtui.ui.widgets.rowtable import RowTable

_FIXED_WIDTH = 3 + 9 + 10 + 6 + 5 + 7 + 4 + 2 * 8 + 2  # every column but the file, with padding and scrollbar
# What the marks mean, under the table: the help (?) is not where a newcomer looks for it.
LEGEND = "B base · ✓ chosen variant · b could be the base (F32/F16/BF16): press b on it"
DONE_LEGEND = "Done: ✓ measured on this setup · ≡ same tensors as another file (i: which)"
"""Added to the legend (a second line at 80 columns) only where a file carries one of these marks."""


def middle_ellipsis(text: str, width: int) -> str:
    """Shorten in the middle: the quant label sits at the end of most GGUF names."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def display_name(model: ModelInfo, roots: list[Path]) -> str:
    name = model.path.name
    for root in roots:
        try:
            name = str(model.path.relative_to(root))
            break
        except ValueError:
            continue
    if len(model.shards) > 1:
        name += f" ({len(model.shards)} parts)"
    return name


class FilterInput(Input):
    """The filter box: enter keeps the filter, escape clears it."""

    BINDINGS = [Binding("escape", "clear", "Clear filter")]

    class Cleared(Message):
        pass

    def action_clear(self) -> None:
        self.post_message(self.Cleared())


@dataclass
class Choice:
    base: Path | None
    variants: list[Path]


class ModelList(Vertical):
    """Model table + filter + status line. Keys act on the row under the cursor."""

    BINDINGS = [
        Binding("b", "choose_base", "Base", tooltip="Use the model under the cursor as the base"),
        Binding("space", "toggle_variant", "Toggle",
                tooltip="Add or remove the model under the cursor as a variant, then move down a row"),
        Binding("a", "select_all", "All", tooltip="Choose every shown model (except the base) as a variant"),
        Binding("n", "select_none", "None", tooltip="Choose no variants", show=False),
        Binding("slash", "filter", "Filter", tooltip="Filter the model list by name, quant or folder"),
        Binding("i", "details", "Info", tooltip="Tensor-type breakdown of the model under the cursor (also enter)",
                show=False),
        # Two files of one label can differ in every group of tensors: m marks one, d diffs another with it.
        Binding("m", "mark_diff", "Mark", tooltip="Mark the model under the cursor to diff its tensor mix with another (d)",
                show=False),
        Binding("d", "diff", "Diff", tooltip="Tensor-mix diff of the marked model (m) and the one under the cursor",
                show=False),
        Binding("exclamation_mark", "skipped", "Skipped", tooltip="Files that were skipped, and why", show=False),
        Binding("ctrl+r", "rescan", "Rescan", tooltip="Scan the model folders again", show=False),
        # Esc in the filter box clears it too (FilterInput); this is for a filter kept with enter.
        Binding("escape", "clear_filter", "Clear filter", tooltip="Clear the filter kept with enter", show=False),
    ]

    DEFAULT_CSS = """
    ModelList > #models-legend {
        height: auto;
        max-height: 2;
        color: $text-muted;
        padding: 0 1;
        text-overflow: ellipsis;
    }
    ModelList.-empty > #models-legend { display: none; }
    """

    class Changed(Message):
        """The base or the set of variants changed."""

    class DetailsRequested(Message):
        def __init__(self, model: ModelInfo) -> None:
            super().__init__()
            self.model = model

    class DiffRequested(Message):
        """Show the tensor-mix diff of two models (a: the marked one)."""

        def __init__(self, a: ModelInfo, b: ModelInfo) -> None:
            super().__init__()
            self.a = a
            self.b = b

    class SkippedRequested(Message):
        def __init__(self, skipped: list[Skipped]) -> None:
            super().__init__()
            self.skipped = skipped

    def __init__(self, dirs: list[Path], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.dirs = dirs
        self.models: list[ModelInfo] = []
        self.skipped: list[Skipped] = []
        self.base: Path | None = None
        self.chosen: set[Path] = set()
        self.diff_mark: Path | None = None  # marked with m, for the tensor-mix diff (d)
        self.filter_text = ""
        self.scanning = False
        self._scan_count = 0
        self._file_width = 0
        self.twins: dict[Path, tuple[str, ...]] = {}
        """Each file whose tensor-type mix and sizes equal another's: those others' names."""
        self.measured: set[Path] = set()
        self._records: list[ResultRecord] = []
        self._setup: tuple[int | None, int | None, str | None] = (None, None, None)

    def compose(self) -> ComposeResult:
        yield FilterInput(placeholder="filter: words to match in name, quant, folder (enter: keep, esc: clear)",
                          id="model-filter", compact=True)
        table: DataTable[str | Text] = RowTable(id="models", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static(id="models-empty")
        yield Static(id="models-status")
        yield Static(Text(LEGEND), id="models-legend")

    def on_mount(self) -> None:
        self.query_one("#model-filter", Input).display = False
        self.rescan()

    # -- scanning --------------------------------------------------------------------------
    def rescan(self) -> None:
        self.scanning = True
        self._scan_count = 0
        self._update_status()
        self._scan(list(self.dirs))

    @work(thread=True, exclusive=True, group="scan", exit_on_error=False, description="scanning models")
    def _scan(self, dirs: list[Path]) -> None:
        worker = get_current_worker()
        count = 0

        def progress(path: Path) -> None:
            nonlocal count
            count += 1
            if not worker.is_cancelled:
                self.post_message(ScanProgress(count, path))

        result = scan(dirs, progress=progress)
        if not worker.is_cancelled:
            self.post_message(ScanFinished(result, dirs))

    def on_scan_progress(self, msg: ScanProgress) -> None:
        self._scan_count = msg.count
        self._update_status(f"scanning… {msg.count} file(s), {msg.path.name}")

    def on_scan_finished(self, msg: ScanFinished) -> None:
        self.set_scan(msg.result)

    def set_scan(self, result: ScanResult) -> None:
        self.scanning = False
        self.models = result.models
        self.skipped = result.skipped
        self.twins = same_tensors((m.path, str(m.path), m.path.name, info_mix_key(m)) for m in self.models)
        self._update_measured()
        paths = {m.path for m in self.models}
        self.chosen &= paths
        if self.base not in paths:
            self.base = None
        candidates = [m for m in self.models if m.is_base_candidate]
        if self.base is None and len(candidates) == 1:
            self.base = candidates[0].path  # the only sensible base: save the user a key press
            self.chosen.discard(self.base)
        self._rebuild()
        self.post_message(self.Changed())

    # -- table -----------------------------------------------------------------------------
    @property
    def table(self) -> DataTable[str | Text]:
        return self.query_one("#models", DataTable)

    def visible_models(self) -> list[ModelInfo]:
        """The models the filter lets through, in table order. (Not `visible`: that is Textual's
        DOMNode.visible, which children read through `parent.visible`.)"""
        terms = self.filter_text.lower().split()
        if not terms:
            return list(self.models)
        out = []
        for m in self.models:
            hay = " ".join([display_name(m, self.dirs), m.quant, m.arch or "", m.quantized_by or ""]).lower()
            if all(t in hay for t in terms):
                out.append(m)
        return out

    def _mark(self, m: ModelInfo) -> Text:
        if m.path == self.base:
            return Text("B✓" if m.path in self.chosen else "B", style="bold")
        if m.path in self.chosen:
            return Text("✓", style="bold")
        return Text("b" if m.is_base_candidate else "", style="dim")

    def set_records(self, records: list[ResultRecord], ctx: int | None, chunks: int | None,
                    corpus: str | None) -> None:
        """The results at hand and the setup a run would use: marks the files already measured."""
        self._records, self._setup = records, (ctx, chunks, corpus)
        if self._update_measured() and self.is_mounted and self.table.columns:
            self._refresh_marks(changed=False)

    def _update_measured(self) -> bool:
        base = next((m for m in self.models if m.path == self.base), None)
        measured = measured_files(self._records, self.models, base, *self._setup)
        changed, self.measured = measured != self.measured, measured
        return changed

    def _done(self, m: ModelInfo) -> Text:
        return Text(("✓" if m.path in self.measured else "") + ("≡" if m.path in self.twins else ""))

    def _rebuild(self) -> None:
        table = self.table
        current = self.current_model()
        width = max(16, (self.size.width or 80) - _FIXED_WIDTH)
        with self.app.batch_update():
            if width != self._file_width or not table.columns:
                self._file_width = width
                table.clear(columns=True)
                table.add_column("", key="mark", width=2)
                table.add_column("File", key="file", width=width)
                for title, key in (("Quant", "quant"), ("Size", "size"), ("BPW", "bpw"), ("≥8bit", "hi"),
                                   ("Vocab", "vocab")):
                    table.add_column(title, key=key)
                table.add_column("Done", key="done", width=4)
            else:
                table.clear()
            for m in self.visible_models():
                table.add_row(
                    self._mark(m),
                    middle_ellipsis(display_name(m, self.dirs), width),
                    m.quant,
                    Text(human_bytes(m.size_bytes), justify="right"),
                    Text(f"{m.bpw:.2f}" if m.bpw else "?", justify="right"),
                    Text(f"{100 * m.share_at_least_bits(8):.0f}%", justify="right"),
                    Text(str(m.n_vocab) if m.n_vocab else "?", justify="right"),
                    self._done(m),
                    key=str(m.path),
                )
            if current is not None and str(current.path) in table.rows:
                table.move_cursor(row=table.get_row_index(str(current.path)), animate=False)
        self._update_status()

    def on_resize(self) -> None:
        if self.models and max(16, self.size.width - _FIXED_WIDTH) != self._file_width:
            self._rebuild()

    def _refresh_marks(self, changed: bool = True) -> None:
        table = self.table
        self._update_measured()  # the base may have changed: so has the setup
        for m in self.visible_models():
            table.update_cell(str(m.path), "mark", self._mark(m))
            table.update_cell(str(m.path), "done", self._done(m))
        self._update_status()
        if changed:
            self.post_message(self.Changed())

    def _update_status(self, scanning: str | None = None) -> None:
        parts: list[str] = []
        if self.scanning:
            parts.append(scanning or "scanning…")
        else:
            shown = len(self.visible_models())
            parts.append(f"{len(self.models)} model(s)" if shown == len(self.models)
                         else f"{shown} of {len(self.models)} shown")

        base = next((m for m in self.models if m.path == self.base), None)
        parts.append(f"base: {base.path.name}" if base else "base: none (b)")
        parts.append(f"{len(self.chosen)} chosen")
        if self.measured:
            parts.append(f"{len(self.measured)} measured (✓)")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped (!)")
        if self.diff_mark is not None:
            parts.append(f"marked {self.diff_mark.name}: d on another diffs")
        if self.filter_text:
            parts.append(f"filter: {self.filter_text}")
        self.query_one("#models-status", Static).update(Text(" · ".join(parts)))
        marked = bool(self.measured or self.twins)
        self.query_one("#models-legend", Static).update(Text(f"{LEGEND} · {DONE_LEGEND}" if marked else LEGEND))
        empty = not self.scanning and not self.models
        # The table stays (header only) and keeps the focus, so ctrl+r and the other keys still work.
        self.set_class(empty, "-empty")
        box = self.query_one("#models-empty", Static)
        if empty:
            where = ", ".join(str(d) for d in self.dirs) or "(no folder given)"
            box.update(Text.assemble(
                ("No GGUF models found", "bold"), f" under {where}.\n\n",
                "Start qtui in the folder that holds your models, or name it: ", ("qtui -m ~/models", "bold"),
                ".\nMore folders can be added in Settings (, or f2); ctrl+r scans again.\n\n",
                "No model of your own? ", ("qtui demo", "bold"),
                " runs a whole showdown on Gemma 3 270M, CPU only.",
            ))

    def current_model(self) -> ModelInfo | None:
        table = self.table
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((m for m in self.models if str(m.path) == key), None)

    def choose(self, base: Path | None, variants: list[Path]) -> None:
        self.base = base
        self.chosen = set(variants) - {base}
        self._refresh_marks()

    def choice(self) -> Choice:
        return Choice(self.base, [m.path for m in self.models if m.path in self.chosen])

    # -- actions ---------------------------------------------------------------------------
    def action_choose_base(self) -> None:
        m = self.current_model()
        if m is None:
            return
        self.base = m.path
        self.chosen.discard(m.path)
        if not m.is_base_candidate:
            self.notify(f"{m.path.name} is {m.quant}, not F32/F16/BF16: KLD will be measured against a quantized model.",
                        severity="warning")
        self._refresh_marks()

    def action_toggle_variant(self) -> None:
        # Not action_toggle: DOMNode.action_toggle(attribute_name) is Textual's own action.
        m = self.current_model()
        if m is None:
            return
        self.chosen ^= {m.path}
        self._refresh_marks()
        table = self.table
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)  # toggling down a list is the common case

    def action_select_all(self) -> None:
        self.chosen |= {m.path for m in self.visible_models() if m.path != self.base}
        self._refresh_marks()

    def action_select_none(self) -> None:
        self.chosen.clear()
        self._refresh_marks()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Without a filter esc is not this list's key: it goes on to whatever else binds it.
        return bool(self.filter_text) if action == "clear_filter" else True

    def action_clear_filter(self) -> None:
        self._close_filter(keep=False)

    def action_filter(self) -> None:
        box = self.query_one("#model-filter", Input)
        box.display = True
        box.focus()

    def action_details(self) -> None:
        m = self.current_model()
        if m is not None:
            self.post_message(self.DetailsRequested(m))

    def action_mark_diff(self) -> None:
        m = self.current_model()
        if m is None:
            return
        # m again on the marked file takes the mark away
        self.diff_mark = None if self.diff_mark == m.path else m.path
        self._update_status()

    def action_diff(self) -> None:
        m = self.current_model()
        if m is None:
            return
        marked = next((x for x in self.models if x.path == self.diff_mark), None)
        if marked is None:
            self.notify("Mark a model with m first, then press d on the one to compare it with.")
        elif marked.path == m.path:
            self.notify("This is the marked model: press d on another one.")
        else:
            self.post_message(self.DiffRequested(marked, m))

    def action_skipped(self) -> None:
        self.post_message(self.SkippedRequested(list(self.skipped)))

    def action_rescan(self) -> None:
        self.rescan()

    @on(DataTable.RowSelected, "#models")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_details()

    @on(Input.Changed, "#model-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self._rebuild()

    @on(Input.Submitted, "#model-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self._close_filter(keep=True)

    @on(FilterInput.Cleared)
    def _filter_cleared(self) -> None:
        self._close_filter(keep=False)

    def _close_filter(self, keep: bool) -> None:
        box = self.query_one("#model-filter", Input)
        if not keep:
            box.value = ""
            self.filter_text = ""
            self._rebuild()
        if not self.filter_text:
            box.display = False
        self.table.focus()

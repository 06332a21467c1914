"""The leaderboard: every finished KLD run as a row, sortable by any column, updated in place.

Rows come from qtui.core.results.leaderboard (build_rows/sort_rows), the same code the CLI and the
exports rank with, so the screen, `qtui results` and an exported table always agree. The
score and the Pareto flag are computed over the rows shown: they are relative to this set.
One setup is shown at a time (results/setups.py; the default is the one with the most
results), and its failed or cancelled runs sit below a "not ranked" line, outside the ranking.

The columns fit the width: Model, By and Quant (which file a row is) and Mean KLD ± are always
shown, Model, By and Quant frozen at the left; the others are given up least useful first, in
the order `qtui results` gives them up (results/fit.py), and `i` shows every field of a row.
A published sweep's own score gets a column of its own where a row has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import DataTable, Static

from qtui.core import formats
from qtui.core.results.annotations import marks_legend, with_published_column
from qtui.core.results.fit import ESSENTIAL, fit_columns
from qtui.core.results.floor import noise_floor
from qtui.core.results.leaderboard import (
    COLUMN_KEYS,
    COLUMNS,
    PUBLISHED_SCORE,
    SPEED_COLUMNS,
    SPEED_KEYS,
    Column,
    Row,
    build_rows,
    format_cell,
    has_speed,
    sort_rows,
)
from qtui.core.results.measured import RowMarks, row_marks
from qtui.core.results.setups import SetupGroup, group_setups
from qtui.core.results.store import ResultRecord
from qtui.ui.widgets.rowtable import RowTable

ASC, DESC = "▲", "▼"
# Columns where bigger is better start descending, so the first press shows the best first.
DESCENDING_FIRST = frozenset({"same_top", "pareto", *SPEED_KEYS})
# The key of the line between the ranking and the failed or cancelled runs shown below it.
SEPARATOR = "\x00not-ranked"
# Never given up for width: which file a row is, and what it is ranked by.
ALWAYS = (*ESSENTIAL, "kld", "kld_err")
SORT_KEYS = (*COLUMN_KEYS, PUBLISHED_SCORE.key, *SPEED_KEYS)


def natural_reverse(key: str) -> bool:
    return key in DESCENDING_FIRST


class _IdText(Text):
    """A cell that knows its row: DataTable.sort's key function sees cell values only, and
    this is how a precomputed order (unknowns last both ways) is handed to it."""

    row_id: str = ""


class _Table(RowTable[Text]):
    """The DataTable inside the leaderboard; shows a column's help when the header is hovered."""

    def __init__(self, help_by_key: dict[str, str], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._help_by_key = help_by_key

    def on_mouse_move(self, event: events.MouseMove) -> None:
        meta = event.style.meta
        if meta.get("row") == -1 and isinstance(meta.get("column"), int):
            try:
                column = self.ordered_columns[meta["column"]]
            except IndexError:
                return
            self.tooltip = self._help_by_key.get(str(column.key.value), None)
        elif self.tooltip is not None:
            self.tooltip = None


class Leaderboard(Widget, can_focus=False):
    """A sortable table of result rows; the focused DataTable inside takes the keys."""

    DEFAULT_CSS = """
    Leaderboard {
        height: 1fr;
        layout: vertical;
    }
    Leaderboard > DataTable {
        height: 1fr;
    }
    Leaderboard > .leaderboard--caption {
        height: 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        color: $text-muted;
        padding: 0 1;
    }
    Leaderboard.-no-caption > .leaderboard--caption {
        display: none;
    }
    Leaderboard > .leaderboard--setup {
        height: auto;
        max-height: 2;
        text-style: bold;
        padding: 0 1;
        display: none;
    }
    Leaderboard.-setups > .leaderboard--setup {
        display: block;
    }
    Leaderboard .leaderboard--failed { color: $error; text-style: bold; }
    Leaderboard .leaderboard--pareto { color: $success; text-style: bold; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"leaderboard--failed", "leaderboard--pareto"}

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "next_sort", "Sort", tooltip="Sort by the next column"),
        Binding("O", "reverse_sort", "Reverse", tooltip="Reverse the sort order"),
        Binding("greater_than_sign", "next_sort", "Next column", show=False),
        Binding("less_than_sign", "prev_sort", "Previous column", show=False),
    ]

    sort_key: reactive[str] = reactive("kld")
    sort_reverse: reactive[bool] = reactive(False)

    @dataclass
    class Selected(Message):
        """The cursor moved to another row (None: the table is empty)."""

        row_id: str | None

    @dataclass
    class SetupChanged(Message):
        """Another setup is shown (the rows are all new)."""

        setup_id: str | None

    def __init__(
        self,
        *,
        include_failed: bool = False,
        columns: Sequence[str] | None = None,
        show_caption: bool = True,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - Textual's name
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        keys = list(columns) if columns is not None else list(COLUMN_KEYS)
        unknown = [k for k in keys if k not in COLUMN_KEYS]
        if unknown:
            raise ValueError(f"unknown leaderboard column(s) {unknown}; choose from {', '.join(COLUMN_KEYS)}")
        if "model" not in keys:
            keys.insert(0, "model")  # the row's name carries its state word; it cannot be hidden
        self.include_failed = include_failed
        self._columns: list[Column] = [c for k in keys for c in COLUMNS if c.key == k]
        """the columns asked for; those that fit the width are shown (_shown_columns)"""
        self._published_column = columns is None
        """add the published score's column where a row has one (not to a chosen set of columns)"""
        self._shown_columns: list[Column] = []
        self._records: list[ResultRecord] = []
        self._groups: list[SetupGroup] = []
        self._setup_id: str | None = None
        """the setup the user switched to; None: the default (the one with the most results)"""
        self._rows: list[Row] = []
        self._marks: dict[str, RowMarks] = {}
        self._shown_marks: dict[str, str] = {}
        self._shown: dict[str, Row] = {}
        self._separator = False
        self._selected_id: str | None = None
        self._pending = False
        if not show_caption:
            self.add_class("-no-caption")

    # -- public API ------------------------------------------------------------------------
    @property
    def rows(self) -> list[Row]:
        """The rows in the order shown."""
        return list(self._rows)

    @property
    def selected_id(self) -> str | None:
        return self._selected_id

    @property
    def table(self) -> DataTable[Text]:
        return self.query_one(_Table)

    @property
    def marks(self) -> dict[str, RowMarks]:
        """By row id: rows near the base by construction (≈) or with another row's tensors (≡)."""
        return dict(self._marks)

    @property
    def floor(self) -> float | None:
        """The noise floor of the setup shown (None: not measured): a line, never a row."""
        return noise_floor(self._records)

    @property
    def setups(self) -> list[SetupGroup]:
        """Every setup the records span, the default first."""
        return list(self._groups)

    @property
    def setup(self) -> SetupGroup | None:
        """The setup shown: one at a time, since KLD of different setups is not comparable."""
        return next((g for g in self._groups if g.id == self._setup_id), self._groups[0] if self._groups else None)

    def set_records(self, records: Sequence[ResultRecord]) -> None:
        """Show these records (replacing the previous set), keeping the setup and the cursor's row."""
        self._groups = group_setups(records)
        self._show_setup()

    def next_setup(self, step: int = 1) -> bool:
        """Show the next (step=-1: previous) setup; False when there is no other one."""
        current = self.setup
        if current is None or len(self._groups) < 2:
            return False
        self._setup_id = self._groups[(self._groups.index(current) + step) % len(self._groups)].id
        self._show_setup()
        self.post_message(self.SetupChanged(self._setup_id))
        return True

    def _show_setup(self) -> None:
        group = self.setup
        self._records = list(group.records) if group is not None else []
        # the setup's files' speeds (llama-bench) join their rows: pp t/s and tg t/s
        rows = build_rows([*self._records, *(group.speed if group is not None else ())], include_failed=self.include_failed)
        self._marks = row_marks(self._records)
        self._rows = _ranked_first(sort_rows(rows, self.sort_key, self.sort_reverse))
        if not self.is_mounted:
            self._pending = True
            return
        self._sync()

    def sort_by(self, key: str, reverse: bool | None = None) -> None:
        """Sort by a column key; reverse=None picks the column's natural direction."""
        if key not in SORT_KEYS:
            raise ValueError(f"unknown column {key!r}; choose one of: {', '.join(COLUMN_KEYS)}")
        # set both before one resort, instead of letting each watcher resort in turn
        self.set_reactive(Leaderboard.sort_key, key)
        self.set_reactive(Leaderboard.sort_reverse, natural_reverse(key) if reverse is None else reverse)
        self._resort()

    def focus(self, scroll_visible: bool = True) -> Leaderboard:
        """Focus the table inside: it is what takes the cursor keys."""
        if self.is_mounted:
            self.table.focus(scroll_visible)
        return self

    def select(self, row_id: str) -> bool:
        """Move the cursor to a row (e.g. one clicked in the scatter plot)."""
        if not self.is_mounted or row_id not in self._shown:
            return False
        table = self.table
        table.move_cursor(row=table.get_row_index(row_id))
        self._check_selection()
        return True

    # -- reactives and actions -------------------------------------------------------------
    def validate_sort_key(self, key: str) -> str:
        if key not in SORT_KEYS:
            raise ValueError(f"unknown column {key!r}; choose one of: {', '.join(COLUMN_KEYS)}")
        return key

    def watch_sort_key(self) -> None:
        self._resort()

    def watch_sort_reverse(self) -> None:
        self._resort()

    def action_next_sort(self) -> None:
        self._step_sort(+1)

    def action_prev_sort(self) -> None:
        self._step_sort(-1)

    def action_reverse_sort(self) -> None:
        self.sort_by(self.sort_key, not self.sort_reverse)

    def _step_sort(self, step: int) -> None:
        keys = [c.key for c in self._shown_columns or self._columns]
        i = keys.index(self.sort_key) if self.sort_key in keys else -1
        self.sort_by(keys[(i + step) % len(keys)])

    # -- composition and events ------------------------------------------------------------
    def compose(self) -> ComposeResult:
        table = _Table(
            {c.key: f"{c.title}: {c.help}" for c in (*COLUMNS, PUBLISHED_SCORE, *SPEED_COLUMNS)},
            cursor_type="row",
            zebra_stripes=True,
        )
        yield Static("", classes="leaderboard--setup")
        yield table
        yield Static("", classes="leaderboard--caption")

    def on_mount(self) -> None:
        # Cells hold Rich styles taken from the theme; rebuild them when the theme changes.
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.call_after_refresh(self._restyle))
        self._fit_columns()
        if self._pending:
            self._pending = False
            self._sync()
        else:
            self._update_caption()

    def on_resize(self) -> None:
        if self._fit_columns():
            self._sync()

    def _candidate_columns(self) -> list[Column]:
        cols = list(self._columns)
        if not self._published_column:
            return cols  # a chosen set of columns
        if has_speed(self._rows):  # after BPW, as in `qtui results` and the exports
            at = next((i + 1 for i, c in enumerate(cols) if c.key == "bpw"), len(cols))
            cols[at:at] = SPEED_COLUMNS
        return with_published_column(cols, self._rows)

    def _fit_columns(self) -> bool:
        """Show the columns that fit the width (all of them before the first layout); True when
        they changed, the table then being empty of rows (_sync fills it again)."""
        table = self.table
        candidates = self._candidate_columns()
        width = self.size.width
        if width:
            # room for a vertical scrollbar whenever the rows may overflow the table
            bar = table.styles.scrollbar_size_vertical if len(self._rows) + 2 > table.size.height else 0
            wanted = fit_columns(self._rows, width - bar, columns=candidates, keep=ALWAYS, model_max=None, title_spare=1)
        else:
            wanted = candidates
        if [c.key for c in wanted] == [c.key for c in self._shown_columns]:
            return False
        self._shown_columns = wanted
        table.clear(columns=True)
        self._shown = {}
        self._separator = False
        for col in wanted:
            # One spare cell after each title holds the ▲/▼, so the indicator never resizes a column.
            table.add_column(Text(col.title + " ", justify=formats.align(col.key)), key=col.key)
        # Which file a row is stays on screen when the table is scrolled sideways.
        table.fixed_columns = sum(1 for c in wanted[:len(ESSENTIAL)] if c.key in ESSENTIAL)
        self._update_labels()
        return True

    @on(DataTable.HeaderSelected)
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        key = str(event.column_key.value)
        if key == self.sort_key:
            self.sort_by(key, not self.sort_reverse)
        else:
            self.sort_by(key)

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._check_selection()

    # -- internals -------------------------------------------------------------------------
    def _styles(self) -> tuple[Style, Style]:
        return (self.get_component_rich_style("leaderboard--failed", partial=True),
                self.get_component_rich_style("leaderboard--pareto", partial=True))

    def _cells(self, row: Row, styles: tuple[Style, Style]) -> list[Text]:
        failed, pareto = styles
        cells: list[Text] = []
        for col in self._shown_columns:
            text = format_cell(col, row)
            if col.key == "model":
                named = _IdText(justify="left", no_wrap=True)
                if row.status != "done":
                    # A word, not a colour: readable with NO_COLOR and by screen readers.
                    named.append(row.status.upper(), failed)
                    named.append(" ")
                named.append(text, Style(dim=True) if row.status != "done" else Style())
                mark = self._marks.get(row.id)
                if mark is not None:
                    named.append(f" {mark.symbol}", Style(bold=True))
                named.row_id = row.id
                cells.append(named)
                continue
            cell = Text(text, justify=formats.align(col.key), no_wrap=True)
            if col.key == "pareto" and row.pareto:
                cell.stylize(pareto)
            cells.append(cell)
        return cells

    def _sync(self) -> None:
        """Bring the table to self._rows: update changed rows, add new, drop gone, reorder."""
        table = self.table
        wanted = {r.id: r for r in self._rows}
        styles = self._styles()
        with self.app.batch_update():
            self._fit_columns()  # new rows may be wider, or bring a published score
            for gone in [rid for rid in self._shown if rid not in wanted]:
                table.remove_row(gone)
                del self._shown[gone]
            for row in self._rows:
                old = self._shown.get(row.id)
                mark = self._marks[row.id].symbol if row.id in self._marks else ""
                if old is None:
                    table.add_row(*self._cells(row, styles), key=row.id)
                elif old != row or self._shown_marks.get(row.id) != mark:  # a twin's result came in
                    for col, cell in zip(self._shown_columns, self._cells(row, styles)):
                        table.update_cell(row.id, col.key, cell, update_width=True)
                self._shown[row.id] = row
                self._shown_marks[row.id] = mark
            self._sync_separator()
            self._apply_order()
        self._update_caption()

    def _restyle(self) -> None:
        """Theme changed: cells carry Rich styles, so rebuild them with the new colours."""
        if not self.is_mounted:
            return
        table = self.table
        styles = self._styles()
        with self.app.batch_update():
            for row in self._rows:
                for col, cell in zip(self._shown_columns, self._cells(row, styles)):
                    table.update_cell(row.id, col.key, cell)

    def _sync_separator(self) -> None:
        """The line above the failed and cancelled runs: they are shown, never ranked."""
        table = self.table
        wanted = any(r.status != "done" for r in self._rows)
        if wanted and not self._separator:
            first = _IdText("── not ranked ──", style=Style(dim=True), no_wrap=True)
            first.row_id = SEPARATOR
            table.add_row(first, *[Text("") for _ in self._shown_columns[1:]], key=SEPARATOR)
        elif self._separator and not wanted:
            table.remove_row(SEPARATOR)
        self._separator = wanted

    def _resort(self) -> None:
        self._rows = _ranked_first(sort_rows(self._rows, self.sort_key, self.sort_reverse))
        if not self.is_mounted:
            return
        with self.app.batch_update():
            self._update_labels()
            self._apply_order()
            self._reveal_column(self.sort_key)
        self._update_caption()

    def _apply_order(self) -> None:
        table = self.table
        keep = self._selected_id
        order = [r.id for r in self._rows]
        if self._separator:
            order.insert(sum(1 for r in self._rows if r.status == "done"), SEPARATOR)
        rank = {rid: i for i, rid in enumerate(order)}
        # Not DataTable.sort on the column itself: it cannot keep unknown values last in
        # both directions, and it compares formatted text. The order is sort_rows'.
        table.sort("model", key=lambda cell: rank[cell.row_id])
        if keep is not None and keep in rank:
            table.move_cursor(row=rank[keep], animate=False)
        self._check_selection()

    def _check_selection(self) -> None:
        """Post Selected when the row under the cursor is not the one last announced."""
        current = self._current_id()
        if current != self._selected_id:
            self._selected_id = current
            self.post_message(self.Selected(current))

    def _current_id(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        row = min(max(table.cursor_row, 0), table.row_count - 1)
        key = str(table.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value)
        return None if key == SEPARATOR else key

    def _update_labels(self) -> None:
        table = self.table
        for col in self._shown_columns:
            column = table.columns.get(col.key)  # type: ignore[call-overload]
            if column is None:
                continue
            mark = (DESC if self.sort_reverse else ASC) if col.key == self.sort_key else " "
            column.label = Text(col.title + mark, justify=column.label.justify, style="bold" if mark != " " else "")
        # Labels are cached with the rows; the sort in _apply_order bumps the cache.

    def _reveal_column(self, key: str) -> None:
        """Scroll sideways so the sort column is on screen (at 80 columns most are not)."""
        table = self.table
        columns = table.ordered_columns
        fixed = sum(c.get_render_width(table) for c in columns[: table.fixed_columns])
        starts: list[int] = []  # scroll offsets that put a column's left edge at the fixed part
        x = 0
        for i, column in enumerate(columns):
            if i < table.fixed_columns:
                continue
            width = column.get_render_width(table)
            starts.append(x)
            if column.key == key:
                visible = table.scrollable_content_region.width - fixed
                if x < table.scroll_x:
                    table.scroll_to(x=x, animate=False)
                elif x + width > table.scroll_x + visible:
                    # the first column boundary that brings the whole column in; never half a column
                    target = next((s for s in starts if x + width - s <= visible), x)
                    table.scroll_to(x=target, animate=False)
                return
            x += width

    def _update_caption(self) -> None:
        col = next((c for c in (*COLUMNS, PUBLISHED_SCORE, *SPEED_COLUMNS) if c.key == self.sort_key), None)
        if col is None:
            return
        arrow = DESC if self.sort_reverse else ASC
        n = len(self._rows)
        count = "no results yet" if n == 0 else f"{n} row{'s' if n != 1 else ''}"
        apart = sum(1 for r in self._rows if r.status != "done")
        if apart:
            count += f" ({apart} not ranked: failed or cancelled)"
        sizeless = sum(1 for r in self._rows if r.status == "done" and r.size_gib is None)
        if sizeless:
            # A published sweep often gives sizes for few rows: say why the plot and the score skip them.
            count += f" · {sizeless} row{'s' if sizeless != 1 else ''} without a size: not plotted or scored"
        for phrase in marks_legend(self._marks, {r.id for r in self._rows}):
            count += f" · {phrase}"
        floor = self.floor
        if floor is not None:
            count += f" · noise floor {floor:.6f}"
        hidden = len(self._candidate_columns()) - len(self._shown_columns) if self._shown_columns else 0
        if hidden:
            count += f" · {hidden} column{'s' if hidden != 1 else ''} hidden at this width (i: all fields)"
        ranked = [r for r in self._rows if r.status == "done"]
        if col.key == "kld" and ranked and all(r.position is not None for r in ranked):
            # Screened variants ran different chunks: their own means are not comparable, and
            # the rows follow the paired order (as core.results.leaderboard sorts them).
            text = (f"{count} · sorted by paired rank {arrow} (screened variants ran different chunks: each pair "
                    "compared on the chunks both ran) · o/O: sort")
        else:
            text = f"{count} · sorted by {col.title} {arrow} ({col.help}) · o/O: sort"
        try:
            self.query_one(".leaderboard--caption", Static).update(Text(text))
            self._update_setup_line()
        except Exception:  # noqa: BLE001 - before compose
            pass

    def _update_setup_line(self) -> None:
        """Which setup is ranked and what the others hold; shown only when there are others."""
        group = self.setup
        several = group is not None and len(self._groups) > 1
        self.set_class(several, "-setups")
        if group is None or not several:
            return
        others = [g for g in self._groups if g is not group]
        n = sum(len(g.records) for g in others)
        # Two lines at most at 80 columns: what is ranked, then where the rest is.
        text = (f"Setup {group.number}/{len(self._groups)}: {group.label} · {n} result{'s' if n != 1 else ''} in "
                f"{len(others)} other setup{'s' if len(others) != 1 else ''} (u: next)")
        self.query_one(".leaderboard--setup", Static).update(Text(text))


def _ranked_first(rows: list[Row]) -> list[Row]:
    """Finished runs in the sort order, then the failed and cancelled ones: never among the ranks."""
    return [r for r in rows if r.status == "done"] + [r for r in rows if r.status != "done"]
